"""Fixtures for the workbench tests: a demo-like store, an empty one, and a way to let workers settle."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from db import queries
from db.models import utcnow
from db.store import open_store, session_scope

DISH_PROMPT = "What is the dish in this image?"
RECIPE_PROMPT = "Can you give me a recipe from the provided videos?"
REFERENCE = """Dish: Tomato omelette {i}
Ingredients:
- 2 eggs
- 1 tomato, diced
- 1 tbsp olive oil
- pinch of salt
Steps:
1. Beat the eggs.
2. Fry the tomato in the olive oil.
3. Add the eggs and cook until set."""
TUNED_TEXT = """Dish: Tomato omelette
Ingredients:
- 3 eggs
- 1 tomato
- 2 tbsp olive oil
Steps:
1. Beat eggs.
2. Cook with the tomato."""
BASE_TEXT = """Dish: Soup
Ingredients:
- water
- salt
Steps:
1. Boil the water."""
# Offline judgments per eval sample (score, verdict); Table 1 by hand:
#   base : yes 3, no 6, unparsable 1 → accuracy 3/9 = 33.33%, average (4+3.5+4.5+2+1.5+3+2.5+1+2)/9 = 2.67
#   tuned: yes 7, no 3               → accuracy 7/10 = 70.00%, average 36.5/10 = 3.65
BASE_JUDGED = [(4.0, "yes"), (2.0, "no"), (3.5, "yes"), (1.5, "no"), (3.0, "no"),
               (None, "unparsable"), (4.5, "yes"), (2.5, "no"), (1.0, "no"), (2.0, "no")]
TUNED_JUDGED = [(4.0, "yes"), (4.5, "yes"), (2.0, "no"), (5.0, "yes"), (3.5, "yes"),
                (3.0, "no"), (4.0, "yes"), (4.5, "yes"), (2.5, "no"), (3.5, "yes")]
# A second judge on four tuned generations: yes 3, no 1 → 75.00%, average 15/4 = 3.75.
GPT_JUDGED = [(4.0, "yes"), (5.0, "yes"), (2.0, "no"), (4.0, "yes")]
# `ddft data check` outcomes by external id; every other sample stays unchecked.
FAILED_REASON = "media: cannot open /data/kitchen/images/img-001.png"
WARN_REASON = "overlap: same dish or recipe type (breakfast) as eval sample 81"
CHECKS = {"img-001": ("failed", [FAILED_REASON]), "img-002": ("warn", [WARN_REASON]),
          "img-003": ("ok", []), "vid-002": ("ok", []), "vid-004": ("ok", [])}
# vid-002's strip: 8 frames of 12×8 px (drawn at that size, 4 cells high), frame f with its top
# pixel row STRIP_TOP[f] and the rest STRIP_REST; vid-004 names a strip that is not on disk.
STRIP_TOP = [(30 * f, 200, 40) for f in range(8)]
STRIP_REST = (10, 20, 250)


def write_strip(path: Path) -> Path:
    from PIL import Image

    image = Image.new("RGB", (12 * 8, 8), STRIP_REST)
    for f, colour in enumerate(STRIP_TOP):
        image.paste(colour, (12 * f, 0, 12 * (f + 1), 1))
    image.save(path)
    return path


@dataclass
class DemoStore:
    url: str
    root: Path
    db_engine: object
    eval_sample_ids: list[int] = field(default_factory=list)
    train_job_id: int = 0
    running_job_id: int = 0
    log_path: Path | None = None

    def session(self):
        return session_scope(self.db_engine)


def _build_demo(tmp_path: Path) -> DemoStore:
    url = f"sqlite:///{tmp_path}/ddft.db"
    db_engine = open_store(url=url)
    store = DemoStore(url=url, root=tmp_path, db_engine=db_engine)
    now = utcnow()
    with session_scope(db_engine) as session:
        images = queries.get_or_create_dataset(session, name="kitchen-images", modality="image",
                                               source="synthetic")
        queries.add_samples(session, dataset_id=images.id, samples=[
            {"external_id": f"img-{i:03d}", "modality": "image", "split": "val" if i % 10 == 0 else "train",
             "media_path": f"/data/kitchen/images/img-{i:03d}.png", "prompt": DISH_PROMPT,
             "answer": f"Pancake number {i}", "group": "breakfast"}
            for i in range(40)
        ])
        videos = queries.get_or_create_dataset(session, name="kitchen-videos", modality="video",
                                               source="synthetic")
        queries.add_samples(session, dataset_id=videos.id, samples=[
            {"external_id": f"vid-{i:03d}", "modality": "video", "split": "train",
             "media_path": f"/data/kitchen/videos/vid-{i:03d}.mp4", "prompt": RECIPE_PROMPT,
             "answer": f"Dish: Stew {i}\nIngredients:\n- 1 onion\nSteps:\n1. Simmer.",
             "duration_s": 12.0,
             # Odd videos were never probed, so they have no frame times.
             "meta": {"frame_times": [0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5]} if i % 2 == 0 else {}}
            for i in range(40)
        ])
        text = queries.get_or_create_dataset(session, name="kitchen-text", modality="text",
                                             source="questions")
        queries.add_samples(session, dataset_id=text.id, samples=[
            {"external_id": f"q-{i:03d}", "modality": "text", "split": "train",
             "prompt": f"How long do I boil egg {i}?", "answer": "About nine minutes."}
            for i in range(30)
        ])
        evalset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="video",
                                                purpose="eval", source="synthetic")
        queries.add_samples(session, dataset_id=evalset.id, samples=[
            {"external_id": f"eval-{i:02d}", "modality": "video", "split": "test",
             "media_path": f"/data/kitchen/eval/eval-{i:02d}.mp4", "prompt": RECIPE_PROMPT,
             "answer": REFERENCE.format(i=i), "group": "omelette", "duration_s": 9.0,
             "meta": {"frame_times": [0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7],
                      "segments": [{"segment": [0.0, 3.0], "id": 0, "sentence": "beat the eggs"},
                                   {"segment": [3.0, 6.5], "id": 1, "sentence": "fry the tomato"},
                                   {"segment": [6.5, 9.0], "id": 2, "sentence": "cook the omelette"}]}}
            for i in range(10)
        ])
        store.eval_sample_ids = [s.id for s in queries.list_samples(session, dataset_id=evalset.id)]

        strip = write_strip(tmp_path / "vid-002.png")
        for sample in queries.list_samples(session, limit=None):
            if sample.external_id not in CHECKS:
                continue
            sample.check_status, sample.check_reasons = CHECKS[sample.external_id]
            sample.checked_at = now
            if sample.modality == "video":
                sample.meta = {**sample.meta, "tokens": 2056, "fps": 24.0, "n_frames": 288,
                               "frame_strip": str(strip) if sample.external_id == "vid-002"
                               else str(tmp_path / "gone.png")}
            session.add(sample)

        train = queries.create_job(session, kind="train", params={"variant": "tuned", "steps": 20,
                                                                   "learning_rate": 0.0002},
                                   title="LoRA tuned")
        store.log_path = tmp_path / "train.log"
        store.log_path.write_text("".join(f"step {s} loss {3.0 / s:.4f}\n" for s in range(1, 31)))
        queries.update_job(session, job_id=train.id, status="succeeded", step=20, total=20,
                           message="done", log_path=str(store.log_path),
                           started_at=now - timedelta(minutes=5), heartbeat_at=now - timedelta(minutes=1),
                           finished_at=now - timedelta(minutes=1))
        for step in range(1, 21):
            queries.add_metrics(session, job_id=train.id, step=step,
                                values={"loss": 3.0 / step, "lr": 0.0002})
        store.train_job_id = train.id
        tuned = queries.create_variant(session, name="tuned", base_model="/models/tiny",
                                       adapter_path="/runs/1/final", job_id=train.id)
        base = queries.create_variant(session, name="base", base_model="/models/tiny")

        running = queries.create_job(session, kind="generate", params={"variant": "tuned"},
                                     title="generate tuned")
        # No pid and no host: engine.jobs judges it by its fresh heartbeat and leaves it running.
        queries.update_job(session, job_id=running.id, status="running", step=3, total=10,
                           message="generating", started_at=now - timedelta(seconds=30),
                           heartbeat_at=now)
        store.running_job_id = running.id

        for variant, text_out, judged in ((base, BASE_TEXT, BASE_JUDGED), (tuned, TUNED_TEXT, TUNED_JUDGED)):
            for index, (sample_id, (score, verdict)) in enumerate(zip(store.eval_sample_ids, judged)):
                generation = queries.add_generation(
                    session, variant_id=variant.id, sample_id=sample_id, prompt=RECIPE_PROMPT,
                    text=text_out, params_key="greedy-256",
                    decoding={"max_new_tokens": 256, "do_sample": False},
                    frame_indices=[0, 3, 6, 9, 12, 15, 18, 21],
                    frame_times=[0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7], job_id=running.id)
                queries.add_judgment(session, generation_id=generation.id, judge="offline",
                                     protocol="offline", prompt_version="v1", score=score,
                                     verdict=verdict, raw=f"score {score}")
                if variant is tuned and index < len(GPT_JUDGED):
                    gpt_score, gpt_verdict = GPT_JUDGED[index]
                    queries.add_judgment(session, generation_id=generation.id, judge="gpt-3.5-turbo",
                                         protocol="paper", prompt_version="p1", score=gpt_score,
                                         verdict=gpt_verdict, raw="{}")
    return store


@pytest.fixture
def demo_store(tmp_path: Path) -> DemoStore:
    return _build_demo(tmp_path)


@pytest.fixture
def empty_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/empty.db"
    open_store(url=url)
    return url


async def settle(pilot, rounds: int = 5) -> None:
    """Let thread workers finish and their messages be handled (handlers may start more)."""
    from textual.worker import WorkerCancelled, WorkerState

    app = pilot.app
    for _ in range(rounds):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:  # an exclusive worker replaced by a newer one, or the app exiting
            pass
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            return


SIZE = (160, 48)


def variant_column(app, name: str) -> str:
    """The text of the Compare column showing variant `name` (its heading names it)."""
    import re

    for pane in app.screen.query(".generation"):
        text = str(pane.content)
        if re.match(rf"(Generation|Times) · {re.escape(name)}\b", text):
            return text
    raise AssertionError(f"no column shows {name}")



@asynccontextmanager
async def running(url: str):
    """The workbench on the store at `url`, settled on its first screen; fails the test when any
    worker failed meanwhile (a failure would otherwise only show as a notification)."""
    from textual.worker import Worker, WorkerState

    from workbench.app import build_app

    failures: list[str] = []

    def record(message) -> None:
        if isinstance(message, Worker.StateChanged) and message.state == WorkerState.ERROR:
            failures.append(f"{message.worker.group}: {message.worker.error!r}")

    app = build_app(url=url)
    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        await settle(pilot)
        yield app, pilot
        await settle(pilot)
    assert not failures, failures
