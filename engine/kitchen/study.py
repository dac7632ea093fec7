"""Teaching the model when, measured: on the synthetic kitchen, the recipe-only ddft variant against
variants also trained on the timestamp task, with the frames' times in the prompt's text or as a
learned embedding, each asked for timed steps on the held-out videos and scored by the timestamp
report, paired against the recipe-only variant; and each one's recipes judged, so Table 1 shows
what time cost the recipes.

`ddft bench timestamps` runs it; every step is an ordinary job (train, timestamps, generate,
judge) and reuses what an earlier run stored, so a second run only prints the tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from db import queries
from db.store import session_scope
from engine.importers.kitchen import EVAL_SET, TRAIN_SETS, VIDEO_SET

STUDY_MODEL_DIR = Path("models") / "tiny-videollava-time"
TIMESTAMP_SET = f"{VIDEO_SET}-timestamps"
BASELINE = "kitchen-recipe"
GENERATION = {"batch_size": 6, "max_new_tokens": 200}


@dataclass(frozen=True)
class StudyVariant:
    """One arm of the study: its name, what it trains on and the time options it sets."""

    name: str
    description: str
    timestamp_task: bool
    overrides: dict[str, str] = field(default_factory=dict)

    def datasets(self) -> dict[str, float]:
        sets = {name: 1.0 for name in TRAIN_SETS}
        if self.timestamp_task:
            sets[TIMESTAMP_SET] = 1.0
        return sets


VARIANTS = (
    StudyVariant(BASELINE, "the recipe-only ddft variant (images, videos, questions)", False),
    StudyVariant("kitchen-steps", "+ the timestamp task, no frame times (a control)", True),
    StudyVariant("kitchen-time-text", "+ the timestamp task, frame times in the prompt", True,
                 {"time_in_text": "true"}),
    StudyVariant("kitchen-time-embed", "+ the timestamp task, the frame-time embedding", True,
                 {"time_embedding": "true"}),
)


def study_corpus(db_engine: Engine) -> list[str]:
    """What the study's tiny tokenizer is trained on: the kitchen's prompts and answers, the
    timestamp task's, and each video's frame-time line (engine.model.timeaware's format)."""
    from engine.demo import kitchen_corpus
    from engine.model.loading import format_prompt
    from engine.model.timeaware import frame_times_text

    texts = kitchen_corpus(db_engine)
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=TIMESTAMP_SET)
        eval_set = queries.get_dataset(session, name=EVAL_SET)
        for current in (dataset, eval_set):
            for sample in queries.list_samples(session, dataset_id=current.id, limit=None):
                if current is dataset:
                    texts.append(format_prompt("video", sample.prompt) + " " + sample.answer)
                times = (sample.meta or {}).get("frame_times")
                if times:
                    texts.append(frame_times_text(times, sample.duration_s))
    return texts


Say = Callable[[str], None]


def _run(db_engine: Engine, request: Any, workspace: Path) -> Any:
    """Submit `request` and run its job in this process; raises JobError unless it succeeds."""
    from engine.jobs import JobError, run_job, submit

    job_id = submit(db_engine, request, workspace=workspace, detach=False)
    job = run_job(db_engine, job_id, workspace=workspace)
    if job.status != "succeeded":
        raise JobError(f"job {job_id} ({request.kind}) {job.status}: {job.message}; running "
                       "the study again continues where it stopped")
    return job


def _has_answers(db_engine: Engine, variant: str, task: str) -> bool:
    with session_scope(db_engine) as session:
        found = queries.get_variant(session, name=variant)
        dataset = queries.get_dataset(session, name=EVAL_SET)
        wanted = queries.count_samples(session, dataset_id=dataset.id, included=True)
        stored = {g.sample_id for g in queries.list_generations(
            session, variant_id=found.id, dataset_id=dataset.id, task=task)}
    return len(stored) >= wanted


@dataclass
class StudyResult:
    timestamps: Any  # engine.evaluation.timestamps.TimestampReport
    comparison: Any  # engine.evaluation.timestamps.TimestampComparison
    report: Any  # engine.evaluation.report's Report (Table 1 and the rest)
    seconds: float


