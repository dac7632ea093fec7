"""Training runs (jobs of kind "train") as rows and as the detail of one run, read from the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.data.jobs import ACTIVE, JobsUnavailable, format_local, tail_lines

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

RUN_KIND = "train"
RESUMABLE = ("interrupted", "failed", "cancelled")
# The step rate behind the ETA comes from this many of the last logged loss points: enough to
# smooth one slow step, few enough to follow a run that sped up (a resumed run, a warm cache).
RATE_POINTS = 6
# The metrics the runs table shows; train.py logs all but gpu_memory_gb, which a run may add.
ROW_METRICS = ("loss", "samples_per_s", "tokens_per_s", "gpu_memory_gb")
Series = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class RunRow:
    id: int
    variant: str
    status: str
    progress: str
    eta: str
    loss: str
    samples_per_s: str
    tokens_per_s: str
    gpu_memory: str
    started: str

    @property
    def active(self) -> bool:
        return self.status.split(" ")[0] in ACTIVE

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE

    def cells(self) -> tuple[str, ...]:
        return (str(self.id), self.variant, self.status, self.progress, self.eta, self.loss,
                self.samples_per_s, self.tokens_per_s, self.gpu_memory, self.started)


@dataclass(frozen=True)
class CheckpointRow:
    step: int
    final: bool
    path: str
    saved: str


@dataclass(frozen=True)
class RunDetail:
    id: int
    variant: str
    title: str
    status: str
    cancel_requested: bool
    step: int
    total: int
    eta: str
    started: str
    finished: str
    message: str
    error: str | None
    setup: tuple[tuple[str, str], ...]  # base, preset, datasets, gpus, … as the run was asked
    latest: tuple[tuple[str, float], ...]
    loss: Series
    lr: Series
    projector_lr: Series
    checkpoints: tuple[CheckpointRow, ...]
    log_path: str
    log_tail: tuple[str, ...] | None  # None: no log file to read

    @property
    def label(self) -> str:
        return f"run {self.id} {self.variant}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE


@dataclass(frozen=True)
class Overlay:
    """A second run's loss curve, drawn over the selected run's."""

    id: int
    label: str
    loss: Series


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def estimate_eta(points: list[tuple[int, datetime]], *, step: int, total: int, status: str) -> str:
    """Time left at the step rate between the first and last of `points` (step, logged at),
    oldest first: "—" when the run is not running or the rate is unknown."""
    if status != "running" or not total:
        return "—"
    if step >= total:
        return "0s"
    if len(points) < 2:
        return "—"
    (first_step, first_at), (last_step, last_at) = points[0], points[-1]
    seconds = (last_at - first_at).total_seconds()
    if last_step <= first_step or seconds <= 0:
        return "—"
    return format_duration((total - step) * seconds / (last_step - first_step))


def _variant(job: Any) -> str:
    return str(job.params.get("variant") or job.title or f"job {job.id}")


def _number(value: float | None, pattern: str, unit: str = "") -> str:
    return "—" if value is None else format(value, pattern) + unit


def _progress(step: int, total: int) -> str:
    return f"{step}/{total}" if total else str(step)


def load_runs(engine: Engine) -> tuple[RunRow, ...]:
    """Every training run, newest first."""
    from db.queries import list_jobs, recent_metrics
    from db.store import session_scope

    rows = []
    with session_scope(engine) as session:
        jobs = list_jobs(session, kind=RUN_KIND)
        recent = recent_metrics(session, job_ids=[job.id for job in jobs], names=ROW_METRICS,
                                per_name=RATE_POINTS)
        for job in jobs:
            def last(name: str, job_id: int = job.id) -> float | None:
                points = recent.get((job_id, name))
                return points[-1][1] if points else None

            loss_points = [(step, at) for step, _, at in recent.get((job.id, "loss"), [])]
            status = job.status + (" (cancel asked)" if job.cancel_requested and job.status in ACTIVE else "")
            rows.append(
                RunRow(
                    id=job.id,
                    variant=_variant(job),
                    status=status,
                    progress=_progress(job.step, job.total),
                    eta=estimate_eta(loss_points, step=job.step, total=job.total, status=job.status),
                    loss=_number(last("loss"), ".4f"),
                    samples_per_s=_number(last("samples_per_s"), ".2f"),
                    tokens_per_s=_number(last("tokens_per_s"), ",.0f"),
                    gpu_memory=_number(last("gpu_memory_gb"), ".1f", " GB"),
                    started=format_local(job.started_at),
                )
            )
    return tuple(rows)


def _setup(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for key in ("base", "preset", "datasets", "gpus", "overrides", "config"):
        value = params.get(key)
        if value in (None, "", {}, []):
            continue
        if isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        out.append((key, text if len(text) <= 200 else text[:199] + "…"))
    return tuple(out)


def load_run_detail(engine: Engine, job_id: int, *, overlay_id: int | None = None
                    ) -> tuple[RunDetail | None, Overlay | None]:
    """The detail of one run, or None when it no longer exists, and the loss curve of
    `overlay_id` when that is another run still in the store."""
    from db.queries import get_job, list_checkpoints, metric_series, recent_metrics
    from db.store import session_scope

    with session_scope(engine) as session:
        job = get_job(session, job_id=job_id)
        if job is None:
            return None, None
        names = ("loss", "lr", "projector_lr", "samples_per_s", "tokens_per_s", "gpu_memory_gb",
                 "grad_norm")
        recent = recent_metrics(session, job_ids=[job_id], names=names, per_name=RATE_POINTS)
        latest = tuple((name, points[-1][1]) for name in names
                       if (points := recent.get((job_id, name))))
        log_tail: tuple[str, ...] | None = None
        if job.log_path:
            try:
                log_tail = tail_lines(Path(job.log_path))
            except OSError:
                log_tail = None
        detail = RunDetail(
            id=job.id,
            variant=_variant(job),
            title=job.title,
            status=job.status,
            cancel_requested=job.cancel_requested,
            step=job.step,
            total=job.total,
            eta=estimate_eta([(s, at) for s, _, at in recent.get((job_id, "loss"), [])],
                             step=job.step, total=job.total, status=job.status),
            started=format_local(job.started_at),
            finished=format_local(job.finished_at),
            message=job.message,
            error=job.error,
            setup=_setup(job.params),
            latest=latest,
            loss=tuple(metric_series(session, job_id=job_id, name="loss")),
            lr=tuple(metric_series(session, job_id=job_id, name="lr")),
            projector_lr=tuple(metric_series(session, job_id=job_id, name="projector_lr")),
            checkpoints=tuple(
                CheckpointRow(step=c.step, final=c.final, path=c.path, saved=format_local(c.created_at))
                for c in list_checkpoints(session, job_id=job_id)
            ),
            log_path=job.log_path,
            log_tail=log_tail,
        )
        overlay = None
        if overlay_id is not None and overlay_id != job_id:
            other = get_job(session, job_id=overlay_id)
            if other is not None:
                overlay = Overlay(id=other.id, label=f"run {other.id} {_variant(other)}",
                                  loss=tuple(metric_series(session, job_id=other.id, name="loss")))
    return detail, overlay


def resume_run(engine: Engine, job_id: int, *, workspace: Path) -> None:
    """Queue a stopped run again and start it detached through engine.jobs.resume_job.
    Raises JobsUnavailable when engine.jobs is missing, and engine.jobs.JobError when the run
    is active, succeeded or unknown."""
    try:
        from engine.jobs import resume_job
    except ImportError as exc:
        raise JobsUnavailable(f"cannot resume: engine.jobs is not available ({exc})") from exc
    resume_job(engine, job_id, workspace=workspace, detach=True)
