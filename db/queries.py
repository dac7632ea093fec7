"""Typed query functions over the store; every reader and writer in ddft goes through these."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Iterable, Literal, Optional, Sequence

from sqlalchemy import and_, false, func, insert, or_, text
from sqlmodel import Session, col, select

from db.models import (
    CHECK_STATUSES,
    DEVICE_KINDS,
    FAILURE_TASKS,
    GENERATION_TASKS,
    Checkpoint,
    Dataset,
    Generation,
    GenerationFailure,
    Grid,
    GridCell,
    Grounding,
    Job,
    Judgment,
    Metric,
    ModelVariant,
    Sample,
    Setting,
    utcnow,
)
from db.names import require_name
from db.redaction import redact_secrets, redact_value


class _Keep(Enum):
    """The default of `update_job`'s fields: leave the column as it is (None is a value)."""

    KEEP = "keep"


KEEP: Literal[_Keep.KEEP] = _Keep.KEEP


# ---------------------------------------------------------------- datasets and samples


def get_dataset(session: Session, *, name: str) -> Optional[Dataset]:
    """The dataset called `name`, None when there is none."""
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
    """The dataset called `name`, created with these fields when it does not exist yet.
    Raises db.names.NameRefused when it would be created under a bad name."""
    dataset = get_dataset(session, name=name)
    if dataset is None:
        require_name("dataset", name)
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


def get_dataset_by_id(session: Session, *, dataset_id: int) -> Optional[Dataset]:
    """The dataset with this id, None when there is none."""
    return session.get(Dataset, dataset_id)


def list_datasets(session: Session, *, purpose: str | None = None) -> list[Dataset]:
    """Datasets in id order, optionally only those of one purpose (train or eval)."""
    query = select(Dataset).order_by(Dataset.id)
    if purpose:
        query = query.where(Dataset.purpose == purpose)
    return list(session.exec(query))


# What add_samples accepts per sample; the store sets the dataset and the creation time itself.
_SAMPLE_FIELDS = frozenset(Sample.model_fields) - {"id", "dataset_id", "created_at"}


def add_samples(
    session: Session, *, dataset_id: int, samples: Iterable[dict[str, Any]]
) -> tuple[int, int]:
    """Insert samples that the dataset does not hold yet (by external_id), in bulk.

    Returns (inserted, skipped). Safe to call again with the same input.
    Raises TypeError naming a field that Sample does not have (nothing is inserted then).
    """
    existing = set(
        session.exec(select(Sample.external_id).where(Sample.dataset_id == dataset_id))
    )
    now = utcnow()
    rows: list[dict[str, Any]] = []
    skipped = 0
    for fields in samples:
        # Checked before anything is inserted: rows are built in full first.
        unknown = sorted(set(fields) - _SAMPLE_FIELDS)
        if unknown:
            raise TypeError(f"add_samples: Sample has no field {', '.join(map(repr, unknown))} "
                            f"(sample {fields.get('external_id')!r})")
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
        bool(search and _search_text(search).strip())
        and all(value is None or value == "" for value in filters)
        and session.get_bind().dialect.name == "sqlite"
    )


def _search_text(search: str) -> str:
    """A search as text SQLite can take: a NUL byte (which ends an FTS5 string early) and a
    character UTF-8 cannot encode (a lone surrogate, from a pasted or mis-decoded name) become
    U+FFFD, so they match nothing but break nothing, and the words around them still count."""
    if "\x00" not in search and search.isascii():
        return search
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch
                   for ch in search)


def _fts_query(search: str) -> str:
    """User words → an FTS5 query: every word must match, as a prefix, quotes escaped."""
    words = [w.replace('"', '""') for w in _search_text(search).split()]
    return " ".join(f'"{w}"*' for w in words)


