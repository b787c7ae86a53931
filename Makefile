# The two set-up commands of the README, and the pieces they are built from.
# Everything is installed into .venv by the project's own files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: example test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Run the example app: installs it, migrates its database on start, serves on 127.0.0.1:5000.
example: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[flask]' -e examples/flask_app
	$(BIN)/flask --app flask_app run --host 127.0.0.1 --port 5000

# Run the whole test suite.
test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' -e examples/flask_app
	$(BIN)/python -m pytest
