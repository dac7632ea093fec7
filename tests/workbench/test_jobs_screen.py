"""The Jobs screen: rows from the store, in-place updates, the detail pane, cancel with confirm."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from textual.widgets import DataTable

from db import queries
from workbench.dialogs.confirm import ConfirmDialog
from workbench.widgets.job_detail import JobDetailPane

from .conftest import running, settle


def _column(table: DataTable, key: str) -> list[str]:
    return [str(cell) for cell in table.get_column(key)]


def _detail(app) -> str:
    return str(app.screen.query_one("#job-detail", JobDetailPane).content)


async def _open_jobs(pilot):
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen.query_one("#jobs-table", DataTable)


async def test_jobs_table_and_detail_show_progress_loss_and_log(demo_store):
    async with running(demo_store.url) as (app, pilot):
        table = await _open_jobs(pilot)
        assert _column(table, "id") == [str(demo_store.running_job_id), str(demo_store.train_job_id)]
        assert _column(table, "status") == ["running", "succeeded"]
        assert _column(table, "progress") == ["3/10", "20/20"]
        assert _column(table, "loss") == ["—", "0.1500"]  # 3.0 / 20
        assert _column(table, "heartbeat")[1] == "1m ago"
        assert "Job 2" in _detail(app) and "generating" in _detail(app)

        await pilot.press("down")
        await settle(pilot)
        detail = _detail(app)
        assert "LoRA tuned" in detail and "learning_rate: 0.0002" in detail
        assert "loss (20 points)" in detail
        assert "first 3.0000 @ step 1 · last 0.1500 @ step 20 · min 0.1500 @ step 20" in detail
        assert str(demo_store.log_path) in detail
        # The log's last 20 of 30 lines: step 11 … step 30.
        assert "step 30 loss 0.1000" in detail and "step 11 loss" in detail
        assert "step 10 loss" not in detail


async def test_polling_updates_rows_in_place_and_keeps_the_cursor(demo_store):
    async with running(demo_store.url) as (app, pilot):
        table = await _open_jobs(pilot)
        await pilot.press("down")  # on the finished train job
        await settle(pilot)
        with demo_store.session() as session:
            queries.update_job(session, job_id=demo_store.running_job_id, step=7)
            queries.add_metrics(session, job_id=demo_store.running_job_id, step=7, values={"loss": 1.25})
        app.screen.poll()
        await settle(pilot)
        assert _column(table, "progress")[0] == "7/10"
        assert _column(table, "loss")[0] == "1.2500"
        assert table.cursor_row == 1

        with demo_store.session() as session:
            new = queries.create_job(session, kind="judge", params={}, title="judge all")
        await pilot.press("r")
        await settle(pilot)
        assert _column(table, "id")[0] == str(new.id)
        assert table.row_count == 3
        # The new job pushed the rows down; the cursor stayed on the same job.
        assert _column(table, "id")[table.cursor_row] == str(demo_store.train_job_id)


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


async def test_a_running_job_whose_process_died_shows_as_interrupted(demo_store, dead_pid):
    pytest.importorskip("engine.jobs")
    with demo_store.session() as session:
        queries.update_job(session, job_id=demo_store.running_job_id, pid=dead_pid,
                           host=socket.gethostname())
    async with running(demo_store.url) as (_app, pilot):
        table = await _open_jobs(pilot)
        assert _column(table, "status")[0] == "interrupted"


async def test_cancel_asks_first_and_then_sets_cancel_requested(demo_store):
    pytest.importorskip("engine.jobs")
    async with running(demo_store.url) as (app, pilot):
        await _open_jobs(pilot)

        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        with demo_store.session() as session:
            assert queries.get_job(session, job_id=demo_store.running_job_id).cancel_requested is False

        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        with demo_store.session() as session:
            assert queries.get_job(session, job_id=demo_store.running_job_id).cancel_requested is True
        assert "cancel requested" in _detail(app)

        await pilot.press("down", "c")  # the finished job: nothing to cancel, no dialog
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        with demo_store.session() as session:
            assert queries.get_job(session, job_id=demo_store.train_job_id).cancel_requested is False


async def test_a_running_job_asked_to_cancel_is_still_active(demo_store, monkeypatch):
    """Status and cancel-asked are separate: a running job asked to stop is still running, so
    `c` does not answer "nothing to cancel" and the note counts it as active."""
    with demo_store.session() as session:
        queries.update_job(session, job_id=demo_store.running_job_id, cancel_requested=True)
    async with running(demo_store.url) as (app, pilot):
        notices: list[str] = []
        monkeypatch.setattr(app, "notify", lambda message, **_kw: notices.append(str(message)))
        table = await _open_jobs(pilot)
        assert _column(table, "status")[0] == "running (cancel asked)"
        assert "2 jobs · 1 active" in str(app.screen.query_one("#jobs-note").content)

        await pilot.press("c")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert not any("nothing to cancel" in notice for notice in notices), notices
        assert any("already asked to stop" in notice for notice in notices), notices


async def test_the_detail_shows_how_many_samples_a_job_could_not_do(demo_store):
    failures = [{"sample": "crpt_[red]vid001", "path": "/data/[/]crpt_vid001.mp4",
                 "reason": "cannot read video: the data is cut short"},
                {"sample": "short_vid", "path": "/data/short.mov",
                 "reason": "video too short: 8 frames needed, it has 3"}]
    with demo_store.session() as session:
        job = queries.create_job(session, kind="generate", params={}, title="generate tuned")
        queries.update_job(session, job_id=job.id, status="succeeded",
                           result={"generated": 3, "skipped": 0, "failed": 7,
                                   "failures": failures})
    async with running(demo_store.url) as (app, pilot):
        await _open_jobs(pilot)  # the newest job is selected
        detail = _detail(app)
        assert "generate tuned" in detail
        assert "failed: 7 samples (not stored; the others are)" in detail
        # Names and paths literally: their brackets are not markup.
        assert "crpt_[red]vid001 (/data/[/]crpt_vid001.mp4): cannot read video" in detail
        assert "short_vid (/data/short.mov): video too short: 8 frames needed, it has 3" in detail
        assert "… and 5 more" in detail  # 7 failed, 2 named


def test_the_detail_pane_lists_parameters_in_words():
    from workbench.data.jobs import _flat

    assert _flat(None) == _flat([]) == _flat({}) == "—"
    assert _flat(["kitchen-images", "kitchen-videos"]) == "kitchen-images, kitchen-videos"
    assert _flat({"kitchen-videos": 1.0, "kitchen-text": 0.5}) == "kitchen-videos=1.0, kitchen-text=0.5"
    assert _flat("x" * 300) == "x" * 199 + "…"
