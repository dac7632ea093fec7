"""Layout snapshots of every screen this module owns, at 80×24 (an SSH terminal's first size) and
160×45, over one fixed store: a change in what is drawn fails here until the new pictures are
looked at and accepted with `pytest tests/workbench/test_snapshots.py --snapshot-update`.

The store draws nothing that changes between runs or machines: no clock, no temporary path, the
generations' times fixed and shown in UTC."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from db import queries
from db.campaigns import add_campaign
from db.models import Generation, Job, Metric
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


@contextmanager
def local_time_is_utc():
    """Times are drawn in local time: UTC while the block runs, whatever the machine's zone."""
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()


@pytest.fixture(scope="module")
def snapshot_store(tmp_path_factory):
    """The workbench fixture store, plus a third variant, offline judgments with their parts
    for every generation, fixed generation times and a pairwise rating campaign."""
    with local_time_is_utc():
        yield from _snapshot_store(tmp_path_factory)


def _snapshot_store(tmp_path_factory):
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


# tuned's step times for eval-00 (annotated 0–3 s, 3–6.5 s, 6.5–9 s; 9 s long).
TIMED_STEPS = ("1. [0.0s - 3.5s] Beat the eggs.\n2. [3.0s - 6.0s] Fry the tomato.\n"
               "3. [6.0s - 10.0s] Cook the omelette.")
# The job screens' "now": ages, heartbeats and ETAs are drawn against it.
NOW = datetime(2025, 3, 14, 9, 30, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def jobs_store(tmp_path_factory):
    """The workbench fixture store with every job time fixed before NOW, its running job held by
    this process (so it reads as running, however long the suite takes), an ablation grid whose
    base is judged, a 7B base, the newest, for the New run form (a path that is the same on
    every machine) and tuned's step times for eval-00. Yields (engine, workspace)."""
    with local_time_is_utc():
        yield from _jobs_store(tmp_path_factory)


def _jobs_store(tmp_path_factory):
    from engine.jobs.grid import GridRequest, create_grid
    from engine.model.tiny import MARKER

    root = tmp_path_factory.mktemp("jobs")
    store = _build_demo(root)
    tiny = root / "models" / "tiny"
    tiny.mkdir(parents=True)
    (tiny / MARKER).write_text("{}")
    (tiny / "config.json").write_text("{}")
    with session_scope(store.db_engine) as session:
        base = queries.get_variant(session, name="base")
        base.base_model = str(tiny)
        session.add(base)
        for job in session.exec(select(Job)).all():
            for name in ("created_at", "started_at", "heartbeat_at", "finished_at", "queued_at"):
                if getattr(job, name) is not None:
                    setattr(job, name, NOW - timedelta(minutes=10, seconds=-job.id))
            if job.status == "running":
                job.host, job.pid = socket.gethostname(), os.getpid()
                job.heartbeat_at = NOW - timedelta(seconds=2)
            session.add(job)
        for metric in session.exec(select(Metric)).all():
            metric.created_at = NOW - timedelta(minutes=9, seconds=-3 * metric.step)
            session.add(metric)
        tuned = queries.get_variant(session, name="tuned")
        queries.add_generation(session, variant_id=tuned.id, sample_id=store.eval_sample_ids[0],
                               prompt="When?", text=TIMED_STEPS, params_key="ts",
                               task="timestamps")
        for generation in session.exec(select(Generation)).all():
            generation.created_at = CREATED
            session.add(generation)
    create_grid(store.db_engine, GridRequest(
        name="modalities", base=str(tiny), eval_set="kitchen-eval", preset="tiny",
        datasets=["kitchen-images", "kitchen-videos", "kitchen-text"]))
    with session_scope(store.db_engine) as session:
        queries.create_variant(session, name="video-llava-7b",
                               base_model="LanguageBind/Video-LLaVA-7B-hf")
    yield store.db_engine, root
    store.db_engine.dispose()


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


@SIZES
def test_served_rating_app_asks_the_raters_name(snap_compare, snapshot_store, size):
    app = workbench(snapshot_store, ask_rater=True, campaign="omelettes")
    assert snap_compare(app, terminal_size=size, run_before=keys())


def job_screens(jobs_store) -> DdftApp:
    db_engine, root = jobs_store
    return workbench(db_engine, workspace=root, clock=lambda: NOW)


# The screens over jobs_store, each by the keys that open it.
JOB_SCREENS = {
    "jobs": ("2",),
    "jobs_finished_training_selected": ("2", "down"),
    "runs": ("5",),
    "grid": ("6",),
    "new_run_form": ("5", "n"),
    "compare_times": ("3", "f"),
}


@SIZES
@pytest.mark.parametrize("screen", list(JOB_SCREENS))
def test_job_screens(snap_compare, jobs_store, screen, size):
    assert snap_compare(job_screens(jobs_store), terminal_size=size,
                        run_before=keys(*JOB_SCREENS[screen]))
