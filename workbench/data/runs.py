"""What the Runs screen adds to a train job's detail: setup, validation-loss and learning-rate
curves, checkpoints (the one with the lowest validation loss marked) and a second run's loss to
overlay. Its table is the jobs table (workbench.data.jobs) of kind "train"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.data.jobs import JobDetail, JobRow, Series, job_detail, run_variant

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class CheckpointRow:
    step: int
    final: bool
    path: str
    saved_at: datetime
    val_loss: float | None = None  # the validation loss measured at its step
    best: bool = False  # the lowest validation loss of the run's checkpoints


@dataclass(frozen=True)
class RunDetail:
    """A train job's detail plus its setup, learning-rate curves and checkpoints."""

    job: JobDetail
    setup: tuple[tuple[str, str], ...]  # base, preset, datasets, gpus, … as the run was asked
    val_loss: Series
    lr: Series
    projector_lr: Series
    checkpoints: tuple[CheckpointRow, ...]

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def row(self) -> JobRow:
        return self.job.row

    @property
    def variant(self) -> str:
        return self.row.variant

    @property
    def label(self) -> str:
        return f"run {self.id} {self.variant}"


@dataclass(frozen=True)
class Overlay:
    """A second run's loss curve, drawn over the selected run's."""

    id: int
    label: str
    loss: Series
    val_loss: Series = ()


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


def load_run_detail(db_engine: Engine, job_id: int, *, overlay_id: int | None = None
                    ) -> tuple[RunDetail | None, Overlay | None]:
    """The detail of one run, or None when it no longer exists, and the loss curve of
    `overlay_id` when that is another run still in the store."""
    from db.queries import get_job, list_checkpoints, metric_series
    from db.store import session_scope
    from engine.jobs.train_settings import TrainError, best_checkpoint

    with session_scope(db_engine) as session:
        job = get_job(session, job_id=job_id)
        if job is None:
            return None, None
        val_loss = tuple(metric_series(session, job_id=job_id, name="val_loss"))
        measured = dict(val_loss)
        checkpoints = list_checkpoints(session, job_id=job_id)
        try:  # the checkpoint `ddft variants from-checkpoint --best` takes
            best_step: int | None = best_checkpoint(session, job_id=job_id).step
        except TrainError:
            best_step = None
        detail = RunDetail(
            job=job_detail(session, job),
            setup=_setup(job.params),
            val_loss=val_loss,
            lr=tuple(metric_series(session, job_id=job_id, name="lr")),
            projector_lr=tuple(metric_series(session, job_id=job_id, name="projector_lr")),
            checkpoints=tuple(
                CheckpointRow(step=c.step, final=c.final, path=c.path, saved_at=c.created_at,
                              val_loss=measured.get(c.step), best=c.step == best_step)
                for c in checkpoints
            ),
        )
        overlay = None
        if overlay_id is not None and overlay_id != job_id:
            other = get_job(session, job_id=overlay_id)
            if other is not None:
                overlay = Overlay(id=other.id, label=f"run {other.id} {run_variant(other)}",
                                  loss=tuple(metric_series(session, job_id=other.id, name="loss")),
                                  val_loss=tuple(metric_series(session, job_id=other.id,
                                                               name="val_loss")))
    return detail, overlay
