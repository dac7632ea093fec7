"""The rooms' import rules (DESIGN.md), checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "decord", "openai", "accelerate")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize("statement", ["import workbench", "import workbench.app"])
def test_the_workbench_never_imports_the_heavy_engine(statement):
    loaded = _loaded_after(statement)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize(
    "statement",
    ["import db.store, db.queries", "import engine.jobs, engine.evaluation.report, engine.jobs.handlers",
     "import engine.cli.main", "import engine.model.loading", "import engine.train",
     "import engine.generate"],
)
def test_the_engine_and_store_never_import_the_tui_and_cli_startup_stays_light(statement):
    loaded = _loaded_after(statement)
    assert "textual" not in loaded and "workbench" not in loaded
    if statement.startswith(("import db", "import engine.jobs", "import engine.cli")):
        assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_db_imports_neither_torch_nor_textual():
    loaded = _loaded_after("import db.models, db.store, db.queries")
    assert not loaded & {"torch", "textual", "engine", "workbench"}


def test_the_training_loop_does_not_load_the_store():
    # The GPU benchmark runs engine.train on a machine without the store's libraries.
    loaded = _loaded_after("import engine.train, engine.bench_train")
    assert not loaded & {"sqlalchemy", "sqlmodel", "textual", "workbench"}
