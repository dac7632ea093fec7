"""The one jobs table: typed rows from one loader, Runs as Jobs of kind train, display made at the edge."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from textual.widgets import DataTable

from db import queries
from db.models import utcnow
from workbench.data.jobs import load_jobs
from workbench.dialogs.confirm import ConfirmDialog
from workbench.widgets.jobs_table import CELLS

from .conftest import running, settle


@pytest.fixture
def asked_store(demo_store):
    """The demo store plus a running train run that was asked to stop and a cancelled one whose
    flag stayed set."""
    with demo_store.session() as session:
        asked = queries.create_job(session, kind="train", title="train lora-b", params={"variant": "lora-b"})
        # No pid and no host: engine.jobs judges it by its fresh heartbeat and leaves it running.
        queries.update_job(session, job_id=asked.id, status="running", step=4, total=10,
                           cancel_requested=True, heartbeat_at=utcnow())
        stopped = queries.create_job(session, kind="train", title="train lora-c", params={"variant": "lora-c"})
        queries.update_job(session, job_id=stopped.id, status="cancelled", cancel_requested=True)
    demo_store.asked_id, demo_store.stopped_id = asked.id, stopped.id
    return demo_store


def test_rows_keep_the_stored_status_and_the_cancel_flag_apart(asked_store):
    rows = {row.id: row for row in load_jobs(asked_store.db_engine)}
    asked, stopped = rows[asked_store.asked_id], rows[asked_store.stopped_id]
    assert (asked.status, asked.cancel_requested, asked.active, asked.cancel_pending) == ("running", True, True, True)
    assert (stopped.status, stopped.cancel_requested, stopped.active, stopped.resumable) == ("cancelled", True, False, True)
    assert rows[asked_store.train_job_id].resumable is False  # succeeded: nothing to resume
    assert rows[asked_store.running_job_id].training is None  # a generate job has no training fields
    assert asked.training is not None and asked.training.variant == "lora-b"

    # The display string is made from the fields, and only for a job still running.
    now = utcnow()
    assert str(CELLS["status"](asked, now)) == "running (cancel asked)"
    assert str(CELLS["status"](stopped, now)) == "cancelled"


def test_runs_are_the_jobs_rows_of_kind_train(asked_store):
    everything = load_jobs(asked_store.db_engine)
    runs = load_jobs(asked_store.db_engine, kind="train")
    assert runs == tuple(row for row in everything if row.kind == "train")
    assert [row.id for row in runs] == [asked_store.stopped_id, asked_store.asked_id, asked_store.train_job_id]


def test_loading_the_table_costs_the_same_queries_for_two_jobs_or_twenty(demo_store):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    event.listen(demo_store.db_engine, "before_cursor_execute", count)
    try:
        load_jobs(demo_store.db_engine)
        few = len(statements)
        with demo_store.session() as session:
            for n in range(18):
                job = queries.create_job(session, kind="judge", params={}, title=f"judge {n}")
                queries.add_metrics(session, job_id=job.id, step=1, values={"loss": 1.0})
        statements.clear()
        rows = load_jobs(demo_store.db_engine)
    finally:
        event.remove(demo_store.db_engine, "before_cursor_execute", count)
    assert len(rows) == 20
    # The jobs, every job's recent metrics and the queue (none of these waits for a job).
    assert len(statements) == few == 3


@pytest.mark.parametrize(("key", "table_id", "note"), [
    ("2", "#jobs-table", "4 jobs · 2 active"),  # the generate job runs too
    ("5", "#runs-table", "3 runs · 1 active"),
])
async def test_both_screens_treat_a_run_asked_to_stop_as_still_running(asked_store, monkeypatch, key,
                                                                        table_id, note):
    async with running(asked_store.url) as (app, pilot):
        notices: list[str] = []
        monkeypatch.setattr(app, "notify", lambda message, **_kw: notices.append(str(message)))
        await pilot.press(key)
        await settle(pilot)
        table = app.screen.query_one(table_id, DataTable)
        ids = [str(cell) for cell in table.get_column("id")]
        statuses = [str(cell) for cell in table.get_column("status")]
        assert statuses[ids.index(str(asked_store.asked_id))] == "running (cancel asked)"
        assert statuses[ids.index(str(asked_store.stopped_id))] == "cancelled"
        assert note in str(app.screen.query_one(table_id.replace("table", "note")).content)

        table.move_cursor(row=ids.index(str(asked_store.asked_id)))
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert notices and "already asked to stop" in notices[-1], notices

        table.move_cursor(row=ids.index(str(asked_store.stopped_id)))
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert "was cancelled; there is nothing to cancel" in notices[-1], notices
