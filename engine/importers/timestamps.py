"""The timestamp training task: a dataset of a video dataset's annotated steps with their start and
end times, in the format `ddft timestamps` asks for, made from the segments ddft stores already
(YouCook2's segments, Tasty's step alignment, the synthetic kitchen's step times).

Each video of the source dataset that has annotated segments becomes one sample of the new
dataset: the same video, the prompt `engine.evaluation.timestamps.TIMESTAMP_PROMPT`, and as the
answer its steps in time order, one a line, `1. [12.0s - 31.5s] Chop the onion.`, times in
seconds clipped to the video. The new dataset is an ordinary one: its samples are curated
(included or excluded) and checked (`ddft data check`) like any other, and a run mixes it with
the recipe task by weight (`ddft train --dataset kitchen-videos --dataset
kitchen-videos-timestamps=0.5`). A run that gives the model the frames' times
(`time_in_text`, `time_embedding`) takes them from the frames it samples, so the answer and
what the model is told agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from db import queries
from db.errors import UserError
from db.store import session_scope
from engine.evaluation.timestamps import TIMESTAMP_PROMPT, Segment, annotated_segments
from engine.importers.base import (
    MEDIA_ROOTS_KEY,
    ImportPlan,
    ImportSummary,
    PlannedDataset,
    PlannedSample,
    apply_plan,
)

SUFFIX = "-timestamps"
TASK = "timestamps"  # in the dataset's meta: which training task its answers teach


class TimestampTaskError(UserError, ValueError):
    """The timestamp dataset cannot be made: an unknown source, or one without videos."""


def _sentence(text: str) -> str:
    """A step's sentence as an answer line ends: spaces collapsed, capitalised, a full stop."""
    words = " ".join(str(text).split())
    if not words:
        return "Step."
    words = words[0].upper() + words[1:]
    return words if re.search(r"[.!?]$", words) else words + "."


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def timestamp_answer(segments: Sequence[Segment], duration: float | None = None) -> str:
    """The answer to TIMESTAMP_PROMPT for these annotated segments: one line a step, in time
    order, `N. [START - END] Sentence.`, times with one decimal, clipped to [0, duration]
    when the duration is known."""
    lines = []
    for number, segment in enumerate(segments, 1):
        start, end = max(0.0, segment.start), max(0.0, segment.end)
        if duration:
            start, end = min(start, duration), min(end, duration)
        lines.append(f"{number}. [{_seconds(start)} - {_seconds(end)}] "
                     f"{_sentence(segment.sentence)}")
    return "\n".join(lines)


def default_name(source: str) -> str:
    return f"{source}{SUFFIX}"


def plan_timestamp_dataset(sources: Sequence[Any], *, source_dataset: Any,
                           name: str) -> ImportPlan:
    """The plan of the training dataset `name` made from `sources` (the source dataset's
    Sample rows): a sample for each included training-split video with annotated segments;
    the rest (held-out splits, excluded videos, videos without segments) are listed in
    `left_out` with why."""
    samples, left_out = [], []
    for sample in sources:
        if sample.modality != "video":
            continue
        if sample.split != "train":
            # Held-out videos stay held out: the timestamp evaluation asks about them.
            left_out.append((sample.external_id, f"split {sample.split}, not train"))
            continue
        if not sample.included:
            left_out.append((sample.external_id, f"excluded in {source_dataset.name}"))
            continue
        segments = annotated_segments(sample.meta or {})
        if not segments:
            left_out.append((sample.external_id, "no annotated segments"))
            continue
        meta = {"segments": (sample.meta or {}).get("segments"), "task": TASK,
                "source_dataset": source_dataset.name, "source_sample": sample.id}
        for key in ("frame_times", "fps", "n_frames", "recipe_type", "dish"):
            if key in (sample.meta or {}):
                meta[key] = sample.meta[key]
        samples.append(PlannedSample(
            external_id=sample.external_id, modality="video", prompt=TIMESTAMP_PROMPT,
            answer=timestamp_answer(segments, sample.duration_s), split=sample.split,
            media_path=sample.media_path, group=sample.group, duration_s=sample.duration_s,
            meta=meta))
    meta = {"task": TASK, "source_dataset": source_dataset.name}
    if MEDIA_ROOTS_KEY in (source_dataset.meta or {}):
        meta[MEDIA_ROOTS_KEY] = source_dataset.meta[MEDIA_ROOTS_KEY]
    plan = ImportPlan(datasets=[PlannedDataset(
        name=name, modality="video", purpose="train",
        source=source_dataset.source, root=source_dataset.root,
        description=f"Step times of {source_dataset.name}'s videos (the timestamp task)",
        meta=meta, samples=samples)], left_out=left_out)
    plan.notes.append(f"{len(samples)} videos with step times from {source_dataset.name}")
    if left_out:
        plan.notes.append(f"{len(left_out)} left out (not the train split, excluded, or no "
                          "annotated segments)")
    return plan


def make_timestamp_dataset(db_engine: Engine, source: str, *,
                           name: str | None = None) -> tuple[ImportSummary, ImportPlan]:
    """Make (or add to) the timestamp dataset of the stored video dataset `source`, named
    `name` (default SOURCE-timestamps); re-running adds only videos not in it yet. Returns the
    summary and the plan (its notes and left-out videos).

    Raises TimestampTaskError when `source` is not a stored dataset, holds no video with
    annotated segments, or `name` is taken by a dataset that is not `source`'s timestamp task.
    """
    name = name or default_name(source)
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=source)
        if dataset is None:
            known = ", ".join(d.name for d in queries.list_datasets(session)) or "none"
            raise TimestampTaskError(f"dataset {source!r}: not in the store (known: {known})")
        existing = queries.get_dataset(session, name=name)
        if existing is not None and (existing.meta or {}).get("source_dataset") != source:
            raise TimestampTaskError(f"dataset {name!r} exists and is not the timestamp task "
                                     f"of {source}; give another --name")
        rows = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        plan = plan_timestamp_dataset(rows, source_dataset=dataset, name=name)
    if not plan.datasets[0].samples:
        raise TimestampTaskError(f"dataset {source!r}: expected included train-split videos "
                                 "with annotated step segments (YouCook2, Tasty or the "
                                 "kitchen), found none")
    [summary] = apply_plan(db_engine, plan)
    return summary, plan
