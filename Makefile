# Set-up and common jobs. `make run` and `make test` do all the set-up on a fresh machine.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SPEC    ?= specs/slot_attention.toml
ARGS    ?=
STAMP   := $(VENV)/.installed

.PHONY: setup run test test-slow bench compile clean

setup: $(STAMP)

# torch 2.13.0 is installed first and only where no torch is present: a bare `torch`
# requirement on a machine without it would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: setup
	$(BIN)/ocdsl run $(SPEC) $(ARGS)

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python bench/run.py

# Every spec under specs/ (variants included), the set tests/codegen checks is in sync.
SPECS   := $(shell find specs -name '*.toml' -o -name '*.yaml' | sort)

compile: setup
	for s in $(SPECS); do $(BIN)/ocdsl compile $$s || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
