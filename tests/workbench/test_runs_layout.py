"""The Runs screen at 80×24 and its curves: columns by priority, the legend below the plot, whole
steps, a log scale, the validation loss and the best checkpoint, overlays told apart without
colour, and the detail scrolled back to its top for another run."""

from __future__ import annotations

import json
import math
from contextlib import asynccontextmanager
from datetime import timedelta

from textual.containers import VerticalScroll
from textual.widgets import DataTable

from db import queries
from db.models import Metric, utcnow
from workbench.data.curves import Curve, render_run_charts, step_ticks

from .conftest import settle

TOTAL = 700
STEPS = range(1, 641)


def _lr(step: int) -> float:
    warm = min(1.0, step / 35)
    return 3e-3 * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / TOTAL)))


def _loss(step: int) -> float:
    return 8 * math.exp(-step / 40) + 0.05


def test_steps_are_whole_numbers_a_few_cells_apart():
    assert step_ticks(1, 640, 68) == [1, 200, 400, 640]
    assert step_ticks(1, 20, 40) == [1, 5, 10, 15, 20]
    assert step_ticks(3, 3, 40) == [3]
    for low, high, width in ((1, 117, 60), (5, 2350, 120), (10, 35, 30)):
        ticks = step_ticks(low, high, width)
        assert all(isinstance(t, int) for t in ticks) and ticks[0] == low and ticks[-1] == high
        assert ticks == sorted(set(ticks)) and len(ticks) <= max(2, width // 10) + 2


def test_charts_keep_the_legend_outside_mark_each_curve_and_split_the_learning_rates():
    loss = tuple((s, _loss(s)) for s in STEPS)
    val = tuple((s, _loss(s) + 0.25) for s in range(50, 641, 50))
    lr = tuple((s, _lr(s)) for s in STEPS)
    overlay = Curve("run 1 tuned", tuple((s, 3.0 / s) for s in range(1, 21)))
    loss_chart, lr_chart = render_run_charts(
        label="run 3 lora-b", loss=loss, val_loss=val, lr=lr, projector_lr=lr, overlay=overlay,
        overlay_val=Curve("run 1 tuned validation", ((10, 0.4), (20, 0.3))), width=76)
    assert [(glyph, label) for glyph, label, _ in loss_chart.legend] == [
        ("▄", "run 3 lora-b"), ("•", "run 3 lora-b validation"), ("x", "run 1 tuned"),
        ("+", "run 1 tuned validation")]
    assert len({colour for *_, colour in loss_chart.legend}) == 4
    plain = _plain(loss_chart.text)
    assert "run 3 lora-b" not in plain and "•" in plain and "x" in plain
    axis = plain.splitlines()[-1].split()
    assert axis == ["1", "200", "400", "640"]  # whole steps, never 117.5
    # The same rate for both groups: one curve that says so, not one hiding the other.
    assert [label for _, label, _ in lr_chart.legend] == ["lr = projector lr"]
    _, split = render_run_charts(label="r", loss=loss, lr=lr,
                                 projector_lr=tuple((s, v / 10) for s, v in lr), overlay=None,
                                 width=76)
    assert [label for _, label, _ in split.legend] == ["lr (left axis)",
                                                      "projector lr (right axis)"]
    # The projector's rate is read on its own axis: the right-hand ticks are a tenth of the left.
    rows = [line for line in _plain(split.text).splitlines() if "┤" in line and "├" in line]
    left, right = (float(rows[0].split("┤")[0]), float(rows[0].split("├")[1]))
    assert math.isclose(right, left / 10, rel_tol=0.1)

    logged, _ = render_run_charts(label="r", loss=loss + ((641, 0.0),), lr=lr, projector_lr=(),
                                  overlay=None, width=76, log_loss=True)
    assert logged.note == "log scale · 1 points at or below 0 not drawn"
    ticks = [float(line.split("┤")[0]) for line in _plain(logged.text).splitlines() if "┤" in line]
    assert ticks[0] / ticks[-1] > 50  # decades apart: a logarithmic axis


def _plain(ansi: str) -> str:
    from rich.text import Text

    return Text.from_ansi(ansi).plain


def _run_store(demo_store):
    """The demo store plus a long running run with validation loss every 50 steps, learning
    rates and checkpoints whose folders record their validation loss, and a second run."""
    now = utcnow()
    with demo_store.session() as session:
        live = queries.create_job(session, kind="train", title="train lora-b", params={
            "variant": "lora-b", "base": "/models/tiny", "preset": "tiny",
            "datasets": ["kitchen-images", "kitchen-videos"]})
        queries.update_job(session, job_id=live.id, status="running", step=640, total=TOTAL,
                           started_at=now - timedelta(minutes=2), heartbeat_at=now)
        for step in STEPS:
            at = now - timedelta(seconds=(640 - step) * 0.1)
            values = {"loss": _loss(step), "lr": _lr(step), "projector_lr": _lr(step) / 10,
                      "samples_per_s": 12.5, "tokens_per_s": 3200.0, "gpu_memory_gb": 61.5}
            if step % 50 == 0:
                values["val_loss"] = _loss(step) + 0.25 + (0.1 if step == 500 else 0.0)
            for name, value in values.items():
                session.add(Metric(job_id=live.id, step=step, name=name, value=value,
                                   created_at=at))
        for step in (250, 500):
            folder = demo_store.root / "runs" / f"step-{step:06d}"
            folder.mkdir(parents=True)
            (folder / "train_config.json").write_text(json.dumps(
                {"step": step, "val_loss": _loss(step) + 0.25 + (0.1 if step == 500 else 0.0)}))
            queries.add_checkpoint(session, job_id=live.id, step=step, path=str(folder))
    demo_store.live_id = live.id
    return demo_store


@asynccontextmanager
async def _runs_screen(url: str, size: tuple[int, int]):
    from workbench.app import build_app

    app = build_app(url=url)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        yield app, pilot
        await settle(pilot)


def _screen_text(app) -> list[str]:
    return ["".join(segment.text for segment in strip)
            for strip in app.screen._compositor.render_strips()]


async def test_at_80_by_24_the_table_keeps_its_first_columns_and_the_curve_is_whole(demo_store):
    store = _run_store(demo_store)
    async with _runs_screen(store.url, (80, 24)) as (app, pilot):
        table = app.screen.query_one("#runs-table", DataTable)
        keys = [column.key.value for column in table.columns.values()]
        # By priority: the run, where it is and its loss stay; throughput and start time go.
        assert keys[:7] == ["mark", "id", "variant", "status", "progress", "eta", "loss"]
        assert "started" not in keys and "tokens_per_s" not in keys
        lines = _screen_text(app)
        header = next(line for line in lines if " id " in line)
        assert "step/total" in header and "loss" in header and header.rstrip() == header.rstrip()[:80]
        assert all(len(line) <= 80 for line in lines)
        # One column: the files pane gives its width to the curves, which come first.
        assert not app.screen.query_one("#run-files-scroll").display
        assert app.screen.query_one("#run-files-below").display
        chart = next(i for i, line in enumerate(lines) if line.strip() == "loss")
        box = lines[chart + 1]
        assert box.count("─") >= 60  # a chart as wide as the screen, not 38 columns
        legend = next(line for line in lines[chart:] if "▄▄ run" in line)
        assert f"run {store.live_id} lora-b" in legend and "validation" in legend
        axis = lines[lines.index(legend) - 1].split()
        assert axis and all(tick.isdigit() for tick in axis)

        # `l`: the loss on a log scale, said under the chart; again: linear.
        await pilot.press("l")
        await settle(pilot)
        loss_text = str(app.screen.query_one("#run-loss").content)
        assert "log scale" in loss_text
        await pilot.press("l")
        await settle(pilot)
        assert "log scale" not in str(app.screen.query_one("#run-loss").content)

        # The checkpoint with the lowest validation loss is marked (step 250: 500's is higher).
        files = str(app.screen.query_one("#run-files-below").content)
        assert "val 0.3154 best" in " ".join(files.split())
        assert f"from-checkpoint {store.live_id} --name NAME --best" in files


async def test_selecting_another_run_shows_its_detail_from_the_top(demo_store):
    store = _run_store(demo_store)
    async with _runs_screen(store.url, (80, 24)) as (app, pilot):
        main = app.screen.query_one("#run-main", VerticalScroll)
        assert main.max_scroll_y > 0
        main.scroll_end(animate=False)
        await settle(pilot)
        assert main.scroll_y > 0
        await pilot.press("down")  # the next run
        await settle(pilot)
        assert app.screen.selected_run_id == store.train_job_id
        assert main.scroll_y == 0


async def test_at_160_by_45_files_are_beside_the_curves(demo_store):
    store = _run_store(demo_store)
    async with _runs_screen(store.url, (160, 45)) as (app, pilot):
        table = app.screen.query_one("#runs-table", DataTable)
        assert [c.key.value for c in table.columns.values()][-1] == "started"
        assert app.screen.query_one("#run-files-scroll").display
        assert not app.screen.query_one("#run-files-below").display
        assert f"run {store.live_id} lora-b validation" in str(
            app.screen.query_one("#run-loss").content)
