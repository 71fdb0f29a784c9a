# The two commands of the README. Both create ./.venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test benchmark schema check lint typecheck imports unit typecheck-tree

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# GraphiQL's files, pinned by graphiql/package-lock.json (integrity hashes), served offline.
graphiql/node_modules/.package-lock.json: graphiql/package.json graphiql/package-lock.json
	npm ci --prefix graphiql --ignore-scripts --no-audit --no-fund --loglevel=error

# The exact releases of constraints.txt, within pyproject.toml's ranges.
install: $(BIN)/python graphiql/node_modules/.package-lock.json
	$(BIN)/pip install --quiet -c constraints.txt -e .

# relay-compiler for tests/test_relay.py, pinned by tests/relay/package-lock.json.
tests/relay/node_modules/.package-lock.json: tests/relay/package.json tests/relay/package-lock.json
	npm ci --prefix tests/relay --ignore-scripts --no-audit --no-fund --loglevel=error

install-test: $(BIN)/python graphiql/node_modules/.package-lock.json tests/relay/node_modules/.package-lock.json
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,dev]' -e examples/segmentql-email-domain -e examples/segmentql-purchases

demo: install
	$(BIN)/segmentql demo

test: install-test
	$(BIN)/python -m pytest

benchmark: install-test
	$(BIN)/python benchmarks/bench.py --contacts 5000 --contacts 10000 --contacts 20000

schema: install
	SEGMENTQL_PLUGINS= $(BIN)/segmentql schema > schema.graphql  # built-in conditions only

# Lint, types, the import contract and the fast tier (tests/unit, seconds, no
# database). `make -k check` reports every one of them even when one fails.
check: install-test lint typecheck imports unit

lint:
	$(BIN)/ruff check .

# mypy and import-linter find a package by its folder and cannot follow the
# package-dir mapping of pyproject.toml (the editable install maps the folders
# with an import hook): build/typecheck/segmentql is the installed layout, as
# links to server/, plugins/, schema/ and segmentql_pkg/*.py.
TYPECHECK_TREE := build/typecheck/segmentql

typecheck-tree:
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)
	ln -s ../../../server ../../../plugins ../../../schema $(addprefix ../../../,$(wildcard segmentql_pkg/*.py)) \
		$(TYPECHECK_TREE)/

# Errors name the files of the checkout, not their links.
typecheck: typecheck-tree
	bash -o pipefail -c '$(BIN)/mypy | sed -e "s,^$(TYPECHECK_TREE)/\(server\|plugins\|schema\)/,\1/," \
		-e "s,^$(TYPECHECK_TREE)/,segmentql_pkg/,"'

imports: typecheck-tree
	PYTHONPATH=build/typecheck $(BIN)/lint-imports

unit:
	$(BIN)/python -m pytest tests/unit -q
