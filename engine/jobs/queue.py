"""The device queue of a host: which waiting jobs may start now, and where each waiting job stands.

Jobs that need the accelerator (training, generation, timestamps, grounding: db.models.
DEVICE_KINDS) take device slots while they run; a host has `device_slots` of them (one by
default, a store setting: `ddft jobs slots N`), and a training run on N GPUs takes N. Waiting
jobs start in the order they joined the queue, the first waiting device job first: a later job
never overtakes it, even when it would fit. Jobs that do not need the device (judging, checks)
never wait for it. Any job may wait for other jobs (`after`): it is not ready until they have
succeeded, and is passed over (blocked) while one of them has stopped without succeeding.

Pure decisions over rows; engine.jobs.runner.start_queued takes them under the queue's lock
and starts the processes. Import-light: the workbench reads queue places through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from db.models import DEVICE_KINDS

if TYPE_CHECKING:
    from sqlmodel import Session

    from db.models import Job

SLOTS_SETTING = "device_slots"
DEFAULT_SLOTS = 1


def device_need(kind: str, params: Mapping[str, object]) -> int:
    """Device slots a job of `kind` takes while it runs: a training run one per GPU it trains
    on, generation, timestamps and grounding one, everything else none."""
    if kind not in DEVICE_KINDS:
        return 0
    if kind == "train":
        gpus = params.get("gpus", 1)
        return gpus if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0 else 1
    return 1


def device_slots(session: Session) -> int:
    """How many device slots a host has (the `device_slots` setting; 1 when unset)."""
    from db import queries

    value = queries.get_setting(session, name=SLOTS_SETTING)
    try:
        slots = int(value) if value is not None else DEFAULT_SLOTS
    except ValueError:
        return DEFAULT_SLOTS
    return max(1, slots)


def readiness(job: Job, dependencies: Mapping[int, Job]) -> str:
    """"ready" when every job `job` waits for has succeeded (or it waits for none), "blocked"
    when one of them stopped without succeeding (or is gone), "waiting" otherwise."""
    state = "ready"
    for job_id in job.after or ():
        dependency = dependencies.get(job_id)
        if dependency is None or dependency.status in ("failed", "cancelled", "interrupted"):
            return "blocked"
        if dependency.status != "succeeded":
            state = "waiting"
    return state


def plan_starts(queued: Sequence[Job], running: Iterable[Job], dependencies: Mapping[int, Job],
                slots: int) -> list[Job]:
    """Of `queued` (in queue order), the jobs that start now, given the jobs `running` on the
    same host and its `slots`: every ready job that needs no device, and ready device jobs in
    order while they fit; the first ready device job that does not fit stops the device line
    (a job needing more slots than the host has starts alone, once the device is idle)."""
    used = sum(job.devices for job in running)
    starts: list[Job] = []
    device_line_open = True
    for job in queued:
        if readiness(job, dependencies) != "ready":
            continue
        if job.devices <= 0:
            starts.append(job)
            continue
        if not device_line_open:
            continue
        fits = used + job.devices <= slots or (used == 0 and job.devices > slots)
        if fits:
            starts.append(job)
            used += job.devices
        else:
            device_line_open = False
    return starts


@dataclass(frozen=True)
class QueuePlace:
    """Where a waiting job stands. `position` counts from 1 among the host's waiting device
    jobs that are ready or waiting for other jobs (None for a job that needs no device);
    `ahead` are the job ids in front of it; `waits_for` the jobs it waits for that have not
    succeeded yet; `blocked_by` those that stopped without succeeding; `running` the device
    jobs running on its host now."""

    job_id: int
    position: int | None
    ahead: tuple[int, ...]
    waits_for: tuple[int, ...]
    blocked_by: tuple[int, ...]
    running: tuple[int, ...]

    def describe(self) -> str:
        """One line for a terminal or a notice: what the job waits for."""
        if self.blocked_by:
            return ("blocked: job " + ", ".join(map(str, self.blocked_by)) + " did not succeed;"
                    " resume it (or cancel this one)")
        parts = []
        if self.position is not None:
            parts.append(f"queued, position {self.position}")
        else:
            parts.append("queued")
        if self.waits_for:
            parts.append("after job " + ", ".join(map(str, self.waits_for)))
        if self.position is not None and self.running:
            parts.append("device busy with job " + ", ".join(map(str, self.running)))
        return "; ".join(parts)


def queue_places(session: Session, *, queue: str | None = None) -> dict[int, QueuePlace]:
    """The place of every queued job (of one host's queue, or of all), by job id."""
    from db import queries

    jobs = queries.queue_jobs(session, queue=queue)
    queued = [job for job in jobs if job.status == "queued"]
    running: dict[str, list[int]] = {}
    for job in jobs:
        if job.status == "running" and job.devices > 0:
            running.setdefault(job.queue or job.host, []).append(job.id)  # type: ignore[arg-type]
    dependencies = queries.jobs_by_id(session, job_ids={d for job in queued for d in job.after})
    places: dict[int, QueuePlace] = {}
    line: dict[str, list[int]] = {}
    for job in queued:
        waits = tuple(d for d in job.after if d not in dependencies
                      or dependencies[d].status != "succeeded")
        blocked = tuple(d for d in job.after if d not in dependencies or dependencies[d].status
                        in ("failed", "cancelled", "interrupted"))
        position = None
        ahead: tuple[int, ...] = ()
        if job.devices > 0 and not blocked:
            waiting = line.setdefault(job.queue, [])
            ahead = tuple(waiting)
            waiting.append(job.id)  # type: ignore[arg-type]
            position = len(waiting)
        places[job.id] = QueuePlace(job_id=job.id, position=position, ahead=ahead,  # type: ignore[index]
                                    waits_for=waits, blocked_by=blocked,
                                    running=tuple(running.get(job.queue, ())))
    return places
