# kd-notebooks: set-up, the papermill batch, the tests, JupyterLab.
#   make reproduce   create .venv if needed, install, execute every notebook at PROFILE (default quick)
#   make test        create .venv if needed, install, run the whole test suite
#   make lab         JupyterLab from .venv; the notebooks' kernel "python3" is .venv's own Python (nothing registered)
#   make site        the results site in site/ (open site/index.html; works offline), from the committed files
# NOVENV=1 (reproduce, test): no .venv and no pip install; $(PYTHON) (then python3 by default) runs as it
# is, with the package and its dependencies importable already (e.g. PYTHONPATH=<project root> on the lent GPU
# machine, whose image has torch but no network: README "On a GPU"). OUTDIR=DIR: the batch writes to DIR
# (--out) instead of outputs/. ONLY="00 03": those notebooks (names or prefixes).
NOVENV ?=
novenv := $(filter-out 0 no false,$(NOVENV))
ifeq ($(novenv),)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
else
PYTHON ?= python3
endif
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    := $(if $(novenv),$(PYTHON),$(BIN)/python)
NEEDS  := $(if $(novenv),,setup)
OUTDIR ?=
# extras installed with the package: test (pytest, nbval, ruff); add ray for the Ray executor's test
EXTRAS ?= test
PROFILE ?= quick
ONLY   ?=

.PHONY: setup reproduce test lab site clean-runs
setup: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

reproduce: $(NEEDS)
	$(RUN) -m kdutils run --profile $(PROFILE) $(foreach o,$(ONLY),--only $(o)) $(if $(OUTDIR),--out $(OUTDIR),)

test: $(NEEDS)
	$(RUN) -m pytest

lab: setup
	$(BIN)/python -m pip install -q -e ".[lab]"
	$(BIN)/jupyter lab notebooks/

site: $(NEEDS)
	$(if $(novenv),,$(BIN)/python -m pip install -q -e ".[site]")
	$(RUN) -m kdutils site --out site

clean-runs:
	rm -rf runs outputs