# PostgreSQL's full-text document of a sample: the words of the prompt, the answer and the
# external id, diacritics folded and split at every run of non-alphanumeric characters, as
# SQLite's unicode61 tokenizer reads them. The same expression is indexed (GIN) by
# db/migrations/versions/0001_baseline.py (PostgreSQL matches it to the index as an expression:
# the table names here change nothing; tests/db/test_search.py checks the index is used).
# Letters with diacritics (Latin-1 and Latin Extended-A) and the letter each folds to, as SQLite's
# unicode61 tokenizer (remove_diacritics 2) folds them.
_ACCENTED = (
    "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆ"
    "ćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő"
    "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽž"
)
_UNACCENTED = (
    "AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaC"
    "cCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOo"
    "RrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZz"
)
_FOLD_DIACRITICS = str.maketrans(_ACCENTED, _UNACCENTED)
_PG_SEARCH_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(translate(sample.prompt || ' ' || "
    f"sample.answer || ' ' || sample.external_id, '{_ACCENTED}', '{_UNACCENTED}'), "
    "'[^[:alnum:]]+', ' ', 'g'))"
)


def _tsquery(search: str) -> str:
    """User words → a PostgreSQL tsquery with FTS5's meaning: every word must match; a word is
    the phrase of its alphanumeric runs, the last one as a prefix; a word without any (`-`) is
    left out. Empty when no word has one (then nothing matches, as in FTS5)."""
    phrases = []
    for word in _search_text(search).translate(_FOLD_DIACRITICS).split():
        runs = re.findall(r"[^\W_]+", word)
        if runs:
            phrases.append("(" + " <-> ".join(runs[:-1] + [runs[-1] + ":*"]) + ")")
    return " & ".join(phrases)


def _search_clause(dialect: str, search: str):
    """The one search over samples, with one meaning on every database: each word of `search`
    matches, as a prefix, a word of the prompt, the answer or the external id (case and Latin
    diacritics folded). SQLite: its FTS5 table; PostgreSQL: its full-text search
    over the indexed document; others: each word as a substring."""
    if dialect == "sqlite":
        return col(Sample.id).in_(
            text("SELECT rowid FROM sample_fts WHERE sample_fts MATCH :fts").bindparams(
                fts=_fts_query(search)
            )
        )
    if dialect == "postgresql":
        query = _tsquery(search)
        if not query:
            return false()
        return text(f"{_PG_SEARCH_DOCUMENT} @@ to_tsquery('simple'::regconfig, :tsquery)"
                    ).bindparams(tsquery=query)
    return and_(*(or_(
        col(Sample.prompt).ilike(f"%{word}%"),
        col(Sample.answer).ilike(f"%{word}%"),
        col(Sample.external_id).ilike(f"%{word}%"),
    ) for word in _search_text(search).split()))


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
    """How many samples the filter selects (the same filters as `list_samples`)."""
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
    """Every split name the samples use, sorted."""
    return sorted(set(session.exec(select(Sample.split).distinct())))


def get_sample(session: Session, *, sample_id: int) -> Optional[Sample]:
    """The sample with this id, None when there is none."""
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


@dataclass(frozen=True)
class SampleCheck:
    """What `ddft data check` found for one sample."""

    sample_id: int
    status: str  # one of CHECK_STATUSES
    reasons: list[str]
    meta: dict[str, Any]  # the sample's whole meta, with what the check learnt merged in
    checked_at: datetime


def record_sample_checks(session: Session, *, checks: Sequence[SampleCheck]) -> None:
    """Store check outcomes on their samples in bulk. Raises ValueError for an unknown status."""
    from sqlalchemy import update

    for check in checks:
        if check.status not in CHECK_STATUSES:
            raise ValueError(f"sample {check.sample_id}: check status must be one of "
                             f"{', '.join(CHECK_STATUSES)}, got {check.status!r}")
    if not checks:
        return
    # Bulk UPDATE by primary key: a row per sample through the ORM costs a query each.
    session.execute(update(Sample), [
        {"id": c.sample_id, "check_status": c.status, "check_reasons": list(c.reasons),
         "checked_at": c.checked_at, "meta": c.meta} for c in checks])
    session.flush()


# ---------------------------------------------------------------- jobs and progress


def create_job(
    session: Session, *, kind: str, params: dict[str, Any], title: str = "", queue: str = "",
    devices: int | None = None, after: Sequence[int] = (), workspace: str = "",
) -> Job:
    """Add a queued job row (flushed, so it has its id) at the back of `queue` (a host's device
    queue), taking `devices` slots when it runs and starting only after the jobs `after` have
    succeeded (`devices` None: one for a kind of db.models.DEVICE_KINDS, none otherwise). Keys
    and URL credentials in the params and title are stored redacted (db.redaction)."""
    if devices is None:
        devices = 1 if kind in DEVICE_KINDS else 0
    job = Job(kind=kind, params=redact_value(params), title=redact_secrets(title or kind),
              queue=queue, devices=devices, after=list(after), workspace=workspace,
              queued_at=utcnow())
    session.add(job)
    session.flush()
    return job


def jobs_by_id(session: Session, *, job_ids: Iterable[int]) -> dict[int, Job]:
    """The jobs of these ids that exist, by id."""
    wanted = sorted({int(i) for i in job_ids if i is not None})
    if not wanted:
        return {}
    return {job.id: job for job in session.exec(select(Job).where(col(Job.id).in_(wanted)))}


def get_job(session: Session, *, job_id: int) -> Optional[Job]:
    """The job with this id, None when there is none."""
    return session.get(Job, job_id)


def list_jobs(
    session: Session, *, kind: str | None = None, status: Sequence[str] | None = None
) -> list[Job]:
    """Jobs newest first, optionally of one kind and in some statuses."""
    query = select(Job).order_by(col(Job.id).desc())
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(col(Job.status).in_(list(status)))
    return list(session.exec(query))


def update_job(
    session: Session,
    *,
    job_id: int,
    status: str | _Keep = KEEP,
    title: str | _Keep = KEEP,
    params: dict[str, Any] | _Keep = KEEP,
    pid: int | None | _Keep = KEEP,
    host: str | _Keep = KEEP,
    step: int | _Keep = KEEP,
    total: int | _Keep = KEEP,
    message: str | _Keep = KEEP,
    cancel_requested: bool | _Keep = KEEP,
    error: str | None | _Keep = KEEP,
    result: dict[str, Any] | _Keep = KEEP,
    log_path: str | _Keep = KEEP,
    workspace: str | _Keep = KEEP,
    started_at: datetime | None | _Keep = KEEP,
    heartbeat_at: datetime | None | _Keep = KEEP,
    finished_at: datetime | None | _Keep = KEEP,
) -> Job:
    """Set the given fields of a job row (the others keep their values).

    Raises KeyError for an unknown id; a misspelled field is a TypeError at the call."""
    job = session.get(Job, job_id)
    if job is None:
        raise KeyError(f"no job with id {job_id}")
    given = {"status": status, "title": title, "params": params, "pid": pid, "host": host,
             "step": step, "total": total, "message": message,
             "cancel_requested": cancel_requested, "error": error, "result": result,
             "log_path": log_path, "workspace": workspace, "started_at": started_at, "heartbeat_at": heartbeat_at,
             "finished_at": finished_at}
    for key in ("params", "error", "message", "title"):
        # Keys and URL credentials never reach the store (an error body echoing the key).
        if given[key] is not KEEP:
            given[key] = redact_value(given[key])
    for key, value in given.items():
        if value is not KEEP:
            setattr(job, key, value)
    session.add(job)
    session.flush()
    return job


def add_metrics(session: Session, *, job_id: int, step: int, values: dict[str, float]) -> None:
    """Store one value per metric name for a job's step, replacing what that step reported
    before (a resumed run replays the steps after its checkpoint): one row per job, step and
    name, the latest."""
    from sqlalchemy import delete

    now = utcnow()
    if values:
        session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step == step,
                                             col(Metric.name).in_(list(values))))
    for name, value in values.items():
        session.add(Metric(job_id=job_id, step=step, name=name, value=float(value), created_at=now))
    session.flush()


