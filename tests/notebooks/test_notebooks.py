"""Every notebook in notebooks/ is committed stripped, has a tagged parameters cell, and runs top to bottom in its
small profile.

The run is papermill-style: a cell tagged ``injected-parameters`` goes right after the ``parameters`` cell and
overrides ``PROFILE = "small"`` (plus ``VIDEO`` with the test footage and ``DEVICE = "cpu"`` where the notebook has
them). nbclient executes it on a kernel of this interpreter with a per-cell timeout: papermill's default has none,
and a cell that *displays* widgets can wait for its reply until the timeout (jupyter/nbclient#312), so small
profiles create and drive widgets without displaying them. The executed copy goes to the scratch folder
(``<tmp>/notebooks*/executed/``), never back into the repository.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the dev extras (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the dev extras (pip install -e '.[dev]')")

from tests.notebooks.conftest import KERNEL_NAME  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 240  # the longest small-profile cell (the ablation grid) takes well under a minute here
IDS = [p.stem for p in NOTEBOOKS]


def parameters_cell(nb) -> int:
    """Index of the one code cell tagged ``parameters``."""
    hits = [k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(hits) == 1, f"expected exactly one cell tagged 'parameters', found {len(hits)}"
    assert nb.cells[hits[0]].cell_type == "code", "the 'parameters' cell must be a code cell"
    return hits[0]


def assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def inject_parameters(nb, values: dict) -> object:
    """A copy of ``nb`` with a cell after its parameters cell setting those of ``values`` that the cell defines."""
    nb = copy.deepcopy(nb)
    k = parameters_cell(nb)
    names = assigned_names(nb.cells[k].source)
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items() if name in names)
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    cell.id = "injected-parameters"
    nb.cells.insert(k + 1, cell)
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"cell {k} has outputs; run .venv/bin/python tools/strip_notebooks.py"
    assert "widgets" not in nb.metadata, "widget state is committed; run tools/strip_notebooks.py"
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with a markdown introduction"
    # The parameters cell is plain assignments: run it alone and check the profile contract.
    params = nb.cells[parameters_cell(nb)].source
    space: dict = {}
    exec(compile(params, f"{path.name}:parameters", "exec"), space)
    assert space.get("PROFILE") == "full", "the committed default is PROFILE = 'full'"
    assert {"small", "full"} <= set(space.get("PROFILES", {})), "PROFILES needs 'small' and 'full' settings"
    for name, value in space.items():
        if isinstance(value, str) and name.isupper():
            assert not Path(value).is_absolute(), f"{name} = {value!r}: paths are relative to notebooks/"


def test_strip_tool(tmp_path):
    spec = importlib.util.spec_from_file_location("strip_notebooks", REPO / "tools" / "strip_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    nb.cells[0].metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00"}
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    assert tool.main(["--check", str(path)]) == 1
    assert tool.main([str(path)]) == 0
    clean = nbformat.read(path, as_version=4)
    assert clean.cells[0].outputs == [] and clean.cells[0].execution_count is None
    assert "execution" not in clean.cells[0].metadata and "widgets" not in clean.metadata
    assert tool.main(["--check", str(path)]) == 0
    assert tool.main(["--check", *map(str, NOTEBOOKS)]) == 0


def test_injection_overrides_only_defined_names():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('PROFILE = "full"\nOUT = "../outputs/x"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(PROFILE)"),
    ])
    out = inject_parameters(nb, {"PROFILE": "small", "VIDEO": "/v.mp4"})
    assert [c.source for c in out.cells][1] == "PROFILE = 'small'"
    assert len(nb.cells) == 2  # the original is untouched


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_small_profile(path, notebook_env, notebook_video, record_property):
    before = path.read_bytes()
    nb = inject_parameters(nbformat.read(path, as_version=4),
                           {"PROFILE": "small", "VIDEO": str(notebook_video), "DEVICE": "cpu"})
    cwd = notebook_env / "notebooks"
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, startup_timeout=120, kernel_name=KERNEL_NAME,
                                     resources={"metadata": {"path": str(cwd)}}, record_timing=True)
    t0 = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - t0
        record_property("seconds", round(seconds, 1))
        print(f"{path.name}: {seconds:.1f} s")
        executed = notebook_env / "executed"
        executed.mkdir(exist_ok=True)
        nbformat.write(nb, executed / path.name)  # for a look after a failure; outside the repository
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "no figure was displayed (matplotlib inline not active?)"
    assert path.read_bytes() == before, "executing must not write into the committed notebook"
