"""The Compare screen's reads: eval sets, their samples, and every variant's latest recipe
generation with its judgments and grounding, each in one statement whatever the number of
samples or variants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Dataset, Generation, Grounding, Judgment, Sample


@dataclass(frozen=True)
class EvalSetCount:
    """An eval set and how many of its recipe generations carry at least one judgment."""

    id: int
    name: str
    judged: int


@dataclass(frozen=True)
class SampleLabel:
    """What the sample list shows of a sample."""

    id: int
    external_id: str


@dataclass(frozen=True)
class LatestJudgment:
    """A judgment of the latest recipe generation of one variant on one sample."""

    sample_id: int
    variant_id: int
    generation_id: int
    judge: str
    protocol: str
    prompt_version: str
    score: Optional[float]
    verdict: str


def eval_sets_judged(session: Session) -> list[EvalSetCount]:
    """Every eval dataset in id order, with its count of judged recipe generations (0 when
    none is judged). One statement."""
    judged = (
        select(Sample.dataset_id, func.count(func.distinct(Judgment.generation_id)).label("n"))
        .join(Generation, Generation.sample_id == Sample.id)
        .join(Judgment, Judgment.generation_id == Generation.id)
        .where(Generation.task == "recipe")
        .group_by(Sample.dataset_id)
        .subquery()
    )
    query = (
        select(Dataset.id, Dataset.name, func.coalesce(judged.c.n, 0))
        .outerjoin(judged, judged.c.dataset_id == Dataset.id)
        .where(Dataset.purpose == "eval")
        .order_by(Dataset.id)
    )
    return [EvalSetCount(id=i, name=name, judged=int(n)) for i, name, n in session.exec(query)]


def sample_labels(session: Session, *, dataset_id: int) -> list[SampleLabel]:
    """A dataset's samples in id order, id and external id only (no texts, no meta). One
    statement."""
    query = (
        select(Sample.id, Sample.external_id)
        .where(Sample.dataset_id == dataset_id)
        .order_by(Sample.id)
    )
    return [SampleLabel(id=i, external_id=external)
            for i, external in session.connection().execute(query).all()]


def _latest_generation_ids(*, dataset_id: int | None = None, sample_id: int | None = None,
                           variant_ids: Iterable[int] | None = None, task: str = "recipe"):
    """A subquery of the newest generation id of `task` per (sample, variant) in scope."""
    query = select(func.max(Generation.id)).where(Generation.task == task)
    if dataset_id is not None:
        query = query.join(Sample, Sample.id == Generation.sample_id).where(
            Sample.dataset_id == dataset_id)
    if sample_id is not None:
        query = query.where(Generation.sample_id == sample_id)
    if variant_ids is not None:
        query = query.where(col(Generation.variant_id).in_(list(variant_ids)))
    return query.group_by(Generation.sample_id, Generation.variant_id)


def latest_judgments(session: Session, *, dataset_id: int) -> list[LatestJudgment]:
    """The judgments of each variant's latest recipe generation on each sample of a dataset,
    by sample, variant and judgment id. One statement."""
    query = (
        select(Generation.sample_id, Generation.variant_id, Judgment.generation_id,
               Judgment.judge, Judgment.protocol, Judgment.prompt_version, Judgment.score,
               Judgment.verdict)
        .join(Generation, Generation.id == Judgment.generation_id)
        .where(col(Generation.id).in_(_latest_generation_ids(dataset_id=dataset_id)))
        .order_by(Generation.sample_id, Generation.variant_id, Judgment.id)
    )
    # Run as a Core statement: thousands of plain rows, none of which needs the ORM's identity map.
    return [LatestJudgment(*row) for row in session.connection().execute(query).all()]


def latest_generations(session: Session, *, sample_id: int, variant_ids: Iterable[int],
                       task: str = "recipe") -> dict[int, Generation]:
    """Variant id → that variant's latest generation of the sample for `task` (a recipe, or
    step times), for the variants that have one. One statement."""
    latest = _latest_generation_ids(sample_id=sample_id, variant_ids=list(variant_ids), task=task)
    query = select(Generation).where(col(Generation.id).in_(latest))
    return {g.variant_id: g for g in session.exec(query)}


def judgments_by_generation(session: Session, *,
                            generation_ids: Iterable[int]) -> dict[int, list[Judgment]]:
    """Generation id → its judgments, oldest first (an empty list when it has none). One
    statement."""
    ids = list(generation_ids)
    found: dict[int, list[Judgment]] = {i: [] for i in ids}
    if not ids:
        return found
    query = (select(Judgment).where(col(Judgment.generation_id).in_(ids))
             .order_by(Judgment.id))
    for judgment in session.exec(query):
        found[judgment.generation_id].append(judgment)
    return found


def latest_groundings(session: Session, *,
                      generation_ids: Iterable[int]) -> dict[int, Grounding]:
    """Generation id → its newest grounding, for the generations that have one. One statement."""
    ids = list(generation_ids)
    if not ids:
        return {}
    newest = (select(func.max(Grounding.id)).where(col(Grounding.generation_id).in_(ids))
              .group_by(Grounding.generation_id))
    query = select(Grounding).where(col(Grounding.id).in_(newest))
    return {g.generation_id: g for g in session.exec(query)}
