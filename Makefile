# Set-up, demo, tests and benchmarks. `make demo` and `make test` work on a fresh clone.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Where there is no NVIDIA GPU, a CPU build of torch is installed first (a plain `torch`
# requirement would pull a multi-GB CUDA build); pyproject's `torch>=2.2` then adds nothing.
TORCH_CPU ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup demo test test-slow lint format bench docs docs-serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PY) -m pip install -q "$(TORCH_CPU)" || \
	  $(PY) -m pip install -q torch --index-url $(TORCH_CPU_INDEX); fi
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: setup
	$(VENV)/bin/echodepth train --config tuned --overwrite

# the docs are built first in strict mode: a broken link or reference fails the test run. The tests run
# in parallel, one worker per core (pytest-xdist; the tests sharing a trained run or the docs site on one
# worker, built once: conftest's BUILT_ONCE), in a random order that pytest-randomly prints as its
# seed: `--randomly-seed=N` replays it (docs/how-to/testing.md)
test: setup lint docs
	$(PY) -m pytest -q -n auto --dist loadgroup

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-slow: setup
	$(PY) -m pip install -q -e ".[test,wandb,postgres]"
	$(PY) -m pytest -q -m slow

# the documentation site (MkDocs + Material + mkdocstrings) into site/; strict: a broken link or
# reference fails. The CLI and settings reference pages are generated from the code (docs/hooks/).
docs: setup
	$(PY) -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

bench: setup
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_data.py

clean:
	rm -rf $(VENV) .echodepth_cache results site