def metric_series(session: Session, *, job_id: int, name: str) -> list[tuple[int, float]]:
    """(step, value) of one metric of a job, in step order."""
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
    """Record a checkpoint a training job saved."""
    checkpoint = Checkpoint(job_id=job_id, step=step, path=path, final=final)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def list_checkpoints(session: Session, *, job_id: int) -> list[Checkpoint]:
    """A job's checkpoints in step order."""
    return list(
        session.exec(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step))
    )


# ---------------------------------------------------------------- variants, generations, judgments


def get_variant(session: Session, *, name: str) -> Optional[ModelVariant]:
    """The variant called `name`, None when there is none."""
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
    """Add a model variant (a base model, optionally with a LoRA adapter). Raises
    db.names.NameRefused for a bad name."""
    require_name("variant", name)
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
    """Every model variant in id order."""
    return list(session.exec(select(ModelVariant).order_by(ModelVariant.id)))


def find_generation(
    session: Session, *, variant_id: int, sample_id: int, params_key: str
) -> Optional[Generation]:
    """The generation stored under this key, None when there is none."""
    return session.exec(
        select(Generation).where(
            Generation.variant_id == variant_id,
            Generation.sample_id == sample_id,
            Generation.params_key == params_key,
        )
    ).first()


def add_generation(
    session: Session,
    *,
    variant_id: int,
    sample_id: int,
    prompt: str,
    text: str,
    params_key: str,
    decoding: dict[str, Any] | None = None,
    frame_indices: Sequence[int] = (),
    frame_times: Sequence[float] = (),
    n_tokens: int = 0,
    task: str = "recipe",
    job_id: int | None = None,
) -> Generation:
    """Store a text a variant generated for a sample.

    Raises ValueError for a task outside GENERATION_TASKS."""
    if task not in GENERATION_TASKS:
        raise ValueError(f"a generation's task must be one of {', '.join(GENERATION_TASKS)}, "
                         f"got {task!r}")
    generation = Generation(
        variant_id=variant_id, sample_id=sample_id, prompt=prompt, text=text,
        params_key=params_key, decoding=dict(decoding or {}), frame_indices=list(frame_indices),
        frame_times=list(frame_times), n_tokens=n_tokens, task=task, job_id=job_id)
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
    """The judgment stored under this key, None when there is none."""
    return session.exec(
        select(Judgment).where(
            Judgment.generation_id == generation_id,
            Judgment.judge == judge,
            Judgment.protocol == protocol,
            Judgment.prompt_version == prompt_version,
        )
    ).first()


