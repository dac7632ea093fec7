"""The Runs screen: runs with ETA and throughput, curves with an overlaid run, checkpoints, log, cancel, resume."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable

from db import queries
from db.models import Metric, utcnow
from workbench.data.curves import Curve, render_chart
from workbench.data.jobs import estimate_eta, format_duration
from workbench.dialogs.confirm import ConfirmDialog

from .conftest import running, settle

# The running run logs every 5 steps, 10 s apart: 0.5 steps/s, so 60 steps left take 2m 00s.
RUNNING_TOTAL = 100
RUNNING_STEPS = range(5, 45, 5)


@pytest.fixture
def runs_store(demo_store):
    """The demo store plus a running train run (throughput, GPU memory, checkpoints, a log) and
    an interrupted one; the demo's finished run gets a final checkpoint."""
    now = utcnow()
    with demo_store.session() as session:
        live = queries.create_job(session, kind="train", title="train lora-b",
                                  params={"variant": "lora-b", "base": "/models/tiny", "preset": "tiny",
                                          "datasets": ["kitchen-images", "kitchen-videos"]})
        log = demo_store.root / "lora-b.log"
        log.write_text("".join(f"step {s} loss {2.0 / s:.4f}\n" for s in range(1, 41)))
        # No pid and no host: engine.jobs judges it by its fresh heartbeat and leaves it running.
        queries.update_job(session, job_id=live.id, status="running", step=40, total=RUNNING_TOTAL,
                           log_path=str(log), started_at=now - timedelta(minutes=2), heartbeat_at=now)
        for n, step in enumerate(RUNNING_STEPS):
            at = now - timedelta(seconds=10 * (len(RUNNING_STEPS) - 1 - n))
            values = {"loss": 2.0 / step, "lr": 0.0002 * step / 40, "samples_per_s": 12.5,
                      "tokens_per_s": 3200.0, "gpu_memory_gb": 61.5}
            for name, value in values.items():
                session.add(Metric(job_id=live.id, step=step, name=name, value=value, created_at=at))
        for step in (20, 40):
            queries.add_checkpoint(session, job_id=live.id, step=step, path=f"/runs/3/step-{step:06d}")
        stopped = queries.create_job(session, kind="train", title="train lora-c",
                                     params={"variant": "lora-c", "base": "/models/tiny"})
        queries.update_job(session, job_id=stopped.id, status="interrupted", step=10, total=50,
                           message="process ended without reporting", started_at=now - timedelta(hours=1),
                           heartbeat_at=now - timedelta(minutes=50))
        queries.add_checkpoint(session, job_id=stopped.id, step=10, path="/runs/4/step-000010")
        queries.add_checkpoint(session, job_id=demo_store.train_job_id, step=20, path="/runs/1/final",
                               final=True)
    demo_store.live_id, demo_store.stopped_id = live.id, stopped.id
    return demo_store


def _column(table: DataTable, key: str) -> list[str]:
    return [str(cell) for cell in table.get_column(key)]


def _text(app, selector: str) -> str:
    widget = app.screen.query_one(selector)
    return str(getattr(widget.content, "plain", widget.content))


async def _open_runs(pilot) -> DataTable:
    await pilot.press("5")
    await settle(pilot)
    return pilot.app.screen.query_one("#runs-table", DataTable)


async def _select(pilot, table: DataTable, job_id: int) -> None:
    table.move_cursor(row=_column(table, "id").index(str(job_id)))
    await settle(pilot)


def test_eta_duration_and_chart_fallback(monkeypatch):
    start = datetime(2025, 1, 1, 12, 0, 0)
    points = [(10, start), (20, start + timedelta(seconds=20))]
    assert estimate_eta(points, step=20, total=80, status="running") == 120.0  # 60 steps at 0.5/s
    assert estimate_eta(points, step=80, total=80, status="running") == 0.0
    assert estimate_eta(points, step=20, total=80, status="interrupted") is None
    assert estimate_eta(points[:1], step=20, total=80, status="running") is None
    assert format_duration(59) == "59s" and format_duration(3 * 3600 + 5 * 60) == "3h 05m"

    curves = (Curve("run 1 a", tuple((s, 3.0 / s) for s in range(1, 50))),)
    drawn = render_chart("loss", curves, 60, 12)
    assert drawn.kind == "plotext" and "┤" in drawn.text
    # The legend is beside the plot, not drawn over the start of the curve.
    assert drawn.legend == (("▄", "run 1 a", 12),) and "run 1 a" not in drawn.text

    def broken(*_args):
        raise AttributeError("module 'plotext' has no attribute 'build'")

    monkeypatch.setattr("workbench.data.curves._plotext_chart", broken)
    fallback = render_chart("loss", curves + (Curve("run 2 b", ((1, 2.0), (2, 1.0))),), 40, 12)
    assert fallback.kind == "sparkline"
    assert "run 1 a: █" in fallback.text and "run 2 b: █▁" in fallback.text
    assert "3 @ 1 → 0.06122 @ 49" in fallback.text


