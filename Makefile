# The two set-up commands of the README (example, test), the documentation
# build (docs), and the pieces they are built from. Everything is installed
# into .venv by the project's own files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: example test docs

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

# Build the user's guide as HTML into docs/_build/html, strictly: a warning or a
# broken reference fails the build (as in tests/test_docs.py).
docs: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	$(BIN)/python -m sphinx -W --keep-going -n -b html docs docs/_build/html
	@echo "Open docs/_build/html/index.html"
