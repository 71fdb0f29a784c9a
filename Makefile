# The two commands of the README. Both create ./.venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test benchmark schema

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# GraphiQL's files, pinned by graphiql/package-lock.json (integrity hashes), served offline.
graphiql/node_modules/.package-lock.json: graphiql/package.json graphiql/package-lock.json
	npm ci --prefix graphiql --ignore-scripts --no-audit --no-fund --loglevel=error

install: $(BIN)/python graphiql/node_modules/.package-lock.json
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python graphiql/node_modules/.package-lock.json
	$(BIN)/pip install --quiet -e '.[test]' -e examples/segmentql-email-domain

demo: install
	$(BIN)/segmentql demo

test: install-test
	$(BIN)/python -m pytest

benchmark: install-test
	$(BIN)/python benchmarks/bench.py --contacts 5000 --contacts 10000 --contacts 20000

schema: install
	SEGMENTQL_PLUGINS= $(BIN)/segmentql schema > schema.graphql  # built-in conditions only
