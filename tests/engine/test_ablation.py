"""A modality ablation grid end to end on the tiny model: four cells and the base, queued on the
one device, cancelled mid-grid and continued without training a finished cell again, then its
report with paired tests, Holm-corrected."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from db import queries
from db.store import session_scope
from engine.evaluation.recipe import format_recipe
from engine.jobs import effective_status
from engine.jobs.grid import (
    GridError,
    GridRequest,
    advance_grid,
    cancel_grid,
    create_grid,
    grid_status,
    wait_for_grid,
)
from tests.waiting import wait_for

RECIPES = {
    "red": format_recipe("Tomato Soup", ["4 cups chopped tomatoes", "1/2 tsp salt"],
                         ["Simmer the tomatoes for 20 minutes.", "Blend until smooth."]),
    "green": format_recipe("Green Salad", ["2 cups lettuce", "1 tbsp olive oil"],
                           ["Wash the lettuce.", "Toss with the oil."]),
}
TRAINING = {"max_steps": "2", "batch_size": "1", "save_every": "0", "val_fraction": "0",
            "seed": "0"}


def _kitchen(db_engine, media: Path) -> list[str]:
    """Tiny image, video and question sets and a two-video eval set."""
    def add(name, modality, purpose, samples):
        with session_scope(db_engine) as session:
            dataset = queries.get_or_create_dataset(session, name=name, modality=modality,
                                                    purpose=purpose)
            queries.add_samples(session, dataset_id=dataset.id, samples=samples)

    add("dishes", "image", "train", [
        {"external_id": c, "modality": "image", "media_path": str(media / f"{c}.png"),
         "prompt": "What is the dish in this image?", "answer": RECIPES[c].splitlines()[0]}
        for c in RECIPES])
    add("cooking", "video", "train", [
        {"external_id": c, "modality": "video", "media_path": str(media / f"{c}0.mp4"),
         "prompt": "Give me the recipe.", "answer": RECIPES[c]} for c in RECIPES])
    add("questions", "text", "train", [
        {"external_id": f"q{i}", "modality": "text", "prompt": f"Question {i}?",
         "answer": f"Answer {i}."} for i in range(2)])
    add("eval", "video", "eval", [
        {"external_id": c, "modality": "video", "media_path": str(media / f"{c}1.mp4"),
         "prompt": "Give me the recipe.", "answer": RECIPES[c], "group": c} for c in RECIPES])
    return ["dishes", "cooking", "questions"]


def _jobs(db_engine, ids):
    with session_scope(db_engine) as session:
        return queries.jobs_by_id(session, job_ids=ids)


def test_a_four_cell_grid_runs_through_the_queue_survives_a_cancel_and_reports(
        engine_tiny_model, engine_media_dir, ddft_workspace, ddft_store, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path.cwd()), *sys.path]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    db_engine = ddft_store
    datasets = _kitchen(db_engine, engine_media_dir)
    request = GridRequest(name="g", base=str(engine_tiny_model), datasets=datasets,
                          eval_set="eval", preset="tiny", overrides=TRAINING,
                          generation={"batch_size": 2, "max_new_tokens": 8})
    create_grid(db_engine, request)
    with pytest.raises(GridError, match="exists already"):
        create_grid(db_engine, request)
    counts = advance_grid(db_engine, "g", workspace=ddft_workspace)
    # 4 trainings, 5 generations (the base's too), 5 judgments.
    assert counts == {"queued": 14, "resumed": 0, "kept": 0}
    status = grid_status(db_engine, "g")
    assert [c.variant for c in status.cells] == ["g-base", "g-image", "g-video", "g-questions",
                                                 "g-image+video+questions"]
    train_ids = [c.job_ids[0] for c in status.cells[1:]]

    # Cancel mid-grid, once the first cell has trained.
    wait_for(lambda: _jobs(db_engine, train_ids[:1])[train_ids[0]].status == "succeeded",
             "the first cell's training", timeout=300)
    first = _jobs(db_engine, train_ids[:1])[train_ids[0]]
    cancel_grid(db_engine, "g")
    wait_for(lambda: not [j for j in _jobs(db_engine, grid_jobs_of(db_engine)).values()
                          if effective_status(j) in ("queued", "running")],
             "every job to stop")
    stopped = grid_status(db_engine, "g")
    assert any(c.state == "stopped" for c in stopped.cells)

    # The same command again continues: the finished training is kept, the rest resumed.
    again = advance_grid(db_engine, "g", workspace=ddft_workspace)
    assert again["resumed"] >= 1 and again["queued"] == 0
    done = wait_for_grid(db_engine, "g", poll_s=0.2)
    assert done.done, [(c.variant, c.train, c.generate, c.judges) for c in done.cells]
    trains = _jobs(db_engine, train_ids)
    kept = trains[train_ids[0]]
    assert (kept.started_at, kept.finished_at, kept.result) == (
        first.started_at, first.finished_at, first.result)
    # One device: no two training runs overlapped.
    spans = sorted((job.started_at, job.finished_at) for job in trains.values())
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, spans

    from engine.evaluation.grid_report import build_grid_report, render

    with session_scope(db_engine) as session:
        report = build_grid_report(session, "g", states={c.variant: c.state
                                                         for c in done.cells}, n_boot=200)
    assert [row.variant for row in report.rows] == [c.variant for c in done.cells]
    assert all(row.table is not None and row.table.n == 2 for row in report.rows)
    assert report.family == 4 + 3  # each cell against the base; the single ones against all
    for row in report.rows[1:]:
        against = {test.against for test in row.tests}
        assert against == ({"base"} if row.variant.endswith("+questions") else {"base", "all"})
        assert row.cost.steps == 2 and row.cost.gpu_hours > 0
    markdown = render(report, "md")
    assert "Holm-adjusted across the grid's 7 comparisons" in markdown
    assert markdown.count("\n| ") == 1 + 5  # the header and five rows
    assert render(report, "csv").count("\n") == 6


def grid_jobs_of(db_engine) -> list[int]:
    return [i for c in grid_status(db_engine, "g").cells for i in c.job_ids]
