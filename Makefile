# Two entry points for a fresh clone: `make demo` and `make test`.
# Both bootstrap .venv from pyproject.toml; the stamp file makes a second run install nothing
# unless pyproject.toml changed.
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
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ddft demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

tui: $(STAMP)
	$(BIN)/ddft tui $(ARGS)

clean-venv:
	rm -rf $(VENV)