async def test_runs_show_eta_throughput_curves_an_overlaid_run_checkpoints_and_log(runs_store):
    store = runs_store
    async with running(store.url) as (app, pilot):
        table = await _open_runs(pilot)
        # Only train jobs, newest first; the generate job is not a run.
        assert _column(table, "id") == [str(store.stopped_id), str(store.live_id), str(store.train_job_id)]
        assert _column(table, "variant") == ["lora-c", "lora-b", "tuned"]
        assert _column(table, "status") == ["interrupted", "running", "succeeded"]
        assert _column(table, "progress") == ["10/50", "40/100", "20/20"]
        assert _column(table, "eta") == ["—", "2m 00s", "—"]
        assert _column(table, "loss") == ["—", "0.0500", "0.1500"]
        assert _column(table, "samples_per_s") == ["—", "12.50", "—"]
        assert _column(table, "tokens_per_s") == ["—", "3,200", "—"]
        assert _column(table, "gpu_memory") == ["—", "61.5 GB", "—"]
        assert "press r to resume" in _text(app, "#run-summary")

        await _select(pilot, table, store.live_id)
        summary = _text(app, "#run-summary")
        assert "step 40/100 (40%)   ETA 2m 00s" in summary
        assert "samples/s 12.50 · tokens/s 3,200 · GPU memory 61.5 GB" in summary
        assert "datasets: kitchen-images, kitchen-videos" in summary
        loss = _text(app, "#run-loss")
        assert "loss" in loss and f"run {store.live_id} lora-b" in loss and "┤" in loss  # plotext
        assert "learning rate" in _text(app, "#run-lr")
        files = _text(app, "#run-files")
        assert "checkpoints (2)" in files and "/runs/3/step-000040" in files
        assert "step 40 loss 0.0500" in files and "step 21 loss" in files and "step 20 loss" not in files

        # A new logged step updates the row in place and keeps the cursor.
        with store.session() as session:
            queries.update_job(session, job_id=store.live_id, step=45)
            queries.add_metrics(session, job_id=store.live_id, step=45, values={"loss": 0.04})
        app.screen.poll()
        await settle(pilot)
        assert _column(table, "progress")[1] == "45/100" and _column(table, "loss")[1] == "0.0400"
        assert table.cursor_row == 1

        # o marks a run; its loss is then drawn over the loss of whichever run is selected.
        await _select(pilot, table, store.train_job_id)
        await pilot.press("o")
        await settle(pilot)
        assert _column(table, "mark") == ["", "", "◆"]
        assert "marked for comparison" in _text(app, "#run-summary")

        await _select(pilot, table, store.live_id)
        loss = _text(app, "#run-loss")
        tuned = f"run {store.train_job_id} tuned"
        assert f"run {store.live_id} lora-b" in loss and tuned in loss
        assert f"loss overlaid with {tuned}" in _text(app, "#run-summary")

        await _select(pilot, table, store.train_job_id)
        await pilot.press("o")
        await _select(pilot, table, store.live_id)
        assert _column(table, "mark") == ["", "", ""]
        assert tuned not in _text(app, "#run-loss")


async def test_cancel_and_resume_go_through_engine_jobs(runs_store, monkeypatch):
    jobs = pytest.importorskip("engine.jobs.runner")  # where submit and resume find spawn_job
    spawned: list[tuple[int, Path]] = []
    monkeypatch.setattr(jobs, "spawn_job", lambda db_engine, job_id, *, workspace: spawned.append((job_id, workspace)) or 1)
    store = runs_store
    async with running(store.url) as (app, pilot):
        table = await _open_runs(pilot)
        await _select(pilot, table, store.live_id)
        await pilot.press("r")  # running: nothing to resume, no dialog
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        with store.session() as session:
            assert queries.get_job(session, job_id=store.live_id).cancel_requested is True
        assert _column(table, "status")[1] == "running (cancel asked)"

        await _select(pilot, table, store.stopped_id)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        with store.session() as session:
            job = queries.get_job(session, job_id=store.stopped_id)
            # The device is free on this host: the queue starts the resumed run at once.
            assert (job.status, job.message) == ("running", "starting")
        assert spawned == [(store.stopped_id, app.workspace)]
        assert _column(table, "status")[0] == "running"
