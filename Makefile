# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: run test install install-dev bench clean help

help:
	@echo "make run    - set up .venv (if needed) and run the pipeline on the embedded digits data"
	@echo "make test   - set up .venv with the dev extra (if needed) and run the test suite"
	@echo "make bench  - run the benchmarks in bench/ (needs MNIST, see README)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vaeops needs Python 3.11+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

# The stamp files depend on pyproject.toml, so changing dependencies reinstalls on the next run.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/dvc repro
	$(BIN)/dvc push -q
	$(BIN)/dvc status

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/train_speed.py --mnist ../shared/data/mnist
	$(BIN)/python bench/inference_speed.py
	$(BIN)/python bench/http_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
