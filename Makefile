# The two commands: `make demo` (main job on the built-in sample) and `make test` (the whole suite).
# Both create .venv on first use and install the project and its model files into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= outputs/demo
# installed without its dependencies: it asks for opencv-python, which clashes with MediaPipe's OpenCV
FACE_ALIGNMENT := face-alignment==1.5.0

.PHONY: demo test install notebooks face-alignment benchmark strip-notebooks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e ".[dev]"
	$(BIN)/pip install --disable-pip-version-check -q --no-deps "$(FACE_ALIGNMENT)"
	$(BIN)/selfie-avatar weights --fetch
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/selfie-avatar demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest

# JupyterLab on the notebooks (installed with the project: the `notebooks` extra, inside `dev`).
notebooks: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# prepare --landmarks face-alignment: the package (its weight files are obtained by hand, README)
face-alignment: $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -q -e ".[face-alignment]"
	$(BIN)/pip install --disable-pip-version-check -q --no-deps "$(FACE_ALIGNMENT)"

benchmark: $(STAMP)
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/inference.py

strip-notebooks: $(STAMP)
	$(BIN)/python tools/strip_notebooks.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
