"""Job rows and the detail of one job (params, log tail, loss curve), read from the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

LOG_LINES = 20
# Enough bytes for 20 lines of a training log; reading the whole file each second would not scale.
LOG_TAIL_BYTES = 16_384
ACTIVE = ("queued", "running")
SPARK = "▁▂▃▄▅▆▇█"


class JobsUnavailable(RuntimeError):
    """engine.jobs cannot be imported, so jobs cannot be cancelled from here."""


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    title: str
    status: str
    progress: str
    loss: str
    heartbeat: str
    started: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def cells(self) -> tuple[str, ...]:
        return (str(self.id), self.kind, self.title, self.status, self.progress, self.loss,
                self.heartbeat, self.started)


@dataclass(frozen=True)
class JobDetail:
    id: int
    kind: str
    title: str
    status: str
    progress: str
    cancel_requested: bool
    params: tuple[tuple[str, str], ...]
    message: str
    error: str | None
    log_path: str
    log_tail: tuple[str, ...] | None  # None: no log file to read
    latest: tuple[tuple[str, float], ...]
    loss_first: tuple[int, float] | None
    loss_last: tuple[int, float] | None
    loss_min: tuple[int, float] | None
    loss_points: int
    loss_sparkline: str


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def format_local(moment: datetime | None) -> str:
    """A store timestamp (UTC; naive ones are taken as UTC) in the user's local time."""
    if moment is None:
        return "—"
    return moment.replace(tzinfo=timezone.utc).astimezone().strftime("%m-%d %H:%M:%S")


def _progress(step: int, total: int) -> str:
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


def refresh_job_states(engine: Engine) -> str | None:
    """Mark dead running jobs interrupted through engine.jobs; returns a note when it cannot."""
    try:
        from engine.jobs import refresh_job_states as refresh
    except ImportError:
        return "engine.jobs is not available: dead jobs are not detected"
    refresh(engine)
    return None


def request_cancel(engine: Engine, job_id: int) -> None:
    """Ask a job to stop through engine.jobs. Raises JobsUnavailable when it is missing, and
    whatever engine.jobs raises (its JobError for an unknown id)."""
    try:
        from engine.jobs import request_cancel as cancel
    except ImportError as exc:
        raise JobsUnavailable(f"cannot cancel: engine.jobs is not available ({exc})") from exc
    cancel(engine, job_id)


def load_jobs(engine: Engine, *, now: datetime | None = None) -> tuple[JobRow, ...]:
    """Every job, newest first."""
    from db.models import utcnow
    from db.queries import latest_metrics, list_jobs
    from db.store import session_scope

    now = now or utcnow()
    rows = []
    with session_scope(engine) as session:
        for job in list_jobs(session):
            loss = latest_metrics(session, job_id=job.id).get("loss")
            heartbeat = job.heartbeat_at
            rows.append(
                JobRow(
                    id=job.id,
                    kind=job.kind,
                    title=job.title,
                    status=job.status + (" (cancel asked)" if job.cancel_requested and job.status in ACTIVE else ""),
                    progress=_progress(job.step, job.total),
                    loss="—" if loss is None else f"{loss:.4f}",
                    heartbeat="—" if heartbeat is None else format_age((now - heartbeat).total_seconds()),
                    started=format_local(job.started_at),
                )
            )
    return tuple(rows)


def _flat(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def load_job_detail(engine: Engine, job_id: int, *, chart_width: int = 60) -> JobDetail | None:
    """The detail of one job, or None when it no longer exists."""
    from db.queries import get_job, latest_metrics, metric_series
    from db.store import session_scope

    with session_scope(engine) as session:
        job = get_job(session, job_id=job_id)
        if job is None:
            return None
        series = metric_series(session, job_id=job_id, name="loss")
        latest = tuple(sorted(latest_metrics(session, job_id=job_id).items()))
        log_tail: tuple[str, ...] | None = None
        if job.log_path:
            try:
                log_tail = tail_lines(Path(job.log_path))
            except OSError:
                log_tail = None
        return JobDetail(
            id=job.id,
            kind=job.kind,
            title=job.title,
            status=job.status,
            progress=_progress(job.step, job.total),
            cancel_requested=job.cancel_requested,
            params=tuple((str(k), _flat(v)) for k, v in sorted(job.params.items())),
            message=job.message,
            error=job.error,
            log_path=job.log_path,
            log_tail=log_tail,
            latest=latest,
            loss_first=series[0] if series else None,
            loss_last=series[-1] if series else None,
            loss_min=min(series, key=lambda point: point[1]) if series else None,
            loss_points=len(series),
            loss_sparkline=loss_sparkline(series, chart_width),
        )
