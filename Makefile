# Two entry points for a fresh clone: `make demo` and `make test`.
# Both bootstrap .venv from pyproject.toml, with every version pinned by constraints.txt (the
# versions of the last green run, so CI resolves what was tested); the stamp file makes a second
# run install nothing unless pyproject.toml or constraints.txt changed. `make test` runs the
# suite beside a throwaway PostgreSQL server (scripts/with_postgres.sh), so the store's tests
# run on SQLite and on PostgreSQL; where no server can be had, the PostgreSQL half is skipped
# with the reason. `make constraints` rewrites constraints.txt from the installed .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ddft-installed
ARGS   ?=
# torch, torchvision and the CUDA libraries torch brings depend on the machine (a CUDA or CPU
# build, the wheels a machine keeps on disk): pip takes the build the machine offers within
# pyproject.toml's range, so constraints.txt leaves them out.
MACHINE_PACKAGES := ^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+)==

.PHONY: demo test venv tui clean-venv constraints screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "== updating pip in $(VENV) (a few seconds)"
	$(BIN)/python -m pip install --upgrade pip
	@echo "== installing ddft with its test and PostgreSQL extras into $(VENV), versions from"
	@echo "   constraints.txt: a minute or two, several minutes the first time (torch is large)"
	$(BIN)/python -m pip install -c constraints.txt -e '.[test,postgres]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ddft demo $(ARGS)

test: $(STAMP)
	@scripts/ensure_chromium.sh
	scripts/with_postgres.sh $(BIN)/python -m pytest -n auto $(ARGS)

# The browser test's screenshots (the rating app at 80×24, Compare at 80×24 and 160×45) into
# docs/screenshots/, shown in the README; rerun when those screens change.
screenshots: $(STAMP)
	@scripts/ensure_chromium.sh
	DDFT_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/workbench/test_browser_rating.py

tui: $(STAMP)
	$(BIN)/ddft tui $(ARGS)

# After a green `make test` on newer releases: pin them for everyone (and CI). ddft itself and
# MACHINE_PACKAGES are left out.
constraints:
	@test -x $(BIN)/python || { echo "no $(VENV) yet: run make test first"; exit 1; }
	@echo "== writing constraints.txt from the packages installed in $(VENV)"
	@{ echo "# The versions of ddft's last green test run, for \`pip install -c constraints.txt\`"; \
	   echo "# (make test and make demo install with it). Written by \`make constraints\`; edit"; \
	   echo "# pyproject.toml for ranges, not this file."; \
	   $(BIN)/python -m pip freeze --exclude-editable --all \
	     | grep -v -i -E '$(MACHINE_PACKAGES)' | grep -v -E '^(pip|setuptools|wheel)=='; \
	 } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@echo "   $$(grep -c '==' constraints.txt) packages pinned"

clean-venv:
	rm -rf $(VENV)