def add_judgment(
    session: Session,
    *,
    generation_id: int,
    judge: str,
    protocol: str,
    prompt_version: str,
    score: float | None = None,
    verdict: str = "",
    raw: str = "",
    details: dict[str, Any] | None = None,
    job_id: int | None = None,
) -> Judgment:
    """Store a judge's score of a generation (score None: the reply could not be parsed)."""
    judgment = Judgment(
        generation_id=generation_id, judge=judge, protocol=protocol,
        prompt_version=prompt_version, score=score, verdict=verdict, raw=raw,
        details=dict(details or {}), job_id=job_id)
    session.add(judgment)
    session.flush()
    return judgment


def judgments_for_generation(session: Session, *, generation_id: int) -> list[Judgment]:
    """A generation's judgments, oldest first."""
    return list(
        session.exec(
            select(Judgment).where(Judgment.generation_id == generation_id).order_by(Judgment.id)
        )
    )


def find_grounding(session: Session, *, generation_id: int, params_key: str) -> Optional[Grounding]:
    """The grounding stored under this key, None when there is none."""
    return session.exec(
        select(Grounding).where(
            Grounding.generation_id == generation_id, Grounding.params_key == params_key
        )
    ).first()


def add_grounding(
    session: Session,
    *,
    generation_id: int,
    params_key: str,
    params: dict[str, Any] | None = None,
    steps: Sequence[dict[str, Any]] = (),
    job_id: int | None = None,
) -> Grounding:
    """Store which frames each step of a generation attends to, under its capture settings."""
    grounding = Grounding(generation_id=generation_id, params_key=params_key,
                          params=dict(params or {}), steps=list(steps), job_id=job_id)
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


def recipe_groundings(
    session: Session, *, dataset_id: int
) -> list[tuple[Grounding, Generation, Sample]]:
    """Every grounding of a recipe generation on the dataset, with both, oldest first."""
    query = (select(Grounding, Generation, Sample)
             .join(Generation, Generation.id == Grounding.generation_id)
             .join(Sample, Sample.id == Generation.sample_id)
             .where(Sample.dataset_id == dataset_id, Generation.task == "recipe")
             .order_by(Grounding.id))
    return [(grounding, generation, sample)
            for grounding, generation, sample in session.exec(query)]


