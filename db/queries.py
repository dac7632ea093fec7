"""Typed query functions over the store; every reader and writer in ddft goes through these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import func, insert, or_, text
from sqlmodel import Session, col, select

from db.models import (
    Checkpoint,
    Dataset,
    Generation,
    Grounding,
    Job,
    Judgment,
    Metric,
    ModelVariant,
    Sample,
    utcnow,
)


# ---------------------------------------------------------------- datasets and samples


def get_dataset(session: Session, *, name: str) -> Optional[Dataset]:
    return session.exec(select(Dataset).where(Dataset.name == name)).first()


def get_or_create_dataset(
    session: Session,
    *,
    name: str,
    modality: str,
    purpose: str = "train",
    source: str = "",
    root: str = "",
    description: str = "",
    meta: dict[str, Any] | None = None,
) -> Dataset:
    """The dataset called `name`, created with these fields when it does not exist yet."""
    dataset = get_dataset(session, name=name)
    if dataset is None:
        dataset = Dataset(
            name=name,
            modality=modality,
            purpose=purpose,
            source=source,
            root=root,
            description=description,
            meta=meta or {},
        )
        session.add(dataset)
        session.flush()
    return dataset


def list_datasets(session: Session, *, purpose: str | None = None) -> list[Dataset]:
    query = select(Dataset).order_by(Dataset.id)
    if purpose:
        query = query.where(Dataset.purpose == purpose)
    return list(session.exec(query))


def add_samples(
    session: Session, *, dataset_id: int, samples: Iterable[dict[str, Any]]
) -> tuple[int, int]:
    """Insert samples that the dataset does not hold yet (by external_id), in bulk.

    Returns (inserted, skipped). Safe to call again with the same input.
    """
    existing = set(
        session.exec(select(Sample.external_id).where(Sample.dataset_id == dataset_id))
    )
    now = utcnow()
    rows: list[dict[str, Any]] = []
    skipped = 0
    for fields in samples:
        if fields["external_id"] in existing:
            skipped += 1
            continue
        existing.add(fields["external_id"])
        row = {"group": "", "included": True, "meta": {}, "split": "train", "media_path": None,
               "duration_s": None, "check_status": "unchecked", "check_reasons": [],
               "checked_at": None, **fields, "dataset_id": dataset_id, "created_at": now}
        rows.append(row)
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite and rows:
        last_id = session.exec(select(func.max(Sample.id))).one() or 0
    # Core executemany on the table: ORM objects, or even the ORM's bulk path, cost most of the
    # time of a 158,000-image import.
    table = Sample.__table__
    for start in range(0, len(rows), 5000):
        session.execute(insert(table), rows[start:start + 5000])
    if sqlite and rows:
        # Writers are serialised, so every id above last_id in this transaction is ours.
        session.execute(
            text("INSERT INTO sample_fts(rowid, prompt, answer, external_id) "
                 "SELECT id, prompt, answer, external_id FROM sample WHERE id > :last"),
            {"last": last_id},
        )
    session.flush()
    return len(rows), skipped


def _sample_filter(
    session: Session,
    query,
    *,
    dataset_id: int | None,
    modality: str | None,
    split: str | None,
    included: bool | None,
    search: str | None,
    check_status: str | None = None,
):
    if dataset_id is not None:
        query = query.where(Sample.dataset_id == dataset_id)
    if modality:
        query = query.where(Sample.modality == modality)
    if split:
        query = query.where(Sample.split == split)
    if included is not None:
        query = query.where(Sample.included == included)
    if check_status:
        query = query.where(Sample.check_status == check_status)
    if search and search.strip():
        query = query.where(_search_clause(session.get_bind().dialect.name, search))
    return query


def _fts_alone(session: Session, search: str | None, *filters: Any) -> bool:
    """Whether a search is the only filter on SQLite, so FTS alone can count and page it."""
    return (
        bool(search and search.strip())
        and all(value is None or value == "" for value in filters)
        and session.get_bind().dialect.name == "sqlite"
    )


def _fts_query(search: str) -> str:
    """User words → an FTS5 query: every word must match, as a prefix, quotes escaped."""
    words = [w.replace('"', '""') for w in search.split()]
    return " ".join(f'"{w}"*' for w in words)


def _search_clause(dialect: str, search: str):
    if dialect == "sqlite":
        return col(Sample.id).in_(
            text("SELECT rowid FROM sample_fts WHERE sample_fts MATCH :fts").bindparams(
                fts=_fts_query(search)
            )
        )
    pattern = f"%{search.strip()}%"
    return or_(
        col(Sample.prompt).ilike(pattern),
        col(Sample.answer).ilike(pattern),
        col(Sample.external_id).ilike(pattern),
    )


def list_samples(
    session: Session,
    *,
    dataset_id: int | None = None,
    modality: str | None = None,
    split: str | None = None,
    included: bool | None = None,
    search: str | None = None,
    check_status: str | None = None,
    offset: int = 0,
    limit: int | None = 100,
) -> list[Sample]:
    """Samples in id order, filtered; `search` matches words (as prefixes) of the prompt, the
    answer or the external id, through full-text search on SQLite."""
    if limit is not None and _fts_alone(session, search, dataset_id, modality, split, included,
                                        check_status):
        # FTS returns matches in rowid order: let it page them, not materialise every match.
        page = text(
            "SELECT rowid FROM sample_fts WHERE sample_fts MATCH :fts ORDER BY rowid "
            "LIMIT :limit OFFSET :offset"
        ).bindparams(fts=_fts_query(search), limit=-1 if limit is None else limit, offset=offset)
        ids = [row[0] for row in session.execute(page)]
        if not ids:
            return []
        return list(session.exec(select(Sample).where(col(Sample.id).in_(ids))
                                 .order_by(Sample.id)))
    query = _sample_filter(
        session,
        select(Sample),
        dataset_id=dataset_id,
        modality=modality,
        split=split,
        included=included,
        search=search,
        check_status=check_status,
    ).order_by(Sample.id)
    query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def count_samples(
    session: Session,
    *,
    dataset_id: int | None = None,
    modality: str | None = None,
    split: str | None = None,
    included: bool | None = None,
    search: str | None = None,
    check_status: str | None = None,
) -> int:
    if _fts_alone(session, search, dataset_id, modality, split, included, check_status):
        counted = session.execute(
            text("SELECT count(*) FROM sample_fts WHERE sample_fts MATCH :fts"),
            {"fts": _fts_query(search)},
        )
        return int(counted.scalar_one())
    query = _sample_filter(
        session,
        select(func.count()).select_from(Sample),
        dataset_id=dataset_id,
        modality=modality,
        split=split,
        included=included,
        search=search,
        check_status=check_status,
    )
    return int(session.exec(query).one())


def sample_splits(session: Session) -> list[str]:
    return sorted(set(session.exec(select(Sample.split).distinct())))


def get_sample(session: Session, *, sample_id: int) -> Optional[Sample]:
    return session.get(Sample, sample_id)


def set_sample_included(session: Session, *, sample_id: int, included: bool) -> Sample:
    """Include or exclude a sample from training. Raises KeyError for an unknown id."""
    sample = session.get(Sample, sample_id)
    if sample is None:
        raise KeyError(f"no sample with id {sample_id}")
    sample.included = included
    session.add(sample)
    session.flush()
    return sample


def set_samples_included(
    session: Session, *, sample_ids: Sequence[int], included: bool
) -> int:
    """Include or exclude many samples at once; returns how many rows changed."""
    from sqlalchemy import update

    changed = 0
    ids = list(sample_ids)
    for start in range(0, len(ids), 500):  # SQLite caps the parameters of one statement
        result = session.execute(
            update(Sample)
            .where(col(Sample.id).in_(ids[start:start + 500]), Sample.included != included)
            .values(included=included)
        )
        changed += result.rowcount or 0
    session.flush()
    return changed


def filtered_sample_ids(
    session: Session,
    *,
    dataset_id: int | None = None,
    modality: str | None = None,
    split: str | None = None,
    included: bool | None = None,
    search: str | None = None,
    check_status: str | None = None,
) -> list[int]:
    """Ids of every sample a filter selects (for acting on a whole selection)."""
    query = _sample_filter(
        session, select(Sample.id), dataset_id=dataset_id, modality=modality, split=split,
        included=included, search=search, check_status=check_status,
    ).order_by(Sample.id)
    return [int(i) for i in session.exec(query)]


# ---------------------------------------------------------------- jobs and progress


def create_job(
    session: Session, *, kind: str, params: dict[str, Any], title: str = ""
) -> Job:
    job = Job(kind=kind, params=params, title=title or kind)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, job_id: int) -> Optional[Job]:
    return session.get(Job, job_id)


def list_jobs(
    session: Session, *, kind: str | None = None, status: Sequence[str] | None = None
) -> list[Job]:
    query = select(Job).order_by(col(Job.id).desc())
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(col(Job.status).in_(list(status)))
    return list(session.exec(query))


def update_job(session: Session, *, job_id: int, **fields: Any) -> Job:
    """Set fields of a job row. Raises KeyError for an unknown id."""
    job = session.get(Job, job_id)
    if job is None:
        raise KeyError(f"no job with id {job_id}")
    for key, value in fields.items():
        setattr(job, key, value)
    session.add(job)
    session.flush()
    return job


def add_metrics(session: Session, *, job_id: int, step: int, values: dict[str, float]) -> None:
    now = utcnow()
    for name, value in values.items():
        session.add(Metric(job_id=job_id, step=step, name=name, value=float(value), created_at=now))
    session.flush()


def metric_series(session: Session, *, job_id: int, name: str) -> list[tuple[int, float]]:
    rows = session.exec(
        select(Metric.step, Metric.value)
        .where(Metric.job_id == job_id, Metric.name == name)
        .order_by(Metric.step, Metric.id)
    )
    return [(int(step), float(value)) for step, value in rows]


def latest_metrics(session: Session, *, job_id: int) -> dict[str, float]:
    """The last reported value of each metric of a job."""
    latest: dict[str, float] = {}
    rows = session.exec(
        select(Metric.name, Metric.value).where(Metric.job_id == job_id).order_by(Metric.step, Metric.id)
    )
    for name, value in rows:
        latest[name] = float(value)
    return latest


def recent_metrics(
    session: Session, *, job_ids: Sequence[int], names: Sequence[str], per_name: int
) -> dict[tuple[int, str], list[tuple[int, float, datetime]]]:
    """The last `per_name` points of each metric of each job, in one windowed query (screens
    refresh every second): {(job_id, name): [(step, value, logged_at), …] oldest first}."""
    grouped: dict[tuple[int, str], list[tuple[int, float, datetime]]] = {}
    if not job_ids:
        return grouped
    rank = func.row_number().over(
        partition_by=(Metric.job_id, Metric.name),
        order_by=(col(Metric.step).desc(), col(Metric.id).desc()),
    ).label("rank")
    ranked = (
        select(Metric.job_id, Metric.name, Metric.step, Metric.value, Metric.created_at, rank)
        .where(col(Metric.job_id).in_(list(job_ids)), col(Metric.name).in_(list(names)))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.job_id, ranked.c.name, ranked.c.step, ranked.c.value, ranked.c.created_at)
        .where(ranked.c.rank <= per_name)
        .order_by(ranked.c.job_id, ranked.c.name, ranked.c.step, ranked.c.created_at)
    )
    for job_id, name, step, value, logged_at in rows:
        grouped.setdefault((int(job_id), str(name)), []).append((int(step), float(value), logged_at))
    return grouped


def add_checkpoint(
    session: Session, *, job_id: int, step: int, path: str, final: bool = False
) -> Checkpoint:
    checkpoint = Checkpoint(job_id=job_id, step=step, path=path, final=final)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def list_checkpoints(session: Session, *, job_id: int) -> list[Checkpoint]:
    return list(
        session.exec(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step))
    )


# ---------------------------------------------------------------- variants, generations, judgments


def get_variant(session: Session, *, name: str) -> Optional[ModelVariant]:
    return session.exec(select(ModelVariant).where(ModelVariant.name == name)).first()


def create_variant(
    session: Session,
    *,
    name: str,
    base_model: str,
    adapter_path: str | None = None,
    job_id: int | None = None,
    checkpoint_id: int | None = None,
    description: str = "",
) -> ModelVariant:
    variant = ModelVariant(
        name=name,
        base_model=base_model,
        adapter_path=adapter_path,
        job_id=job_id,
        checkpoint_id=checkpoint_id,
        description=description,
    )
    session.add(variant)
    session.flush()
    return variant


def list_variants(session: Session) -> list[ModelVariant]:
    return list(session.exec(select(ModelVariant).order_by(ModelVariant.id)))


def find_generation(
    session: Session, *, variant_id: int, sample_id: int, params_key: str
) -> Optional[Generation]:
    return session.exec(
        select(Generation).where(
            Generation.variant_id == variant_id,
            Generation.sample_id == sample_id,
            Generation.params_key == params_key,
        )
    ).first()


def add_generation(session: Session, **fields: Any) -> Generation:
    generation = Generation(**fields)
    session.add(generation)
    session.flush()
    return generation


def list_generations(
    session: Session,
    *,
    variant_id: int | None = None,
    dataset_id: int | None = None,
    sample_id: int | None = None,
    task: str | None = "recipe",
) -> list[Generation]:
    """Stored generations, oldest first; by default only recipes (task=None: every task)."""
    query = select(Generation).order_by(Generation.id)
    if task is not None:
        query = query.where(Generation.task == task)
    if variant_id is not None:
        query = query.where(Generation.variant_id == variant_id)
    if sample_id is not None:
        query = query.where(Generation.sample_id == sample_id)
    if dataset_id is not None:
        query = query.join(Sample, Sample.id == Generation.sample_id).where(
            Sample.dataset_id == dataset_id
        )
    return list(session.exec(query))


def find_judgment(
    session: Session, *, generation_id: int, judge: str, protocol: str, prompt_version: str
) -> Optional[Judgment]:
    return session.exec(
        select(Judgment).where(
            Judgment.generation_id == generation_id,
            Judgment.judge == judge,
            Judgment.protocol == protocol,
            Judgment.prompt_version == prompt_version,
        )
    ).first()


def add_judgment(session: Session, **fields: Any) -> Judgment:
    judgment = Judgment(**fields)
    session.add(judgment)
    session.flush()
    return judgment


def judgments_for_generation(session: Session, *, generation_id: int) -> list[Judgment]:
    return list(
        session.exec(
            select(Judgment).where(Judgment.generation_id == generation_id).order_by(Judgment.id)
        )
    )


def find_grounding(session: Session, *, generation_id: int, params_key: str) -> Optional[Grounding]:
    return session.exec(
        select(Grounding).where(
            Grounding.generation_id == generation_id, Grounding.params_key == params_key
        )
    ).first()


def add_grounding(session: Session, **fields: Any) -> Grounding:
    grounding = Grounding(**fields)
    session.add(grounding)
    session.flush()
    return grounding


def groundings_for_generation(session: Session, *, generation_id: int) -> list[Grounding]:
    """A generation's groundings, oldest first."""
    return list(
        session.exec(
            select(Grounding).where(Grounding.generation_id == generation_id).order_by(Grounding.id)
        )
    )


