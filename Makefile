# make run   install into .venv (created when missing), then the main job
# make test  install with test extras (and the example plug-in, examples/fsq_tokenizer), then the linter
#            and the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint install install-test bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP_TEST): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,tokenizers]' -e examples/fsq_tokenizer
	touch $@

install: $(STAMP)
install-test: $(STAMP_TEST)

run: $(STAMP)
	$(BIN)/vqcodec simulate --channel bsc --p 0.01

test: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP_TEST)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
