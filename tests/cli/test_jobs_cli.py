"""`ddft jobs list|show --json`, one timestamp format, results in words, `ddft jobs slots`,
`ddft --version`."""

from __future__ import annotations

import io
import json
import re
import socket
from datetime import datetime, timezone

from typer.testing import CliRunner

from db import queries
from db.store import open_store, session_scope
from engine.cli.main import app
from engine.jobs.results import describe_result

runner = CliRunner()
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
WHEN = datetime(2026, 5, 1, 12, 30, 5, 123456, tzinfo=timezone.utc)


def _store(workspace):
    db_engine = open_store(workspace)
    host = socket.gethostname()
    with session_scope(db_engine) as session:
        done = queries.create_job(session, kind="generate", params={"variant": "v[/]"},
                                  title="generate v[/]", queue=host)
        queries.update_job(session, job_id=done.id, status="succeeded", started_at=WHEN,
                           finished_at=WHEN, heartbeat_at=WHEN,
                           result={"generated": 12, "skipped": 0})
        running = queries.create_job(session, kind="train", params={}, queue=host)
        queries.update_job(session, job_id=running.id, status="running", host="",
                           heartbeat_at=datetime.now(timezone.utc))
        waiting = queries.create_job(session, kind="generate", params={}, queue=host,
                                     after=[running.id])
    return db_engine, done.id, running.id, waiting.id


def test_list_and_show_print_stable_json_with_iso_utc_times(ddft_workspace):
    _, done, running, waiting = _store(ddft_workspace)
    listed = runner.invoke(app, ["jobs", "list", "--json", "--workspace", str(ddft_workspace)])
    assert listed.exit_code == 0, listed.output
    jobs = json.loads(listed.output)["jobs"]
    assert [j["id"] for j in jobs] == [waiting, running, done]
    assert set(jobs[0]) == {"id", "kind", "title", "status", "stored_status",
                            "cancel_requested", "step", "total", "message", "error", "loss",
                            "queue", "pid", "host", "created_at", "queued_at", "started_at",
                            "heartbeat_at", "finished_at", "params", "result", "log_path"}
    assert jobs[0]["queue"]["position"] == 1 and jobs[0]["queue"]["waits_for"] == [running]
    assert jobs[2]["finished_at"] == "2026-05-01T12:30:05Z"
    for job in jobs:
        for key in ("created_at", "queued_at"):
            assert ISO.match(job[key]), job[key]
    shown = runner.invoke(app, ["jobs", "show", str(done), "--json", "--workspace",
                                str(ddft_workspace)])
    data = json.loads(shown.output)
    assert data["result"] == {"generated": 12, "skipped": 0} and data["checkpoints"] == []


def test_show_prints_every_time_in_one_format_and_the_result_in_words(ddft_workspace):
    _, done, _, waiting = _store(ddft_workspace)
    shown = runner.invoke(app, ["jobs", "show", str(done), "--workspace", str(ddft_workspace)])
    assert shown.exit_code == 0, shown.output
    assert "result: 12 generated, 0 skipped" in shown.output
    assert "{'" not in shown.output  # never a Python dict; JSON in full beside the words
    assert 'result (json): {"generated": 12, "skipped": 0}' in shown.output
    (line,) = [ln for ln in shown.output.splitlines() if ln.startswith("created ")]
    times = re.findall(r"(created|queued|started|heartbeat|finished) (\S+)", line)
    assert [name for name, _ in times] == ["created", "queued", "started", "heartbeat",
                                           "finished"]
    assert all(ISO.match(value) for _, value in times), times
    assert "started 2026-05-01T12:30:05Z" in shown.output
    queued = runner.invoke(app, ["jobs", "show", str(waiting), "--workspace",
                                 str(ddft_workspace)])
    assert "queue: queued, position 1; after job" in queued.output


def test_slots_are_a_store_setting(ddft_workspace):
    _store(ddft_workspace)
    shown = runner.invoke(app, ["jobs", "slots", "--workspace", str(ddft_workspace)])
    assert "device slots: 1" in shown.output
    set_ = runner.invoke(app, ["jobs", "slots", "2", "--workspace", str(ddft_workspace)])
    assert set_.exit_code == 0 and "device slots: 2" in set_.output
    bad = runner.invoke(app, ["jobs", "slots", "0", "--workspace", str(ddft_workspace)])
    assert bad.exit_code != 0


def test_version_comes_from_the_package():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ddft {version('ddft')}"


def test_a_result_reads_as_words():
    assert describe_result({"generated": 12, "skipped": 0}) == "12 generated, 0 skipped"
    assert describe_result({"judged": 3, "skipped": 1, "unparsable": 0}) == \
        "3 judged, 1 skipped, 0 unparsable"
    assert describe_result({"variant": "v", "steps": 20, "final_loss": 0.5,
                            "adapter_dir": "/r"}) == "variant v, 20 steps, final loss 0.5000"
    assert describe_result({}) == "no result"


def test_a_piped_table_is_printed_whole_and_a_terminal_one_fits_it(ddft_workspace, monkeypatch):
    from rich.console import Console
    from rich.table import Table

    from engine.cli.console import print_table

    db_engine, done, _running, _waiting = _store(ddft_workspace)
    with session_scope(db_engine) as session:
        queries.update_job(session, job_id=done, message="generated every held-out video of "
                                                         "kitchen-eval with greedy decoding")
    result = runner.invoke(app, ["jobs", "list", "--workspace", str(ddft_workspace)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if f"│ {done} " in line)
    # Into a pipe, nothing is cut to 80 columns: grep finds the whole status and message.
    assert "succeeded" in row and "with greedy decoding" in row and "…" not in result.output
    assert len(row) > 80
    # On a terminal the table fits it, as Rich draws it.
    table = Table("id", "message")
    table.add_row("1", "word " * 40)
    terminal = Console(width=60, force_terminal=True, record=True, file=io.StringIO())
    print_table(table, terminal)
    assert max(len(line) for line in terminal.export_text().splitlines()) <= 60
