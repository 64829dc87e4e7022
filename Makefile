# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# a first start of Prefect's temporary server on a busy 2-core machine can take longer than the default 20 s
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: run test install install-dev bench clean help

help:
	@echo "make run    - set up .venv (if needed) and run the retraining flow once on the embedded digits data"
	@echo "make test   - set up .venv with the dev extra (if needed) and run the test suite"
	@echo "make bench  - run the benchmarks in bench/ (needs MNIST in ../shared/data/mnist, see docs/benchmarks.md)"

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

# One run of the retraining flow (flows/retrain.py) on the embedded digits data, on Prefect's temporary local server
# with its state and task cache in .prefect/ (git-ignored). The flow's last step runs `dvc commit`, checks that
# `dvc status` is clean and pushes to the default remote; the output ends with the run's summary.
run: $(VENV)/.installed
	PREFECT_HOME="$(CURDIR)/.prefect" $(BIN)/python flows/retrain.py

# A real NVIDIA Triton server for the conformance test (tests/serving/test_real_triton.py): PyPI's nvidia-pytriton
# ships the tritonserver binary and its Python backend. It pins numpy<2 and its backend returns empty outputs with
# numpy 2, so it gets its own venv; where it cannot be installed (no wheel for this platform) the test skips and says so.
TRITON_VENV ?= .venv-triton
$(TRITON_VENV)/.installed:
	@$(PYTHON) -m venv $(TRITON_VENV) && $(TRITON_VENV)/bin/python -m pip install -q "nvidia-pytriton>=0.5" \
		"numpy<2" onnxruntime && touch $@ \
		|| echo "make: nvidia-pytriton could not be installed here; the real-Triton conformance test will skip"

test: $(VENV)/.installed-dev $(TRITON_VENV)/.installed
	VAEOPS_TRITON_VENV="$(CURDIR)/$(TRITON_VENV)" $(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/train_speed.py --mnist ../shared/data/mnist
	$(BIN)/python bench/inference_speed.py
	$(BIN)/python bench/http_speed.py
	$(BIN)/python bench/grpc_speed.py
	$(BIN)/python bench/oip_parse.py
	$(BIN)/python bench/health_under_load.py
	$(BIN)/python bench/nll_eval.py --mnist ../shared/data/mnist
	$(BIN)/python bench/scale_out.py --mnist ../shared/data/mnist
	$(BIN)/python bench/gpu_check.py --mnist ../shared/data/mnist

clean:
	rm -rf $(VENV) $(TRITON_VENV) .pytest_cache
