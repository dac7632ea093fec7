"""Commands on a store that is missing or whose disk is full: reads never make or write a store,
and each fault is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.console import console
from engine.cli.main import app

runner = CliRunner()

READS = (["jobs", "list"], ["jobs", "show", "1"], ["report"], ["data", "list"],
         ["rate", "--rater", "ann"], ["campaign", "list"], ["tui"])


@pytest.mark.parametrize("command", READS, ids=lambda c: " ".join(c[:2]))
def test_a_read_on_a_missing_store_is_one_line_and_leaves_no_store(ddft_workspace, command):
    result = runner.invoke(app, [*command, "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1, result.output
    path = ddft_workspace / "ddft.db"
    assert f"no store at {path}" in result.output.replace("\n", "")
    assert "ddft demo or ddft data import creates one" in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    assert not path.exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_listing_on_a_full_store_writes_nothing_and_shows_a_dead_job_interrupted(
        ddft_workspace, ddft_store, monkeypatch):
    import socket

    import db.store

    with session_scope(ddft_store) as session:
        job = queries.create_job(session, kind="train", params={}, title="died on a full disk")
        # Its process died writing its failure: the row still says running.
        queries.update_job(session, job_id=job.id, status="running", pid=_dead_pid(),
                           host=socket.gethostname())
        job_id = job.id

    # Every connection the commands open finds the disk full (the file may not grow a page).
    configure = db.store._configure_sqlite

    def full(dbapi_connection, record):
        configure(dbapi_connection, record)
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    monkeypatch.setattr(db.store, "_configure_sqlite", full)
    monkeypatch.setattr(console, "width", 200)  # the status column unwrapped
    for command in (["jobs", "list"], ["jobs", "show", str(job_id)]):
        result = runner.invoke(app, [*command, "--workspace", str(ddft_workspace)])
        assert result.exit_code == 0, result.output
        assert "interrupted" in result.output
        assert "Traceback" not in result.output
    monkeypatch.undo()
    with session_scope(ddft_store) as session:  # shown, never written
        assert queries.get_job(session, job_id=job_id).status == "running"
