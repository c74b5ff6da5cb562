# Two entry points that work on a fresh machine with only Python installed:
#   make demo   install, then base-to-new on a mini dataset (docs/MINI.md)
#   make test   install with the test extra, then ruff and the whole pytest suite
#               on one pytest-xdist worker per core (TEST_WORKERS=0: one process)
PYTHON ?= python3
TEST_WORKERS ?= logical
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m ammpl.cli.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 8 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/clip_encoders.py
	$(BIN)/python bench/ammpl_step.py
	$(BIN)/python bench/methods_step.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
