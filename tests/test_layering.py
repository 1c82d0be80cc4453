"""Data flows one way (docs/architecture.md): a module never imports a stage above its own.

Imports are read with ``ast``, so absolute imports (``selfie_avatar.x``), relative ones (``from ..x import``) and
imports inside functions all count.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "selfie_avatar"
# Stages, lowest first; a module may import its own stage and any lower one.
RANK = {
    "errors": 0, "utils": 0, "assets": 0, "config": 0, "__init__": 0,
    "io": 1, "geometry": 1, "render": 2, "face_model": 2, "tracking": 2, "prepare": 3, "sample": 4, "models": 4, "losses": 4,
    "training": 5, "reenact": 6, "evaluate": 6, "viz": 7, "demo": 8, "cli": 9,
}


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """The selfie_avatar modules that the module at ``path`` (or ``source`` placed there) imports, by full name."""
    package = list(path.relative_to(PACKAGE).parts[:-1])  # where its relative imports start, as stage folders
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            modules = [a.name.split(".") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [(node.module or "").split(".")]
        elif isinstance(node, ast.ImportFrom):
            base = ["selfie_avatar", *package[: len(package) - (node.level - 1)]]
            # "from . import codes" names a module; "from .live import live" names its module
            modules = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
        else:
            continue
        found |= {".".join(m) for m in modules if len(m) > 1 and m[0] == "selfie_avatar"}
    return found


def imported_stages(path: Path, source: str | None = None) -> set[str]:
    """The top-level stages of selfie_avatar that the module at ``path`` imports."""
    return {m.split(".")[1] for m in imported_modules(path, source)}


def test_no_module_imports_a_higher_stage():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        stage = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert stage in RANK, f"{stage} has no place in the stage order; add it here and to docs/architecture.md"
        for target in imported_stages(path):
            if RANK.get(target, -1) > RANK[stage]:
                bad.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not bad, bad


def test_relative_imports_are_seen():
    probe = PACKAGE / "reenact" / "probe.py"  # not a real file: the source is given
    src = "from ..training.checkpoint import load_avatar\nfrom . import codes\nfrom .live import live\n"
    assert imported_stages(probe, src) == {"training", "reenact"}
    assert imported_stages(PACKAGE / "cli.py", "from . import errors\nimport selfie_avatar.viz.plots\n") == \
        {"errors", "viz"}


def test_training_reads_the_tracked_head_without_the_video_pipeline():
    """Issue 13: training opens subject folders through ``tracking/``, never through ``prepare/``."""
    for path in (PACKAGE / "training").rglob("*.py"):
        assert "prepare" not in imported_stages(path), path.name


def test_no_import_cycles_between_modules():
    """Module-level imports form no cycle (imports inside functions, which break one at run time, count too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("selfie_avatar", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        graph[name] = imported_modules(path)

    def visit(node, stack, seen):
        if node in stack:
            return stack[stack.index(node):] + [node]
        if node in seen:
            return None
        seen.add(node)
        for nxt in graph.get(node, ()):
            if nxt in graph and not nxt.startswith(node + ".") and not node.startswith(nxt + "."):
                cycle = visit(nxt, stack + [node], seen)
                if cycle:
                    return cycle
        return None

    seen: set = set()
    for start in sorted(graph):
        cycle = visit(start, [], seen)
        assert not cycle, " -> ".join(cycle)


def test_no_private_name_is_imported_from_another_module():
    """A name with a leading underscore stays in its file: shared helpers get a public name."""
    bad = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith("selfie_avatar") or node.level):
                bad += [f"{path.relative_to(PACKAGE)}: {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad
