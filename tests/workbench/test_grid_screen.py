"""The Grid screen and the Jobs screen at 80×24: a grid's cells with their status, then its
comparison table; a queued job's place in line is in the status column, which is on screen."""

from __future__ import annotations

import socket
from datetime import timedelta

from textual.widgets import DataTable, Static

from db import queries
from db.models import utcnow
from db.store import open_store, session_scope
from engine.evaluation.recipe import format_recipe

from .conftest import settle

NARROW = (80, 24)
REFERENCE = format_recipe("Tomato Soup", ["4 cups tomatoes", "1 tsp salt"],
                          ["Simmer the tomatoes.", "Blend until smooth."])


def _grid_store(tmp_path) -> str:
    """A grid `abl[/]` (a name that must stay literal) with the base and three cells, judged on
    three videos; the image cell's judge still queued."""
    url = f"sqlite:///{tmp_path}/ddft.db"
    db_engine = open_store(url=url)
    now = utcnow()
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "recipe?",
             "answer": REFERENCE, "group": f"g{i}"} for i in range(3)])
        samples = queries.list_samples(session, dataset_id=dataset.id)
        cells = [{"variant": "abl[/]-base", "is_base": True, "modalities": [], "settings": {}}]
        cells += [{"variant": f"abl[/]-{m}", "is_base": False, "modalities": m.split("+"),
                   "settings": {}} for m in ("image", "video", "image+video")]
        grid = queries.create_grid(session, name="abl[/]", cells=cells, base="/m",
                                   base_variant="abl[/]-base", eval_set="eval",
                                   datasets={"i": "image", "v": "video"},
                                   judges=[{"judge": "offline"}])
        for score, cell in zip((1.0, 2.0, 4.0, 5.0),
                               queries.grid_cells(session, grid_id=grid.id)):
            variant = queries.create_variant(session, name=cell.variant, base_model="/m")
            ids = {}
            for kind in ("train", "generate", "judge"):
                if kind == "train" and cell.is_base:
                    continue
                job = queries.create_job(session, kind=kind, params={}, queue="elsewhere")
                status = "queued" if (kind == "judge" and cell.variant.endswith("-image")) \
                    else "succeeded"
                queries.update_job(session, job_id=job.id, status=status,
                                   started_at=now - timedelta(hours=1), finished_at=now,
                                   result={"steps": 20, "n_samples": 8})
                ids[kind] = job.id
            queries.update_grid_cell(session, cell_id=cell.id, train_job_id=ids.get("train"),
                                     generate_job_id=ids["generate"],
                                     judge_job_ids=[ids["judge"]])
            for sample in samples:
                generation = queries.add_generation(session, variant_id=variant.id,
                                                    sample_id=sample.id, prompt="p",
                                                    text="t", params_key="k")
                value = min(5.0, score + (sample.id % 2))
                queries.add_judgment(session, generation_id=generation.id, judge="offline",
                                     protocol="offline", prompt_version="offline-v2",
                                     score=value, verdict="yes" if value >= 3.5 else "no",
                                     raw="")
    db_engine.dispose()
    return url


async def test_the_grid_screen_shows_cells_and_states_then_the_table_at_80x24(tmp_path):
    from workbench.app import build_app

    app = build_app(url=_grid_store(tmp_path))
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        screen = app.screen
        assert type(screen).__name__ == "GridScreen"
        table = screen.query_one("#grid-table", DataTable)
        assert [str(c) for c in table.get_column("cell")] == [
            "base (untuned)", "image", "video", "image+video"]
        assert [str(c) for c in table.get_column("state")] == ["done", "queued", "done", "done"]
        # The cell and its state are the first columns: on screen at 80 columns.
        widths = [column.get_render_width(table) for column in table.columns.values()]
        assert sum(widths[:2]) <= table.size.width
        title = str(screen.query_one("#grid-title", Static).content)
        assert title.startswith("grid abl[/] on eval")  # literal, not markup
        report = str(screen.query_one("#grid-report", Static).content)
        assert "Holm-adjusted across the grid's 5 comparisons" in report
        # The comparison table keeps the columns that fit 80 columns, by priority, and names
        # the others.
        results = screen.query_one("#grid-results", DataTable)
        labels = [str(column.label) for column in results.columns.values()]
        assert labels[0] == "Cell"
        assert {"Accuracy", "Average Score", "vs base (Holm)"} <= set(labels), labels
        assert sum(c.get_render_width(results) for c in results.columns.values()) <= 80
        assert [str(c) for c in results.get_column("0")] == [
            "base (untuned)", "image", "video", "image + video"]
        left_out = str(screen.query_one("#grid-left-out", Static).content)
        assert left_out.startswith("Left out at this width: ") and "GPU-hours" in left_out
        assert "Variant" in left_out


async def test_the_jobs_screen_at_80x24_shows_id_kind_status_and_the_place_in_line(tmp_path):
    from workbench.app import build_app

    url = f"sqlite:///{tmp_path}/ddft.db"
    db_engine = open_store(url=url)
    host = socket.gethostname()
    with session_scope(db_engine) as session:
        busy = queries.create_job(session, kind="train", params={}, title="train a " * 8,
                                  queue=host)
        queries.update_job(session, job_id=busy.id, status="running", pid=None, host="",
                           heartbeat_at=utcnow())
        waiting = queries.create_job(session, kind="generate", params={}, queue=host,
                                     title="generate a-long-variant-name " * 3)
    db_engine.dispose()
    app = build_app(url=url)
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#jobs-table", DataTable)
        keys = [str(key.value) for key in table.columns]
        assert keys[:4] == ["id", "kind", "status", "progress"]
        assert [str(c) for c in table.get_column("status")] == ["queued #1", "running"]
        widths = [column.get_render_width(table) for column in table.columns.values()]
        assert sum(widths[:3]) <= table.size.width
        table.move_cursor(row=0)
        await settle(pilot)
        detail = str(app.screen.query_one("#job-detail").content)
        assert f"queue: queued, position 1; device busy with job {busy.id}" in detail
        assert waiting.id != busy.id