def run_study(workspace: Path, db_engine: Engine, *, steps: int = 700, seed: int = 0,
              variants: tuple[StudyVariant, ...] = VARIANTS, say: Say = print,
              kitchen_root: Path | None = None, kitchen: dict[str, Any] | None = None,
              recipes: bool = True, generation: dict[str, Any] | None = None,
              n_boot: int = 10_000) -> StudyResult:
    """Run the study in `workspace` (its store is `db_engine`): the kitchen (built under
    `kitchen_root`, default WORKSPACE/kitchen, with build_kitchen's `kitchen` arguments, and
    imported), its timestamp task, a tiny model
    whose tokenizer knows both, one LoRA run of `steps` steps per variant from `seed`, timed
    steps on the held-out videos, and with `recipes` each variant's recipes judged offline.
    `generation` overrides GENERATION's batch size and new-token cap. Returns the timestamp
    report, the paired comparison against the first variant and the report with Table 1.
    Raises JobError when a job does not succeed."""
    from engine.evaluation.report import ReportSelection, build_report
    from engine.evaluation.timestamps import timestamp_comparison, timestamp_report
    from engine.importers.kitchen import import_kitchen
    from engine.importers.timestamps import make_timestamp_dataset
    from engine.jobs import GenerateRequest, JudgeRequest, TimestampsRequest, TrainRequest
    from engine.kitchen.build import build_kitchen
    from engine.model.tiny import build_tiny_model

    started = time.monotonic()
    decoding = {**GENERATION, **(generation or {})}
    workspace = Path(workspace)
    root = kitchen_root or workspace / "kitchen"
    say(f"kitchen: {root}")
    build_kitchen(root, **{"seed": 0, **(kitchen or {})})
    import_kitchen(db_engine, root)
    summary, _ = make_timestamp_dataset(db_engine, VIDEO_SET, name=TIMESTAMP_SET)
    say(f"{TIMESTAMP_SET}: {summary.imported} imported, {summary.skipped} already there")
    model_dir = build_tiny_model(workspace / STUDY_MODEL_DIR, study_corpus(db_engine), seed=0)
    for variant in variants:
        with session_scope(db_engine) as session:
            exists = queries.get_variant(session, name=variant.name) is not None
        if not exists:
            say(f"training {variant.name}: {variant.description}")
            overrides = {"max_steps": str(steps), "seed": str(seed), "save_every": "0",
                         **variant.overrides}
            job = _run(db_engine, TrainRequest(variant=variant.name, base=str(model_dir),
                                               preset="tiny", datasets=variant.datasets(),
                                               overrides=overrides), workspace)
            say(f"  job {job.id}: final loss {job.result.get('final_loss', float('nan')):.4f}")
        if not _has_answers(db_engine, variant.name, "timestamps"):
            say(f"timed steps of {variant.name} on {EVAL_SET}")
            _run(db_engine, TimestampsRequest(variant=variant.name, eval_set=EVAL_SET,
                                              **decoding), workspace)
        if recipes and not _has_answers(db_engine, variant.name, "recipe"):
            say(f"recipes of {variant.name} on {EVAL_SET}")
            _run(db_engine, GenerateRequest(variant=variant.name, eval_set=EVAL_SET,
                                            **decoding), workspace)
    if recipes:
        _run(db_engine, JudgeRequest(eval_set=EVAL_SET), workspace)
    names = [v.name for v in variants]
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        stamps = timestamp_report(session, dataset_id=dataset.id)
        stamps = type(stamps)(eval_set=stamps.eval_set, prompt_version=stamps.prompt_version,
                              rows=tuple(sorted((r for r in stamps.rows if r.variant in names),
                                                key=lambda r: names.index(r.variant))))
        comparison = timestamp_comparison(session, dataset_id=dataset.id, baseline=names[0],
                                          variants=names, n_boot=n_boot, seed=seed)
        report = build_report(session, ReportSelection(eval_set=EVAL_SET)) if recipes else None
    return StudyResult(stamps, comparison, report, time.monotonic() - started)