@dataclass(frozen=True)
class JudgedRow:
    """One judged generation, flattened for reports."""

    variant: str
    sample_id: int
    group: str
    score: Optional[float]
    verdict: str
    judge: str
    protocol: str
    prompt_version: str
    decoding: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)


def judged_rows(
    session: Session,
    *,
    dataset_id: int | None = None,
    judge: str | None = None,
    protocol: str | None = None,
) -> list[JudgedRow]:
    """Every judgment joined with its generation's variant and sample, for reports."""
    query = (
        select(Judgment, Generation, ModelVariant, Sample)
        .join(Generation, Generation.id == Judgment.generation_id)
        .join(ModelVariant, ModelVariant.id == Generation.variant_id)
        .join(Sample, Sample.id == Generation.sample_id)
        .where(Generation.task == "recipe")
        .order_by(ModelVariant.id, Sample.id)
    )
    if dataset_id is not None:
        query = query.where(Sample.dataset_id == dataset_id)
    if judge:
        query = query.where(Judgment.judge == judge)
    if protocol:
        query = query.where(Judgment.protocol == protocol)
    return [
        JudgedRow(
            variant=variant.name,
            sample_id=sample.id,
            group=sample.group,
            score=judgment.score,
            verdict=judgment.verdict,
            judge=judgment.judge,
            protocol=judgment.protocol,
            prompt_version=judgment.prompt_version,
            decoding=generation.decoding,
            details=judgment.details,
        )
        for judgment, generation, variant, sample in session.exec(query)
    ]


def stale_running_jobs(session: Session, *, older_than: datetime) -> list[Job]:
    """Running jobs whose last heartbeat is older than `older_than` (their process may be gone)."""
    return list(
        session.exec(
            select(Job).where(
                Job.status == "running",
                or_(col(Job.heartbeat_at).is_(None), col(Job.heartbeat_at) < older_than),
            )
        )
    )
