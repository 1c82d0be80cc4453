# The two commands: `make demo` (main job on the built-in sample) and `make test` (the whole suite).
# Both create .venv on first use and install the project and its model files into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= outputs/demo

.PHONY: demo test install notebooks benchmark strip-notebooks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e ".[dev]"
	$(BIN)/selfie-avatar weights --fetch
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/selfie-avatar demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest

# JupyterLab on the notebooks (installed with the project: the `notebooks` extra, inside `dev`).
notebooks: $(STAMP)
	$(BIN)/jupyter lab notebooks/

benchmark: $(STAMP)
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/inference.py

strip-notebooks: $(STAMP)
	$(BIN)/python tools/strip_notebooks.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
