"""Jobs: a Job row plus a detached OS process (`ddft jobs run ID`) that reports to the store.

This module is import-light (no torch): the workbench imports it to start and cancel work.
A job's process writes its status, progress, metrics and a heartbeat to the store; the workbench
only polls. A running job whose process is gone (crash, reboot, killed SSH session with the job
in its process group) is found by `refresh_job_states` and marked "interrupted"; it can be resumed.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy.engine import Engine

from db import queries
from db.errors import UserError
from db.models import JOB_ACTIVE, Job, utcnow
from db.redaction import redact_secrets
from db.store import session_scope
from db.workspace import make_private_file, make_private_folder
from engine.jobs.requests import KINDS, JobError, JobRequest

HEARTBEAT_S = 2.0
# A heartbeat older than this marks a job interrupted when its process cannot be checked directly
# (it runs on another host sharing the store).
STALE_AFTER_S = 60.0


class JobCancelled(Exception):
    """Raised inside a handler to stop at once after it has saved what it must."""


class JobContext:
    """What a handler gets: the job's params and ways to report progress and check for cancel."""

    def __init__(self, db_engine: Engine, job: Job, workspace: Path):
        self.db_engine = db_engine
        self.job_id: int = job.id  # type: ignore[assignment]
        self.kind = job.kind
        self.params: dict[str, Any] = dict(job.params)
        self.workspace = workspace
        self._cancel_checked = 0.0
        self._cancelled = False
        self._listeners: list[Callable[[int, int, str], None]] = []

    def add_progress_listener(self, listener: Callable[[int, int, str], None]) -> None:
        """Also send progress to `listener(step, total, message)` (a foreground progress bar)."""
        self._listeners.append(listener)

    def progress(self, step: int, total: int | None = None, message: str | None = None) -> None:
        fields: dict[str, Any] = {"step": step, "heartbeat_at": utcnow()}
        if total is not None:
            fields["total"] = total
        if message is not None:
            fields["message"] = message
        with session_scope(self.db_engine) as session:
            job = queries.update_job(session, job_id=self.job_id, **fields)
            step, total_now, message_now = job.step, job.total, job.message
        for listener in self._listeners:
            listener(step, total_now, message_now)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        with session_scope(self.db_engine) as session:
            queries.add_metrics(session, job_id=self.job_id, step=step, values=values)

    def should_stop(self) -> bool:
        """True once someone asked to cancel this job (checked against the store at most 2×/s)."""
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked > 0.5:
            self._cancel_checked = now
            with session_scope(self.db_engine) as session:
                job = queries.get_job(session, job_id=self.job_id)
                self._cancelled = bool(job and job.cancel_requested)
        return self._cancelled

    def set_result(self, **values: Any) -> None:
        with session_scope(self.db_engine) as session:
            job = queries.get_job(session, job_id=self.job_id)
            assert job is not None
            job.result = {**job.result, **values}
            session.add(job)

    def log(self, line: str) -> None:
        """A line for the job's log (stdout is the log file of a detached job), keys and URL
        credentials redacted."""
        print(redact_secrets(line), flush=True)