def scored_judgments(
    session: Session,
    *,
    generation_ids: Iterable[int],
    judge: str | None = None,
    protocol: str | None = None,
    prompt_version: str | None = None,
) -> list[Judgment]:
    """Parsed scores (not pairwise, not unparsable) of these generations, oldest first."""
    ids = sorted(set(generation_ids))
    if not ids:
        return []
    query = (select(Judgment).where(col(Judgment.generation_id).in_(ids),
                                    col(Judgment.score).is_not(None),
                                    Judgment.protocol != "pairwise",
                                    Judgment.verdict != "unparsable")
             .order_by(Judgment.id))
    if judge:
        query = query.where(Judgment.judge == judge)
    if protocol:
        query = query.where(Judgment.protocol == protocol)
    if prompt_version:
        query = query.where(Judgment.prompt_version == prompt_version)
    return list(session.exec(query))


def generation_sources(
    session: Session, *, generation_ids: Iterable[int]
) -> dict[int, tuple[str, str]]:
    """generation id → (variant name, sample external id): who wrote it about what."""
    ids = sorted(set(generation_ids))
    if not ids:
        return {}
    rows = session.exec(
        select(Generation.id, ModelVariant.name, Sample.external_id)
        .join(ModelVariant, ModelVariant.id == Generation.variant_id)
        .join(Sample, Sample.id == Generation.sample_id)
        .where(col(Generation.id).in_(ids)))
    return {int(gid): (str(variant), str(sample)) for gid, variant, sample in rows}


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


# ---------------------------------------------------------------- taking a job to run, metrics on resume


def claim_job(
    session: Session,
    *,
    job_id: int,
    from_statuses: Sequence[str],
    status: str,
    owner: tuple[int | None, str] | _Keep = KEEP,
    held_by: int | None | _Keep = KEEP,
    message: str | _Keep = KEEP,
    clear_cancel: bool = False,
    unless_cancelled: bool = False,
    requeue: bool = False,
    queue: str | _Keep = KEEP,
) -> bool:
    """Move job `job_id` to `status` in one conditional UPDATE, so that of any number of
    processes racing for it (two resumes, a resume and a run) exactly one wins.

    The row changes only while its status is one of `from_statuses`, while it still names the
    process `held_by` (the claim token: the pid the caller saw on the row and decided on), and,
    with `unless_cancelled`, while nobody asked to cancel it. `owner` (pid, host) is written as
    the process that holds the job now; a job claimed to run gets a heartbeat, a start time when
    it had none, and loses its last finish and error; `clear_cancel` forgets a cancel request;
    `requeue` puts it at the back of its queue and `queue` moves it to another host's queue.
    Returns True when this call changed the row, False (nothing written) when it did not,
    including for an unknown id.
    """
    from sqlalchemy import update

    conditions = [Job.id == job_id, col(Job.status).in_(list(from_statuses))]
    if held_by is not KEEP:
        conditions.append(col(Job.pid).is_(None) if held_by is None else Job.pid == held_by)
    if unless_cancelled:
        conditions.append(col(Job.cancel_requested).is_(False))
    now = utcnow()
    values: dict[str, Any] = {"status": status}
    if owner is not KEEP:
        values["pid"], values["host"] = owner
    if message is not KEEP:
        values["message"] = message
    if clear_cancel:
        values["cancel_requested"] = False
    if requeue:
        values["queued_at"] = now
    if queue is not KEEP:
        values["queue"] = queue
    if status == "running":
        values.update(heartbeat_at=now, started_at=func.coalesce(Job.started_at, now),
                      finished_at=None, error=None)
    result = session.execute(update(Job).where(*conditions).values(**values)
                             .execution_options(synchronize_session=False))
    session.flush()
    return result.rowcount == 1


def delete_metrics_after(session: Session, *, job_id: int, step: int) -> int:
    """Delete what job `job_id` reported after `step` (a run resumed from the checkpoint at
    `step` reports those steps again); returns how many rows went."""
    from sqlalchemy import delete

    result = session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step > step)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


# ---------------------------------------------------------------- samples a job could not do


@dataclass(frozen=True)
class FailedSample:
    """A sample a generate, timestamps or ground job could not do, and why."""

    id: int
    variant_id: int
    variant: str
    sample_id: int
    external_id: str
    media_path: Optional[str]
    task: str  # one of db.models.FAILURE_TASKS
    reason: str
    job_id: Optional[int]
    created_at: datetime


