"""Strip notebooks before committing: no outputs, no execution counts, no per-run metadata.

    .venv/bin/python tools/strip_notebooks.py            # strip notebooks/*.ipynb in place
    .venv/bin/python tools/strip_notebooks.py --check    # exit 1 (and list them) when any needs stripping
    .venv/bin/python tools/strip_notebooks.py a.ipynb    # only these files

Outputs hold machine-specific paths, timings, images and (with widgets) state; committed, they bloat the diff and
go stale. The tests check that every committed notebook is stripped (tests/notebooks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
# Cell metadata that records a particular run or UI state (nbclient's timings, Jupyter's collapse/scroll state).
CELL_KEYS = ("execution", "collapsed", "scrolled", "ExecuteTime", "papermill")
# Notebook metadata of the same kind (widget state, papermill's record of the run).
NOTEBOOK_KEYS = ("widgets", "papermill", "execution")


def strip(nb) -> bool:
    """Strip ``nb`` in place. Returns whether anything changed."""
    changed = False
    for cell in nb.cells:
        for key in CELL_KEYS:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            cell.outputs = []
            changed = True
        if cell.get("execution_count") is not None:
            cell.execution_count = None
            changed = True
    for key in NOTEBOOK_KEYS:
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    lang = nb.metadata.get("language_info")
    if lang and set(lang) != {"name"}:  # the version, codemirror mode etc. of whoever ran it last
        nb.metadata["language_info"] = {"name": lang.get("name", "python")}
        changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when any notebook needs it")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((REPO / "notebooks").glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.validate(nb)
                nbformat.write(nb, path)
    verb = "need stripping" if args.check else "stripped"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
