# Two entry points for a fresh clone: `make demo` and `make test`.
# Both bootstrap .venv from pyproject.toml; the stamp file makes a second run install nothing
# unless pyproject.toml changed. `make test` runs the suite beside a throwaway PostgreSQL server
# (scripts/with_postgres.sh), so the store's tests run on SQLite and on PostgreSQL; where no
# server can be had, the PostgreSQL half is skipped with the reason.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ddft-installed
ARGS   ?=

.PHONY: demo test venv tui clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ddft demo $(ARGS)

test: $(STAMP)
	scripts/with_postgres.sh $(BIN)/python -m pytest $(ARGS)

tui: $(STAMP)
	$(BIN)/ddft tui $(ARGS)

clean-venv:
	rm -rf $(VENV)
