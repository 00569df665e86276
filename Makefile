# kd-notebooks: set-up, the papermill batch, the tests, JupyterLab.
#   make reproduce   create .venv if needed, install, execute every notebook at PROFILE (default quick)
#   make test        create .venv if needed, install, run the whole test suite
#   make lab         JupyterLab from .venv; the notebooks' kernel "python3" is .venv's own Python (nothing registered)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# extras installed with the package: test (pytest, nbval, ruff); add ray for the Ray executor's test
EXTRAS ?= test
PROFILE ?= quick
ONLY   ?=

.PHONY: setup reproduce test lab clean-runs
setup: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

reproduce: setup
	$(BIN)/python -m kdutils run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),)

test: setup
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/python -m pip install -q -e ".[lab]"
	$(BIN)/jupyter lab notebooks/

clean-runs:
	rm -rf runs outputs
