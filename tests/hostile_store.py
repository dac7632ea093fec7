"""A store whose every name, id, path, prompt, text and error holds Rich markup or a shell
metacharacter: what a shared workspace may receive from other people. Every view must show
these strings literally (never parse `[/]` as a tag) and every printed command must quote them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from db import queries
from db.campaigns import get_campaign, get_or_create_rater, next_item, save_rating
from db.models import utcnow
from db.store import open_store, session_scope
from engine.evaluation.recipe import format_recipe
from engine.evaluation.rating import create_campaign

BASE = "[/]"
TUNED = "[red]x"
EVAL_SET = "[bold]eval"
TRAIN_SET = "[/]imgs"
CAMPAIGN = "[bold]duel; rm -rf /"
RATER = "[red]ada"
SAMPLE_ID = "t[/]1"
OTHER_SAMPLE_ID = "[red]s2"
IMAGE_ID = "[bold]img"
PROMPT = "What is in [media_path]? [/]"
MEDIA = "/data/[media_path]/a [/].png"
FAILED_REASON = f"media: cannot open {MEDIA}"
RECIPE_MARK = "[bold]whisk[/]"  # in a generated step: the Compare screen must show it as typed
JOB_TITLE = "train [red]x"
JOB_MESSAGE = "[/] done"
JOB_ERROR = "[media_path] vanished: [/]"
LOG_LINE = "[/] step 1 loss [red]2.0"
# Strings that must reach the screen or the output exactly as written.
LITERALS = (BASE, TUNED, EVAL_SET, SAMPLE_ID, PROMPT)


@dataclass
class HostileStore:
    folder: Path
    url: str
    db_engine: object
    train_job_id: int
    failed_job_id: int

    def session(self):
        return session_scope(self.db_engine)


def build_hostile_store(folder: Path) -> HostileStore:
    """The store (ddft.db) in `folder`: an eval set of two videos, a training set of one
    failed image, a base and a tuned variant with judged recipes for both videos, a finished
    training job with a log, a failed job, and a pairwise campaign one rater has started."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder}/ddft.db"
    db_engine = open_store(url=url)
    now = utcnow()
    log = folder / "train.log"
    log.write_text(f"{LOG_LINE}\n")
    with session_scope(db_engine) as session:
        evalset = queries.get_or_create_dataset(session, name=EVAL_SET, modality="video",
                                                purpose="eval", source="[red]src")
        queries.add_samples(session, dataset_id=evalset.id, samples=[
            {"external_id": external_id, "modality": "video", "split": "test",
             "media_path": MEDIA.replace(".png", f"{i}.mp4"), "prompt": PROMPT,
             "answer": format_recipe(f"[/]dish {i}", ["2 [red]eggs"], ["Beat [/] the eggs."]),
             "group": "[bold]omelette", "duration_s": 9.0,
             "meta": {"frame_times": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                      "segments": [{"segment": [0.0, 4.0], "id": 0, "sentence": "[/]beat"}]}}
            for i, external_id in enumerate((SAMPLE_ID, OTHER_SAMPLE_ID))])
        images = queries.get_or_create_dataset(session, name=TRAIN_SET, modality="image")
        queries.add_samples(session, dataset_id=images.id, samples=[
            {"external_id": IMAGE_ID, "modality": "image", "split": "train", "media_path": MEDIA,
             "prompt": PROMPT, "answer": "[/]pancake"}])
        image = queries.list_samples(session, dataset_id=images.id)[0]
        image.check_status, image.check_reasons, image.checked_at = (
            "failed", [FAILED_REASON], now)
        session.add(image)

        train = queries.create_job(session, kind="train", title=JOB_TITLE, params={
            "variant": TUNED, "base": "/models/[/]tiny", "preset": "tiny",
            "datasets": {TRAIN_SET: 1.0}, "overrides": {}, "gpus": 1})
        queries.update_job(session, job_id=train.id, status="succeeded", step=2, total=2,
                           message=JOB_MESSAGE, log_path=str(log),
                           started_at=now - timedelta(minutes=2), heartbeat_at=now,
                           finished_at=now, result={"final_loss": 2.0, "note": "[/]"})
        queries.add_metrics(session, job_id=train.id, step=1, values={"loss": 2.0})
        queries.add_metrics(session, job_id=train.id, step=2, values={"loss": 1.5})
        failed = queries.create_job(session, kind="generate", title=f"generate {BASE}",
                                    params={"variant": BASE, "eval_set": EVAL_SET})
        queries.update_job(session, job_id=failed.id, status="failed", message=JOB_ERROR,
                           error=JOB_ERROR, finished_at=now)

        base = queries.create_variant(session, name=BASE, base_model="/models/[/]tiny")
        tuned = queries.create_variant(session, name=TUNED, base_model="/models/[/]tiny",
                                       adapter_path="/runs/[/]/final", job_id=train.id)
        for variant, score in ((base, 2.0), (tuned, 4.0)):
            for sample in queries.list_samples(session, dataset_id=evalset.id):
                generation = queries.add_generation(
                    session, variant_id=variant.id, sample_id=sample.id, prompt=PROMPT,
                    text=format_recipe("[/]dish", ["2 [red]eggs"], [f"{RECIPE_MARK} eggs."]),
                    params_key="greedy", frame_times=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                    frame_indices=list(range(8)))
                queries.add_judgment(session, generation_id=generation.id, judge="offline",
                                     protocol="offline", prompt_version="v1", score=score,
                                     verdict="yes" if score >= 3 else "no", raw="[/] raw")
        train_job_id, failed_job_id = train.id, failed.id
    create_campaign(db_engine, name=CAMPAIGN, eval_set=EVAL_SET, variants=[BASE, TUNED],
                    mode="pairwise", seed=7, description="[red]note")
    with session_scope(db_engine) as session:
        rater = get_or_create_rater(session, name=RATER)
        campaign = get_campaign(session, name=CAMPAIGN)
        item = next_item(session, campaign_id=campaign.id, rater_id=rater.id)
        save_rating(session, assignment_id=item.assignment_id, choice="left", seconds=2.0)
    return HostileStore(folder=folder, url=url, db_engine=db_engine,
                        train_job_id=train_job_id, failed_job_id=failed_job_id)
