"""The polled jobs table — one typed row per job, with training fields on train jobs — and the
detail of one job, read from the store through db.queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from db.models import Job

LOG_LINES = 20
# Enough bytes for 20 lines of a training log; reading the whole file each second would not scale.
LOG_TAIL_BYTES = 16_384
SPARK = "▁▂▃▄▅▆▇█"
RUN_KIND = "train"
# The step rate behind the ETA comes from this many of the last logged loss points: enough to
# smooth one slow step, few enough to follow a run that sped up (a resumed run, a warm cache).
RATE_POINTS = 6
# The metrics a row carries; train.py logs all but gpu_memory_gb, which a run may add.
ROW_METRICS = ("loss", "samples_per_s", "tokens_per_s", "gpu_memory_gb")
Series = tuple[tuple[int, float], ...]


class JobsUnavailable(RuntimeError):
    """engine.jobs cannot be imported, so jobs cannot be cancelled or resumed from here."""


@dataclass(frozen=True)
class Training:
    """What a train job's row adds for the Runs screen, computed from the same poll."""

    variant: str
    eta_s: float | None  # seconds left at the recent step rate; None when unknown or not running
    samples_per_s: float | None
    tokens_per_s: float | None
    gpu_memory_gb: float | None


@dataclass(frozen=True)
class JobRow:
    """One job as the Jobs and Runs tables show it. Display strings are made by the screens."""

    id: int
    kind: str
    title: str
    status: str  # one of db.models.JOB_STATUSES, as engine.jobs.effective_status reads it
    cancel_requested: bool
    active: bool  # status in db.models.JOB_ACTIVE: the job can still be asked to stop
    resumable: bool  # what engine.jobs.resume_job accepts: stopped without succeeding
    step: int
    total: int
    loss: float | None
    heartbeat_at: datetime | None
    started_at: datetime | None
    training: Training | None  # train jobs only
    # A queued job's place (engine.jobs.queue.QueuePlace): its position among the device jobs
    # waiting on its host (None for one that needs no device), and the job ids it waits for
    # or is blocked by.
    queue_position: int | None = None
    waits_for: tuple[int, ...] = ()
    blocked_by: tuple[int, ...] = ()
    queue_line: str = ""  # the place in words, as `ddft jobs list` says it

    @property
    def cancel_pending(self) -> bool:
        """Asked to stop and not stopped yet."""
        return self.active and self.cancel_requested

    @property
    def variant(self) -> str:
        return self.training.variant if self.training else self.title


@dataclass(frozen=True)
class JobDetail:
    """The selected job: its row plus what only the detail pane shows."""

    row: JobRow
    params: tuple[tuple[str, str], ...]
    message: str
    error: str | None
    finished_at: datetime | None
    log_path: str
    log_tail: tuple[str, ...] | None  # None: no log file to read
    latest: tuple[tuple[str, float], ...]
    loss: Series
    # Samples a generate, timestamps or ground job could not do (its result's "failed"), and
    # the first of them as (sample, path, reason).
    failed: int = 0
    failures: tuple[tuple[str, str, str], ...] = ()

    @property
    def id(self) -> int:
        return self.row.id


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def shown_path(path: str, workspace: Path | None) -> str:
    """`path` as the job screens draw it: relative to the workspace when it lies inside it (a
    run's log and checkpoints), else as stored."""
    if workspace is None or not path:
        return path
    try:
        return str(Path(path).relative_to(workspace))
    except ValueError:
        return path


def format_local(moment: datetime | None) -> str:
    """A store timestamp (UTC; naive ones are taken as UTC) in the user's local time."""
    if moment is None:
        return "—"
    return moment.replace(tzinfo=timezone.utc).astimezone().strftime("%m-%d %H:%M:%S")


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def format_progress(step: int, total: int) -> str:
    return f"{step}/{total}" if total else str(step)