def create_job(db_engine: Engine, *, kind: str, params: dict[str, Any], title: str = "") -> int:
    """Add a queued job row as it is given, unchecked (commands go through `submit`); returns
    its id. Raises JobError for an unknown kind."""
    if kind not in KINDS:
        raise JobError(f"unknown job kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    with session_scope(db_engine) as session:
        return queries.create_job(session, kind=kind, params=params, title=title).id  # type: ignore[return-value]


def job_log_path(workspace: Path, job_id: int) -> Path:
    return workspace / "runs" / "jobs" / f"job-{job_id:05d}.log"


def _reap(process: subprocess.Popen) -> None:
    process.wait()


def spawn_job(db_engine: Engine, job_id: int, *, workspace: Path) -> int:
    """Start `ddft jobs run ID` as a detached process (own session: it outlives the caller's
    terminal and SSH connection). Returns its pid."""
    log_path = job_log_path(workspace, job_id)
    make_private_folder(log_path.parent)
    make_private_file(log_path)  # a log can hold the job's data: owner and group only
    command = [sys.executable, "-m", "engine.cli.main", "jobs", "run", str(job_id),
               "--workspace", str(workspace)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    with session_scope(db_engine) as session:
        queries.update_job(session, job_id=job_id, pid=process.pid, host=socket.gethostname(),
                           log_path=str(log_path))
    # A long-lived caller (the workbench) reaps the child so it never lingers as a zombie.
    threading.Thread(target=_reap, args=(process,), daemon=True, name=f"reap-job-{job_id}").start()
    return process.pid


def submit(db_engine: Engine, request: JobRequest, *, workspace: Path, title: str | None = None,
           detach: bool = True) -> int:
    """The one way work is asked for: check `request` against the store, add its job and, with
    `detach`, start it in its own process; without, the job stays queued for the caller to run
    here (`run_job`, behind a progress bar). Returns the job id.

    Raises JobError for a request of no registered kind, and, before any row is written, with
    every problem `request.problems` finds, one after another on one line.
    """
    kind = getattr(request, "kind", None)
    if kind not in KINDS or type(request) is not KINDS[kind].request:
        raise JobError(f"{type(request).__name__} is not a job request; expected one of "
                       + ", ".join(k.request.__name__ for k in KINDS.values()))
    with session_scope(db_engine) as session:
        problems = request.problems(session)
    name = title or request.title()
    if problems:
        raise JobError(f"cannot start {name}: " + "; ".join(problems))
    job_id = create_job(db_engine, kind=kind, params=request.params(), title=name)
    if detach:
        spawn_job(db_engine, job_id, workspace=workspace)
    return job_id


def request_cancel(db_engine: Engine, job_id: int) -> None:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops at its next check.
    Raises JobError for an unknown id."""
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
        job.cancel_requested = True
        if job.status == "queued":
            job.status = "cancelled"
            job.finished_at = utcnow()
        session.add(job)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie has exited; only its parent has not collected it yet.
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True


def refresh_job_states(db_engine: Engine) -> list[int]:
    """Mark running jobs whose process is gone as interrupted; returns their ids."""
    found: list[int] = []
    host = socket.gethostname()
    stale_before = utcnow() - timedelta(seconds=STALE_AFTER_S)
    with session_scope(db_engine) as session:
        for job in queries.list_jobs(session, status=["running"]):
            if job.host == host and job.pid:
                dead = not _process_alive(job.pid)
            else:
                dead = job.heartbeat_at is None or job.heartbeat_at < stale_before
            if dead:
                job.status = "interrupted"
                job.message = "process ended without reporting; resume with `ddft jobs resume`"
                session.add(job)
                found.append(job.id)  # type: ignore[arg-type]
    return found


def _load_handler(kind: str) -> Callable[[JobContext], Optional[dict[str, Any]]]:
    """The handler of `kind`, imported now. Raises JobError for a kind this ddft does not run
    (a row written by another version)."""
    if kind not in KINDS:
        raise JobError(f"unknown job kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    module_name, _, function = KINDS[kind].handler.partition(":")
    return getattr(importlib.import_module(module_name), function)


class _Heartbeat(threading.Thread):
    def __init__(self, db_engine: Engine, job_id: int):
        super().__init__(daemon=True, name=f"heartbeat-job-{job_id}")
        self.db_engine, self.job_id = db_engine, job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                with session_scope(self.db_engine) as session:
                    queries.update_job(session, job_id=self.job_id, heartbeat_at=utcnow())
            except Exception:  # a busy store must not kill the job; the next beat retries
                pass


def run_job(
    db_engine: Engine,
    job_id: int,
    *,
    workspace: Path,
    progress: Callable[[int, int, str], None] | None = None,
) -> Job:
    """Run a job in this process (what `ddft jobs run ID` does, and the foreground CLI commands).

    Sets status running → succeeded | failed | cancelled, with a heartbeat meanwhile.
    Raises JobError when the job does not exist or is not runnable; handler errors are recorded
    on the row (status failed) and re-raised.
    """
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
        if job.status not in ("queued", "interrupted", "failed"):
            raise JobError(f"job {job_id} is {job.status}; only queued, interrupted or failed "
                           "jobs can run")
        if job.cancel_requested:
            job.status = "cancelled"
            job.finished_at = utcnow()
            session.add(job)
            return job
        job.status = "running"
        job.pid = os.getpid()
        job.host = socket.gethostname()
        job.started_at = job.started_at or utcnow()
        job.heartbeat_at = utcnow()
        job.finished_at = None
        job.error = None
        session.add(job)
        session.flush()
        session.refresh(job)
    context = JobContext(db_engine, job, workspace)
    if progress:
        context.add_progress_listener(progress)
    heartbeat = _Heartbeat(db_engine, job_id)
    heartbeat.start()
    status, error, result = "succeeded", None, None
    try:
        result = _load_handler(job.kind)(context)
        if context.should_stop():
            status = "cancelled"
    except JobCancelled:
        status = "cancelled"
    except UserError as exc:
        # A user's mistake (a missing dataset or model, an unreadable video, a bad setting):
        # the message says it all.
        status, error = "failed", str(exc)
        if progress is None:  # a detached job: its log is the only place the user looks
            context.log(f"error: {exc}")
        raise
    except BaseException as exc:
        status = "failed"
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        context.log(traceback.format_exc())
        raise
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)
        with session_scope(db_engine) as session:
            finished = queries.update_job(
                session, job_id=job_id, status=status, error=error, finished_at=utcnow(),
                heartbeat_at=utcnow(),
                message={"succeeded": "done", "cancelled": "cancelled"}.get(status, "failed"),
            )
            if result:
                finished.result = {**finished.result, **result}
                session.add(finished)
            session.flush()
            session.refresh(finished)
    return finished


def resume_job(db_engine: Engine, job_id: int, *, workspace: Path, detach: bool = True) -> int:
    """Queue an interrupted, failed or cancelled job again and start it; work already stored is
    skipped by its handler. Raises JobError when the job is still active or unknown."""
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
        if job.status in JOB_ACTIVE:
            raise JobError(f"job {job_id} is {job.status}; it cannot be resumed")
        if job.status == "succeeded":
            raise JobError(f"job {job_id} already succeeded; nothing to resume")
        job.status = "queued"
        job.cancel_requested = False
        job.message = "resumed"
        session.add(job)
    if detach:
        spawn_job(db_engine, job_id, workspace=workspace)
    return job_id