def add_generation_failure(
    session: Session,
    *,
    variant_id: int,
    sample_id: int,
    task: str,
    reason: str,
    job_id: int | None = None,
) -> GenerationFailure:
    """Record that `variant_id` could not do `task` for `sample_id`, with a one-line reason.
    Raises ValueError for a task outside FAILURE_TASKS."""
    if task not in FAILURE_TASKS:
        raise ValueError(f"a failure's task must be one of {', '.join(FAILURE_TASKS)}, "
                         f"got {task!r}")
    failure = GenerationFailure(variant_id=variant_id, sample_id=sample_id, task=task,
                                reason=reason, job_id=job_id)
    session.add(failure)
    session.flush()
    return failure


def _latest_successes(session: Session, *, task: str, variant_id: int | None,
                      dataset_id: int | None) -> dict[tuple[int, int], datetime]:
    """(variant id, sample id) → when `task` last succeeded for it: a generation of that task,
    or for "grounding" a grounding of a recipe generation."""
    if task == "grounding":
        query = (select(Generation.variant_id, Generation.sample_id,
                        func.max(Grounding.created_at))
                 .join(Generation, Generation.id == Grounding.generation_id))
    else:
        query = (select(Generation.variant_id, Generation.sample_id,
                        func.max(Generation.created_at))
                 .where(Generation.task == task))
    if variant_id is not None:
        query = query.where(Generation.variant_id == variant_id)
    if dataset_id is not None:
        query = query.join(Sample, Sample.id == Generation.sample_id).where(
            Sample.dataset_id == dataset_id)
    query = query.group_by(Generation.variant_id, Generation.sample_id)
    return {(int(v), int(s)): at for v, s, at in session.exec(query)}


def list_generation_failures(
    session: Session,
    *,
    variant_id: int | None = None,
    dataset_id: int | None = None,
    task: str | None = None,
    job_id: int | None = None,
    current: bool = True,
) -> list[FailedSample]:
    """Samples a job could not do, by variant and sample id. `current`: only each variant,
    sample and task's latest failure, and only when no success came after it (what a report
    counts); otherwise every failure recorded (what one job met, with `job_id`)."""
    query = (select(GenerationFailure, ModelVariant.name, Sample.external_id, Sample.media_path)
             .join(ModelVariant, ModelVariant.id == GenerationFailure.variant_id)
             .join(Sample, Sample.id == GenerationFailure.sample_id)
             .order_by(ModelVariant.id, Sample.id, GenerationFailure.id))
    if variant_id is not None:
        query = query.where(GenerationFailure.variant_id == variant_id)
    if dataset_id is not None:
        query = query.where(Sample.dataset_id == dataset_id)
    if task is not None:
        query = query.where(GenerationFailure.task == task)
    if job_id is not None:
        query = query.where(GenerationFailure.job_id == job_id)
    rows = [FailedSample(id=f.id, variant_id=f.variant_id, variant=name, sample_id=f.sample_id,
                         external_id=external_id, media_path=media_path, task=f.task,
                         reason=f.reason, job_id=f.job_id, created_at=f.created_at)
            for f, name, external_id, media_path in session.exec(query)]
    if not current:
        return rows
    latest: dict[tuple[int, int, str], FailedSample] = {}
    for row in rows:  # oldest first within a variant and sample, so the newest wins
        latest[(row.variant_id, row.sample_id, row.task)] = row
    successes = {name: _latest_successes(session, task=name, variant_id=variant_id,
                                         dataset_id=dataset_id)
                 for name in {key[2] for key in latest}}
    return [row for (variant, sample, name), row in latest.items()
            if not (done := successes[name].get((variant, sample))) or done < row.created_at]


def generation_failure_counts(session: Session, *, dataset_id: int,
                              task: str = "recipe") -> dict[str, int]:
    """Variant name → how many samples of the dataset its latest `task` attempt failed on
    (the report's Failed column)."""
    counts: dict[str, int] = {}
    for row in list_generation_failures(session, dataset_id=dataset_id, task=task):
        counts[row.variant] = counts.get(row.variant, 0) + 1
    return counts