def tail_lines(path: Path, count: int = LOG_LINES) -> tuple[str, ...]:
    """The last `count` lines of a text file. Raises OSError when it cannot be read."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        data = handle.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > LOG_TAIL_BYTES and lines:
        lines = lines[1:]  # the first line is probably cut
    return tuple(lines[-count:])


def loss_sparkline(series: list[tuple[int, float]], width: int) -> str:
    """The loss curve as one line of block characters, averaged into at most `width` cells;
    empty when there are fewer than two points."""
    if len(series) < 2:
        return ""
    values = [value for _, value in series]
    width = max(8, min(width, len(values)))
    # Averaging into buckets keeps a long run's shape instead of dropping points.
    buckets = [values[i * len(values) // width:(i + 1) * len(values) // width] for i in range(width)]
    means = [sum(b) / len(b) for b in buckets if b]
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(SPARK[round((m - low) / span * (len(SPARK) - 1))] for m in means)


def estimate_eta(points: list[tuple[int, datetime]], *, step: int, total: int, status: str
                 ) -> float | None:
    """Seconds left at the step rate between the first and last of `points` (step, logged at),
    oldest first: None when the run is not running or the rate is unknown."""
    if status != "running" or not total:
        return None
    if step >= total:
        return 0.0
    if len(points) < 2:
        return None
    (first_step, first_at), (last_step, last_at) = points[0], points[-1]
    seconds = (last_at - first_at).total_seconds()
    if last_step <= first_step or seconds <= 0:
        return None
    return (total - step) * seconds / (last_step - first_step)


def run_variant(job: Job) -> str:
    """The variant a train job makes, as its rows and charts name it."""
    return str(job.params.get("variant") or job.title or f"job {job.id}")


def job_rows(session: Session, jobs: list[Job]) -> tuple[JobRow, ...]:
    """The rows of `jobs`, in their order, with one more query for all their recent metrics."""
    from db.models import JOB_ACTIVE
    from db.queries import recent_metrics

    try:  # a running job whose process is gone reads "interrupted" here as in `ddft jobs list`
        from engine.jobs import effective_status
    except ImportError:
        def effective_status(job: Job) -> str:
            return job.status

    recent = recent_metrics(session, job_ids=[job.id for job in jobs], names=ROW_METRICS,
                            per_name=RATE_POINTS)
    try:
        from engine.jobs.queue import queue_places

        places = queue_places(session)
    except ImportError:
        places = {}
    rows = []
    for job in jobs:
        def last(name: str, job_id: int = job.id) -> float | None:
            points = recent.get((job_id, name))
            return points[-1][1] if points else None

        status = effective_status(job)
        training = None
        if job.kind == RUN_KIND:
            loss_points = [(step, at) for step, _, at in recent.get((job.id, "loss"), [])]
            training = Training(
                variant=run_variant(job),
                eta_s=estimate_eta(loss_points, step=job.step, total=job.total, status=status),
                samples_per_s=last("samples_per_s"),
                tokens_per_s=last("tokens_per_s"),
                gpu_memory_gb=last("gpu_memory_gb"),
            )
        active = status in JOB_ACTIVE
        place = places.get(job.id)
        rows.append(JobRow(
            id=job.id, kind=job.kind, title=job.title, status=status,
            cancel_requested=job.cancel_requested, active=active,
            # As engine.jobs.resume_job decides: anything stopped but a success.
            resumable=not active and status != "succeeded",
            step=job.step, total=job.total, loss=last("loss"), heartbeat_at=job.heartbeat_at,
            started_at=job.started_at, training=training,
            queue_position=place.position if place else None,
            waits_for=place.waits_for if place else (),
            blocked_by=place.blocked_by if place else (),
            queue_line=place.describe() if place else "",
        ))
    return tuple(rows)


def load_jobs(db_engine: Engine, *, kind: str | None = None) -> tuple[JobRow, ...]:
    """Every job (of `kind` when given), newest first, in three queries however many there are
    (the jobs, their recent metrics, the queue; one more for jobs that queued ones wait for)."""
    from db.queries import list_jobs
    from db.store import session_scope

    with session_scope(db_engine) as session:
        return job_rows(session, list_jobs(session, kind=kind))


def refresh_job_states(db_engine: Engine) -> str | None:
    """Mark dead running jobs interrupted through engine.jobs; returns a note when it cannot."""
    try:
        from engine.jobs import refresh_job_states as refresh
    except ImportError:
        return "engine.jobs is not available: dead jobs are not detected"
    refresh(db_engine)
    return None


def start_queue(db_engine: Engine) -> None:
    """Start the head of this host's job queue when it may start (a queued job outlives the
    processes that asked for it: the workbench starts it after a reboot); quiet when it
    cannot."""
    try:
        from engine.jobs import start_queued
    except ImportError:
        return
    try:
        start_queued(db_engine)
    except Exception:  # a busy or read-only store: the next poll tries again
        return


def request_cancel(db_engine: Engine, job_id: int) -> None:
    """Ask a job to stop through engine.jobs. Raises JobsUnavailable when it is missing, and
    whatever engine.jobs raises (its JobError for an unknown id)."""
    try:
        from engine.jobs import request_cancel as cancel
    except ImportError as exc:
        raise JobsUnavailable(f"cannot cancel: engine.jobs is not available ({exc})") from exc
    cancel(db_engine, job_id)


def resume_job(db_engine: Engine, job_id: int, *, workspace: Path) -> None:
    """Queue a stopped job again and start it detached through engine.jobs.resume_job (a run
    goes on from its last checkpoint). Raises JobsUnavailable when engine.jobs is missing, and
    engine.jobs.JobError when the job is active, succeeded or unknown."""
    try:
        from engine.jobs import resume_job as resume
    except ImportError as exc:
        raise JobsUnavailable(f"cannot resume: engine.jobs is not available ({exc})") from exc
    resume(db_engine, job_id, workspace=workspace, detach=True)


def _flat(value: Any) -> str:
    """A parameter's value as the detail pane lists it: `—` for none, a list as its items, a
    mapping as `key=value` pairs, cut at 200 characters."""
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, (list, tuple)):
        text = ", ".join(str(item) for item in value)
    elif isinstance(value, dict):
        text = ", ".join(f"{key}={item}" for key, item in value.items())
    else:
        text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def job_detail(session: Session, job: Job) -> JobDetail:
    """The detail of `job`, read in `session`."""
    from db.queries import latest_metrics, metric_series

    log_tail: tuple[str, ...] | None = None
    if job.log_path:
        try:
            log_tail = tail_lines(Path(job.log_path))
        except OSError:
            log_tail = None
    return JobDetail(
        row=job_rows(session, [job])[0],
        params=tuple((str(k), _flat(v)) for k, v in sorted(job.params.items())),
        message=job.message,
        error=job.error,
        finished_at=job.finished_at,
        log_path=job.log_path,
        log_tail=log_tail,
        latest=tuple(sorted(latest_metrics(session, job_id=job.id).items())),
        loss=tuple(metric_series(session, job_id=job.id, name="loss")),
        failed=int((job.result or {}).get("failed") or 0),
        failures=tuple((str(f.get("sample", "")), str(f.get("path") or ""),
                        str(f.get("reason", "")))
                       for f in (job.result or {}).get("failures", [])),
    )


def load_job_detail(db_engine: Engine, job_id: int) -> JobDetail | None:
    """The detail of one job, or None when it no longer exists."""
    from db.queries import get_job
    from db.store import session_scope

    with session_scope(db_engine) as session:
        job = get_job(session, job_id=job_id)
        return None if job is None else job_detail(session, job)
