"""Data flows one way (docs/architecture.md): a module never imports a stage above its own."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "selfie_avatar"
# Stages, lowest first; a module may import its own stage and any lower one.
RANK = {
    "errors": 0, "utils": 0, "assets": 0, "config": 0, "__init__": 0,
    "io": 1, "render": 2, "face_model": 2, "prepare": 3, "sample": 4, "models": 4, "losses": 4,
    "training": 5, "reenact": 6, "evaluate": 6, "viz": 7, "demo": 8, "cli": 9,
}


def test_no_module_imports_a_higher_stage():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        stage = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert stage in RANK, f"{stage} has no place in the stage order; add it here and to docs/architecture.md"
        for target in re.findall(r"^\s*(?:from|import) selfie_avatar\.(\w+)", path.read_text(), re.M):
            if RANK[target] > RANK[stage]:
                bad.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not bad, bad