def beat_job(session: Session, *, job_id: int, pid: int) -> bool:
    """Write a heartbeat on job `job_id` while process `pid` holds it; False when another process
    took the job since (a resume after it was taken for dead), which must then stop."""
    from sqlalchemy import update

    result = session.execute(update(Job).where(Job.id == job_id, Job.pid == pid)
                             .values(heartbeat_at=utcnow())
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1


# ---------------------------------------------------------------- the device queue and settings

_PG_QUEUE_LOCK = 0x64647175  # "ddqu": serialises starting jobs from a queue across processes


def lock_queue(session: Session) -> None:
    """Take the lock under which a process decides which queued jobs start (held until the
    session commits), so that two processes never both start the head of a queue: SQLite's
    write lock (BEGIN IMMEDIATE, waited for in short attempts), a transaction-level advisory
    lock on PostgreSQL. Raises db.store.StoreBusy when SQLite's lock stays taken."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_QUEUE_LOCK})
        return
    from db.store import begin_write

    begin_write(session)


def queue_jobs(session: Session, *, queue: str | None = None,
               status: Sequence[str] = ("queued", "running")) -> list[Job]:
    """Jobs of one host's queue (every queue when None) in these statuses, in queue order:
    the time each joined the queue, then id."""
    query = select(Job).where(col(Job.status).in_(list(status)))
    if queue is not None:
        query = query.where(Job.queue == queue)
    return list(session.exec(query.order_by(col(Job.queued_at).asc().nulls_first(),
                                            col(Job.id).asc())))


def get_setting(session: Session, *, name: str) -> Optional[str]:
    """A setting's stored value, None when it was never set."""
    row = session.get(Setting, name)
    return None if row is None else row.value


def set_setting(session: Session, *, name: str, value: str) -> None:
    """Store a setting's value, replacing the one before."""
    row = session.get(Setting, name)
    if row is None:
        row = Setting(name=name, value=value)
    else:
        row.value, row.updated_at = value, utcnow()
    session.add(row)
    session.flush()


# ---------------------------------------------------------------- ablation grids


def create_grid(session: Session, *, name: str, cells: Sequence[dict[str, Any]],
                **fields: Any) -> Grid:
    """Add a grid and its cells (dicts of GridCell fields, in order; position 0 is the base
    row). Raises KeyError for a field a grid does not have; db.errors.UserError for a bad
    name."""
    require_name("grid", name)
    unknown = set(fields) - set(Grid.model_fields)
    if unknown:
        raise KeyError(f"a grid has no field {sorted(unknown)[0]!r}")
    grid = Grid(name=name, **fields)
    session.add(grid)
    session.flush()
    for position, cell in enumerate(cells):
        session.add(GridCell(grid_id=grid.id, position=position, **cell))
    session.flush()
    return grid


def get_grid(session: Session, *, name: str) -> Optional[Grid]:
    """The grid of this name, None when there is none."""
    return session.exec(select(Grid).where(Grid.name == name)).first()


def list_grids(session: Session) -> list[Grid]:
    """Every grid, newest first."""
    return list(session.exec(select(Grid).order_by(col(Grid.id).desc())))


def grid_cells(session: Session, *, grid_id: int) -> list[GridCell]:
    """A grid's cells in order, the base row first."""
    return list(session.exec(select(GridCell).where(GridCell.grid_id == grid_id)
                             .order_by(col(GridCell.position))))


def update_grid_cell(session: Session, *, cell_id: int, train_job_id: int | None | _Keep = KEEP,
                     generate_job_id: int | None | _Keep = KEEP,
                     judge_job_ids: list[int] | _Keep = KEEP) -> GridCell:
    """Set the jobs of a grid cell. Raises KeyError for an unknown id."""
    cell = session.get(GridCell, cell_id)
    if cell is None:
        raise KeyError(f"no grid cell with id {cell_id}")
    if train_job_id is not KEEP:
        cell.train_job_id = train_job_id
    if generate_job_id is not KEEP:
        cell.generate_job_id = generate_job_id
    if judge_job_ids is not KEEP:
        cell.judge_job_ids = list(judge_job_ids)
    session.add(cell)
    session.flush()
    return cell
