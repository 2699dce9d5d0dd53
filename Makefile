# BioSegment: `make run` sets everything up and starts BioSegment on the demo data folder;
# `make test` sets everything up and runs the whole test suite. Both are safe to repeat.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKER := .venv-bioimageio
CHECKER_STAMP := $(CHECKER)/.installed
DATA ?= data
PYTEST_ARGS ?=

.PHONY: screenshots help setup run test system-deps bench docs clean lint checker

help:
	@echo "make run    set up .venv, create the demo data folder ./$(DATA) on first run, start BioSegment"
	@echo "make test   set up .venv and the system packages the tests need, run the test suite"
	@echo "make lint   check style, import order, the package's layers and types (make test runs it first)"
	@echo "make bench  run the benchmarks (prints figures; see benchmarks/RESULTS.md)"
	@echo "make docs   build the documentation site into build/docs-site (works offline)"
	@echo "make screenshots  retake the UI pictures in docs/screenshots with the browser tests"
	@echo "make clean  remove .venv (your data folder is never touched)"

$(STAMP): pyproject.toml packaging/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c packaging/constraints.txt -e '.[test,redis,bench]'
	touch $(STAMP)

setup: $(STAMP)

# The bioimage.io model checker (bioimageio.core) in an environment of its own: it needs an older
# pydantic than .venv has (packaging/constraints-bioimageio.txt says why). Beneath its own packages
# it sees .venv's (torch, onnxruntime), so the weights it tests run on the same libraries.
$(CHECKER_STAMP): $(STAMP) packaging/constraints-bioimageio.txt
	$(PYTHON) -m venv $(CHECKER)
	$(CHECKER)/bin/python -m pip install --quiet -c packaging/constraints-bioimageio.txt bioimageio.core
	$(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
	  > "$$($(CHECKER)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/biosegment-venv.pth"
	touch $(CHECKER_STAMP)

checker: $(CHECKER_STAMP)

run: setup
	@# The libraries the desktop window's Qt needs, where apt exists (else the browser opens).
	@bash packaging/install-system-deps.sh window
	@# First run: the demo data folder, and a segmentation of the demo queued for the daemon.
	@if [ ! -f "$(DATA)/setup.json" ]; then \
	  $(BIN)/biosegment init "$(DATA)" --demo && \
	  $(BIN)/biosegment --data "$(DATA)" segment isbi2012-demo --model demo-membrane; fi
	$(BIN)/biosegment --data "$(DATA)" run

system-deps:
	bash packaging/install-system-deps.sh

# Style and formatting (ruff), the layers of the package (import-linter) and the types of the
# job queue, the catalog and the engine (mypy); each is configured in pyproject.toml.
lint: setup
	$(BIN)/ruff check biosegment tests benchmarks
	$(BIN)/ruff format --check biosegment tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

test: setup system-deps lint checker
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_viewer.py
	$(BIN)/python benchmarks/bench_daemon.py

docs: setup
	$(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) $(CHECKER) build *.egg-info

screenshots: setup system-deps
	BIOSEGMENT_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q -m browser tests/
