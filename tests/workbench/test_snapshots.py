"""Layout snapshots of every screen this module owns, at 80×24 (an SSH terminal's first size) and
160×45, over one fixed store: a change in what is drawn fails here until the new pictures are
looked at and accepted with `pytest tests/workbench/test_snapshots.py --snapshot-update`.

The store draws nothing that changes between runs or machines: no clock, no temporary path, the
generations' times fixed and shown in UTC."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest
from sqlmodel import select

from db import queries
from db.campaigns import add_campaign
from db.models import Generation
from db.store import session_scope
from engine.evaluation.offline_judge import JUDGE_NAME, PROMPT_VERSION, PROTOCOL, score_recipe
from workbench.app import DdftApp

from .conftest import REFERENCE, _build_demo, settle

SMALL, LARGE = (80, 24), (160, 45)
SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x45"])
CREATED = datetime(2025, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
# A third variant, so that Compare has a variant to cycle to at 160 columns too.
V2_TEXT = """Dish: Tomato omelette 0
Ingredients:
- 2 eggs
- 1 tomato, diced
- 1 tbsp olive oil
Steps:
1. Beat the eggs in a bowl with a pinch of salt until they are frothy and pale.
2. Fry the tomato in the olive oil.
3. Add the eggs and cook until set."""


@pytest.fixture(scope="module")
def snapshot_store(tmp_path_factory):
    """The workbench fixture store, plus a third variant, offline judgments with their parts
    for every generation, fixed generation times and a pairwise rating campaign."""
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"  # generation times are drawn in local time
    time.tzset()
    store = _build_demo(tmp_path_factory.mktemp("snapshots"))
    with session_scope(store.db_engine) as session:
        v2 = queries.create_variant(session, name="tuned-v2", base_model="/models/tiny")
        for index, sample_id in enumerate(store.eval_sample_ids[:5]):
            queries.add_generation(session, variant_id=v2.id, sample_id=sample_id,
                                   prompt="p", text=V2_TEXT.replace(" 0\n", f" {index}\n"),
                                   params_key="greedy-256", decoding={"max_new_tokens": 256},
                                   frame_times=[0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7])
        for generation in session.exec(select(Generation)).all():
            generation.created_at = CREATED
            sample = queries.get_sample(session, sample_id=generation.sample_id)
            scored = score_recipe(generation.text, sample.answer)
            queries.add_judgment(session, generation_id=generation.id, judge=JUDGE_NAME,
                                 protocol=PROTOCOL, prompt_version=PROMPT_VERSION,
                                 score=scored.score, verdict=scored.verdict, raw="",
                                 details=scored.details())
        variants = {v.name: v.id for v in queries.list_variants(session)}
        latest = {}
        for generation in session.exec(select(Generation).order_by(Generation.id)).all():
            latest[(generation.sample_id, generation.variant_id)] = generation.id
        dataset = queries.get_dataset(session, name="kitchen-eval")
        add_campaign(session, name="omelettes", mode="pairwise", dataset_id=dataset.id,
                     variant_ids=[variants["tuned"], variants["base"]], raters_per_item=1,
                     seed=7, items=[(s, latest[(s, variants["tuned"])],
                                     latest[(s, variants["base"])])
                                    for s in store.eval_sample_ids[:3]])
    assert REFERENCE.startswith("Dish: Tomato omelette")
    yield store.db_engine
    store.db_engine.dispose()
    if old_tz is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old_tz
    time.tzset()


def workbench(db_engine, **kwargs) -> DdftApp:
    # A fixed location in the title, not the temporary folder's path.
    return DdftApp(db_engine, location="~/kitchen-workspace", **kwargs)


def keys(*pressed: str):
    """A `run_before` that lets the app settle, presses `pressed` one by one and settles."""
    async def run(pilot) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)
        await pilot.pause()

    return run


@SIZES
def test_samples(snap_compare, snapshot_store, size):
    assert snap_compare(workbench(snapshot_store), terminal_size=size, run_before=keys())


def test_samples_filters_opened_at_80x24(snap_compare, snapshot_store):
    assert snap_compare(workbench(snapshot_store), terminal_size=SMALL, run_before=keys("f"))


@SIZES
def test_compare_reference_beside_variants(snap_compare, snapshot_store, size):
    assert snap_compare(workbench(snapshot_store), terminal_size=size, run_before=keys("3"))


@SIZES
def test_compare_v_shows_the_next_variant(snap_compare, snapshot_store, size):
    assert snap_compare(workbench(snapshot_store), terminal_size=size, run_before=keys("3", "v"))


@SIZES
def test_report(snap_compare, snapshot_store, size):
    assert snap_compare(workbench(snapshot_store), terminal_size=size, run_before=keys("4"))


@SIZES
def test_help(snap_compare, snapshot_store, size):
    assert snap_compare(workbench(snapshot_store), terminal_size=size,
                        run_before=keys("3", "question_mark"))


@SIZES
def test_rating_app(snap_compare, snapshot_store, size):
    app = workbench(snapshot_store, rater="ana", campaign="omelettes")
    assert snap_compare(app, terminal_size=size, run_before=keys())
