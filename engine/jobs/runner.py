"""Jobs: a Job row plus a detached OS process (`ddft jobs run ID`) that reports to the store.

This module is import-light (no torch): the workbench imports it to start and cancel work.
A job's process writes its status, progress, metrics and a heartbeat to the store; the workbench
only polls. A running job whose process is gone (crash, reboot, kill -9) is shown "interrupted"
by `effective_status`, the one reading every view uses, and can be resumed. A job asked to stop
by SIGTERM, SIGINT (Ctrl-C) or SIGHUP stops as a cancel does (a training run saves a checkpoint
first) and is left "interrupted". Taking a job to run or to resume is one atomic claim in the
store, so two processes never run one job.

Jobs wait in their host's device queue (engine.jobs.queue): `start_queued` starts, under the
queue's lock, what may start now — a process of its own for a job nobody waits on, or the
process already waiting for it (a foreground command) — and is called whenever a job is asked
for or ends, by every ddft command that opens a store and by the workbench's poll; so a queued
job outlives the workbench and a reboot (the next command starts the head of the queue).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

from sqlalchemy.engine import Engine

from db import queries
from db.errors import UserError
from db.models import JOB_ACTIVE, Job, utcnow
from db.store import StoreBusy, StoreError, check_store, session_scope
from db.redaction import redact_secrets
from db.workspace import make_private_file, make_private_folder
from engine.jobs.queue import device_need, device_slots, plan_starts
from engine.jobs.requests import KINDS, JobError, JobRequest, expecting_variants

HEARTBEAT_S = 2.0
# A heartbeat older than this marks a job interrupted when its process cannot be checked directly
# (it runs on another host sharing the store).
STALE_AFTER_S = 60.0
# What may be taken to run (`ddft jobs run`) and what may be queued again (`ddft jobs resume`).
RUNNABLE = ("queued", "interrupted", "failed")
RESUMABLE = ("interrupted", "failed", "cancelled")
# Signals that stop a job the way a cancel does; a second one stops it at once.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How often a process waiting for its job's turn looks at the queue again.
QUEUE_POLL_S = 0.5


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
        # The name of the signal that asked this job to stop (SIGTERM, SIGINT, SIGHUP), if any.
        self.stop_signal: str | None = None
        # Set when another process took the job (see _Heartbeat): stop, write nothing more.
        self.lost = False
        # Set once the job writes how it ended: a second signal then waits for that write.
        self.finishing = False
        # A job run in the foreground also writes its lines here (its job log), so that the
        # Jobs screen and `ddft jobs show` have them after the terminal is gone.
        self.log_file: TextIO | None = None

    def add_progress_listener(self, listener: Callable[[int, int, str], None]) -> None:
        """Also send progress to `listener(step, total, message)` (a foreground progress bar)."""
        self._listeners.append(listener)

    def progress(self, step: int, total: int | None = None, message: str | None = None) -> None:
        fields: dict[str, Any] = {"step": step, "heartbeat_at": utcnow()}
        if total is not None:
            fields["total"] = total
        if message is not None:
            fields["message"] = message
        try:
            with session_scope(self.db_engine, write=True) as session:
                job = queries.update_job(session, job_id=self.job_id, **fields)
                step, total_now, message_now = job.step, job.total, job.message
        except StoreBusy:  # a busy store must not stop the work; the next step writes again
            self.log(f"the store is busy: progress at step {step} not written")
            return
        for listener in list(self._listeners):
            try:
                listener(step, total_now, message_now)
            except OSError:  # the terminal went away (SIGHUP): the job goes on without its bar
                self._listeners.remove(listener)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        try:
            with session_scope(self.db_engine, write=True) as session:
                queries.add_metrics(session, job_id=self.job_id, step=step, values=values)
        except StoreBusy:  # skipped, not fatal: the curve has one point fewer
            self.log(f"the store is busy: metrics of step {step} not written")

    def should_stop(self) -> bool:
        """True once a signal asked this job to stop, or someone asked to cancel it (checked
        against the store at most 2×/s)."""
        if self.stop_signal is not None or self.lost:
            return True
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
        line = redact_secrets(line)
        with contextlib.suppress(OSError):  # a foreground job whose terminal is gone
            print(line, flush=True)
        if self.log_file is not None:
            with contextlib.suppress(OSError, ValueError):  # a full disk never fails the job
                self.log_file.write(line + "\n")
                self.log_file.flush()


@contextlib.contextmanager
def stop_on_signals(context: JobContext) -> Iterator[None]:
    """While inside, SIGTERM, SIGINT and SIGHUP ask the job to stop at its next check, as a
    cancel does (a training run saves a checkpoint first); a second signal stops it at once with
    KeyboardInterrupt. Outside the main thread (signals cannot be caught there) it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: Any) -> None:
        if context.stop_signal is not None and not context.finishing:
            raise KeyboardInterrupt
        # Only a flag: a signal can land inside a store write or a print.
        context.stop_signal = signal.Signals(signum).name

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def create_job(db_engine: Engine, *, kind: str, params: dict[str, Any], title: str = "",
               after: tuple[int, ...] | list[int] = (), workspace: Path | None = None,
               held: bool = False) -> int:
    """Add a queued job row as it is given, unchecked (commands go through `submit`), at the
    back of this host's queue; returns its id. It starts after the jobs `after` succeed; with
    `held` this process waits for it (and runs it: `run_job`), else `start_queued` starts a
    process for it in `workspace` when its turn comes. Raises JobError for an unknown kind."""
    if kind not in KINDS:
        raise JobError(f"unknown job kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    host = socket.gethostname()
    with session_scope(db_engine) as session:
        job = queries.create_job(session, kind=kind, params=params, title=title, queue=host,
                                 devices=device_need(kind, params), after=after,
                                 workspace=str(workspace) if workspace is not None else "")
        if held:
            queries.update_job(session, job_id=job.id, pid=os.getpid(), host=host)  # type: ignore[arg-type]
        return job.id  # type: ignore[return-value]


def job_log_path(workspace: Path, job_id: int) -> Path:
    return workspace / "runs" / "jobs" / f"job-{job_id:05d}.log"


def _stdout_is(path: Path) -> bool:
    """Whether this process's stdout is the file at `path` (a detached job's log)."""
    try:
        out, there = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):  # no file behind stdout, or no log yet
        return False
    return (out.st_dev, out.st_ino) == (there.st_dev, there.st_ino)


def _open_foreground_log(context: JobContext) -> None:
    """A job run in this process with stdout elsewhere (a terminal, a pipe): its log lines go
    to its job log too, and the row names that log. A log that cannot be opened leaves the job
    without one (it still runs)."""
    log_path = job_log_path(context.workspace, context.job_id)
    if _stdout_is(log_path):
        return  # a detached job: stdout is its log already
    try:
        make_private_folder(log_path.parent)
        make_private_file(log_path)
        context.log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 — closed by run_job
        context.log_file.write(f"job {context.job_id} ({context.kind}) run in the foreground "
                               f"by pid {os.getpid()} on {socket.gethostname()}\n")
        context.log_file.flush()
        with session_scope(context.db_engine, write=True) as session:
            queries.update_job(session, job_id=context.job_id, log_path=str(log_path))
    except (OSError, StoreError, StoreBusy):
        if context.log_file is not None:
            context.log_file.close()
        context.log_file = None


def _reap(process: subprocess.Popen) -> None:
    process.wait()


def spawn_job(db_engine: Engine, job_id: int, *, workspace: Path) -> int:
    """Start `ddft jobs run ID` as a detached process (own session: it outlives the caller's
    terminal and SSH connection) for a job this process has taken from the queue
    (`start_queued`), and hand the job over to it. Returns its pid. Raises OSError when the
    process cannot be started."""
    log_path = job_log_path(workspace, job_id)
    make_private_folder(log_path.parent)
    make_private_file(log_path)  # a log can hold the job's data: owner and group only
    command = [sys.executable, "-m", "engine.cli.main", "jobs", "run", str(job_id),
               "--workspace", str(workspace), "--from-pid", str(os.getpid())]
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
        queries.update_job(session, job_id=job_id, log_path=str(log_path))
        # The hand-over: only while this process still holds the job; the child may have taken
        # it already (it writes its own pid, the same one).
        queries.claim_job(session, job_id=job_id, from_statuses=("running",), status="running",
                          held_by=os.getpid(), owner=(process.pid, socket.gethostname()))
    # A long-lived caller (the workbench) reaps the child so it never lingers as a zombie.
    threading.Thread(target=_reap, args=(process,), daemon=True, name=f"reap-job-{job_id}").start()
    return process.pid


def submit(db_engine: Engine, request: JobRequest, *, workspace: Path, title: str | None = None,
           detach: bool = True, after: tuple[int, ...] | list[int] = (),
           pending_variants: tuple[str, ...] | list[str] = ()) -> int:
    """The one way work is asked for: check `request` against the store, add its job to this
    host's queue and, with `detach`, start it in its own process when its turn comes (at once
    when the device is free or it needs none); without, the job waits for the caller to run it
    here (`run_job`, behind a progress bar). It starts after the jobs `after` succeed;
    `pending_variants` are model variants those jobs will make, taken as existing by the
    check. Returns the job id.

    Raises JobError for a request of no registered kind, and, before any row is written, with
    every problem `request.problems` finds, one after another on one line.
    """
    kind = getattr(request, "kind", None)
    if kind not in KINDS or type(request) is not KINDS[kind].request:
        raise JobError(f"{type(request).__name__} is not a job request; expected one of "
                       + ", ".join(k.request.__name__ for k in KINDS.values()))
    with session_scope(db_engine) as session, expecting_variants(pending_variants):
        problems = request.problems(session)
    name = title or request.title()
    if problems:
        raise JobError(f"cannot start {name}: " + "; ".join(problems))
    job_id = create_job(db_engine, kind=kind, params=request.params(), title=name, after=after,
                        workspace=workspace, held=not detach)
    if detach:
        start_queued(db_engine)
    return job_id


def start_queued_on_open(db_engine: Engine, _workspace: Path) -> None:
    """What a `ddft` command does when it opens a store (db.store.add_open_listener): start the
    head of this host's queue if it may start, e.g. after a reboot left queued jobs without a
    process. Quiet: a store that is busy, full or read-only leaves it to the next command."""
    with contextlib.suppress(Exception):
        start_queued(db_engine)


def _holder_alive(job: Job) -> bool:
    """Whether the process named on a queued job's row still waits for it (another host's
    process is taken to be alive)."""
    if not job.pid:
        return False
    if job.host and job.host != socket.gethostname():
        return True
    return _process_alive(job.pid)


def start_queued(db_engine: Engine, *, taking: int | None = None) -> list[int]:
    """Start what this host's queue allows now (engine.jobs.queue.plan_starts; running jobs
    whose process is gone free their slots): job `taking`, which this process waits for, is
    taken by it; a job a live process waits for keeps its place for that process; any other job gets
    a detached process of its own in the workspace it was asked for in (a job that names none
    waits for a process to run it). Deciding is one transaction under the queue's lock, so two
    processes never start one job or overfill the device. Writes nothing when nothing starts.
    Returns the ids started. A busy store starts nothing now (the next call does)."""
    host, me = socket.gethostname(), os.getpid()
    with session_scope(db_engine) as session:
        if not queries.queue_jobs(session, queue=host, status=("queued",)):
            return []
    started: list[int] = []
    spawn: list[tuple[int, Path]] = []
    try:
        with session_scope(db_engine) as session:
            queries.lock_queue(session)
            queued = queries.queue_jobs(session, queue=host, status=("queued",))
            # Running here: in this host's queue, or started here some other way (a row made
            # before the queue, or without one).
            running = [job for job in queries.queue_jobs(session, status=("running",))
                       if (job.queue == host or job.host == host)
                       and effective_status(job) == "running"]
            dependencies = queries.jobs_by_id(session,
                                              job_ids={d for job in queued for d in job.after})
            for job in plan_starts(queued, running, dependencies, device_slots(session)):
                alive = _holder_alive(job)
                if alive and not (job.id == taking and job.pid == me and job.host == host):
                    continue  # its own process takes it (its slot stays reserved meanwhile)
                if not alive and not job.workspace:
                    continue
                taken = queries.claim_job(session, job_id=job.id, from_statuses=("queued",),  # type: ignore[arg-type]
                                          status="running", held_by=job.pid, owner=(me, host),
                                          unless_cancelled=True, message="starting")
                if not taken:
                    continue
                started.append(job.id)  # type: ignore[arg-type]
                if not alive:
                    spawn.append((job.id, Path(job.workspace)))  # type: ignore[arg-type]
    except StoreBusy:
        return []
    for job_id, where in spawn:
        try:
            spawn_job(db_engine, job_id, workspace=where)
        except OSError as exc:
            with session_scope(db_engine) as session:
                if queries.claim_job(session, job_id=job_id, from_statuses=("running",),
                                     status="failed", held_by=me,
                                     message="could not start its process"):
                    queries.update_job(session, job_id=job_id, finished_at=utcnow(),
                                       error=f"could not start its process: {exc}")
    return started

def request_cancel(db_engine: Engine, job_id: int) -> None:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops at its next check.
    Raises JobError for an unknown id, and for a job that has stopped already (nothing is
    written then)."""
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
        if job.status not in JOB_ACTIVE:
            raise JobError(f"job {job_id} already {job.status}; there is nothing to cancel")
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


def effective_status(job: Job) -> str:
    """The status every view shows (`ddft jobs list` and `show`, the Jobs and Runs screens):
    the stored one, except that a running job whose process is gone is "interrupted". On this
    host that is known at once (its pid is checked); a job of another host sharing the store is
    taken for dead when its heartbeat (every HEARTBEAT_S) is older than STALE_AFTER_S. Reads
    only; `refresh_job_states` writes it."""
    if job.status != "running":
        return job.status
    if job.host == socket.gethostname() and job.pid:
        return "running" if _process_alive(job.pid) else "interrupted"
    heartbeat = job.heartbeat_at
    stale = heartbeat is None or heartbeat < utcnow() - timedelta(seconds=STALE_AFTER_S)
    return "interrupted" if stale else "running"


def refresh_job_states(db_engine: Engine) -> list[int]:
    """Store "interrupted" on running jobs whose process is gone (see `effective_status`);
    returns their ids. Each is a claim on the process it found dead, so a job that was resumed
    meanwhile is left alone."""
    found: list[int] = []
    with session_scope(db_engine) as session:
        dead = [(job.id, job.pid) for job in queries.list_jobs(session, status=["running"])
                if effective_status(job) == "interrupted"]
    for job_id, pid in dead:
        with session_scope(db_engine) as session:
            if queries.claim_job(session, job_id=job_id, from_statuses=("running",),
                                 status="interrupted", held_by=pid,
                                 message="process ended without reporting; resume with "
                                         "`ddft jobs resume`"):
                found.append(job_id)  # type: ignore[arg-type]
    return found


def _load_handler(kind: str) -> Callable[[JobContext], Optional[dict[str, Any]]]:
    """The handler of `kind`, imported now. Raises JobError for a kind this ddft does not run
    (a row written by another version)."""
    if kind not in KINDS:
        raise JobError(f"unknown job kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    module_name, _, function = KINDS[kind].handler.partition(":")
    return getattr(importlib.import_module(module_name), function)


class _Heartbeat(threading.Thread):
    def __init__(self, context: JobContext):
        super().__init__(daemon=True, name=f"heartbeat-job-{context.job_id}")
        self.context = context
        self.stopped = threading.Event()

    def run(self) -> None:
        context, pid = self.context, os.getpid()
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                check_store(context.db_engine)
            except StoreError as exc:
                # Deleted, moved or replaced: nothing written from here on would be kept.
                context.log(f"job {context.job_id} stops: {exc}; its checkpoints are kept")
                context.lost = True
                return
            try:
                with session_scope(context.db_engine, write=True) as session:
                    held = queries.beat_job(session, job_id=context.job_id, pid=pid)
            except Exception:  # a busy store must not kill the job; the next beat retries
                continue
            if not held:
                # Taken for dead and resumed by another process: two must never run one job.
                context.lost = True


def _not_taken(db_engine: Engine, job_id: int) -> Job:
    """What run_job does when its claim fails: a job asked to cancel before it started is
    cancelled; otherwise JobError says why it cannot run here."""
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
        status, pid, host, cancel = job.status, job.pid, job.host, job.cancel_requested
    if cancel and status == "cancelled":
        # Cancelled while it waited for its turn (`ddft jobs cancel`, `c` in the Jobs screen).
        with session_scope(db_engine) as session:
            return queries.get_job(session, job_id=job_id)  # type: ignore[return-value]
    if cancel and status in RUNNABLE:
        with session_scope(db_engine) as session:
            if queries.claim_job(session, job_id=job_id, from_statuses=RUNNABLE,
                                 status="cancelled", message="cancelled"):
                return queries.update_job(session, job_id=job_id, finished_at=utcnow())
        return _not_taken(db_engine, job_id)
    if status == "running":
        raise JobError(f"job {job_id} is running already (pid {pid} on {host or 'this host'}); "
                       "another process took it")
    if status == "queued" and pid:
        raise JobError(f"job {job_id} waits in the queue in another process (pid {pid} on "
                       f"{host or 'this host'}); another process took it")
    raise JobError(f"job {job_id} is {status}; only queued, interrupted or failed jobs can run")


def _take(db_engine: Engine, job_id: int, *, workspace: Path, handed_by: int | None,
          waiting: Callable[[str], None] | None) -> bool:
    """Take job `job_id` to run in this process: the hand-over from the process that started
    it (`handed_by`), or its turn in the queue, waited for here (an interrupted or failed job
    joins the back of the queue first). True once the job is running in this process's name;
    False when another process has it, or it is not runnable (nothing was written then)."""
    from engine.jobs.queue import queue_places

    me, host = os.getpid(), socket.gethostname()
    owner = (me, host)
    if handed_by is not None:
        with session_scope(db_engine) as session:
            if queries.claim_job(session, job_id=job_id, from_statuses=("running",),
                                 status="running", held_by=handed_by, owner=owner):
                return True
    said = ""
    while True:
        with session_scope(db_engine) as session:
            job = queries.get_job(session, job_id=job_id)
        if job is None:
            return False
        if job.status == "running":
            # Handed to this process (a cancel asked meanwhile is run_job's to write).
            return job.pid == me and job.host == host
        if job.cancel_requested:
            return False
        if job.status in ("interrupted", "failed"):
            with session_scope(db_engine) as session:
                won = queries.claim_job(session, job_id=job_id, from_statuses=(job.status,),
                                        status="queued", held_by=job.pid, owner=owner,
                                        queue=host, requeue=True, unless_cancelled=True,
                                        message="queued")
            if not won:
                return False
            continue
        if job.status != "queued":
            return False
        if job.pid != me or job.host != host:
            if _holder_alive(job):
                return False
            with session_scope(db_engine) as session:
                won = queries.claim_job(session, job_id=job_id, from_statuses=("queued",),
                                        status="queued", held_by=job.pid, owner=owner,
                                        queue=host, unless_cancelled=True)
            if not won:
                return False
            continue
        if job_id in start_queued(db_engine, taking=job_id):
            continue
        if waiting is not None:
            with session_scope(db_engine) as session:
                place = queue_places(session, queue=host).get(job_id)
            line = place.describe() if place is not None else "queued"
            if line != said:
                said = line
                waiting(line)
        time.sleep(QUEUE_POLL_S)


def run_job(
    db_engine: Engine,
    job_id: int,
    *,
    workspace: Path,
    progress: Callable[[int, int, str], None] | None = None,
    handed_by: int | None = None,
    waiting: Callable[[str], None] | None = None,
) -> Job:
    """Run a job in this process (what `ddft jobs run ID` does, and the foreground CLI commands).

    The job is taken with one claim in the store, so of any number of processes asked to run it
    exactly one does: handed over by the process that started it (`handed_by`, the pid `ddft
    jobs run --from-pid` names), or waited for here until its turn in this host's queue comes
    (`waiting` is told each change of its place in one line; with only `progress`, that gets
    the line as its message). Sets running → succeeded |
    failed | cancelled | interrupted, with a heartbeat meanwhile. SIGTERM, SIGINT (Ctrl-C) and
    SIGHUP stop it as a cancel does (a training run saves a checkpoint, other kinds stop between
    samples keeping what they stored) and leave it "interrupted", to be resumed; a second signal
    stops it at once, also "interrupted", and is not raised.
    Raises JobError when the job does not exist, is not runnable or another process holds it;
    handler errors are recorded on the row (status failed) and re-raised.
    """
    if waiting is None and progress is not None:
        def waiting(line: str) -> None:
            progress(0, 0, line)
    try:
        won = _take(db_engine, job_id, workspace=workspace, handed_by=handed_by,
                    waiting=waiting)
    except KeyboardInterrupt:
        # Stopped while waiting for its turn: it stays in the queue for another process.
        with session_scope(db_engine) as session:
            queries.claim_job(session, job_id=job_id, from_statuses=("queued",),
                              status="queued", held_by=os.getpid(), owner=(None, ""))
        raise
    if not won:
        return _not_taken(db_engine, job_id)
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        assert job is not None
    context = JobContext(db_engine, job, workspace)
    if job.cancel_requested:
        # Cancelled between leaving the queue and this process taking it: it never starts.
        finished = _finish(context, status="cancelled", error=None, message="cancelled",
                           result=None)
        _start_next(db_engine, workspace)
        return finished
    if progress:
        context.add_progress_listener(progress)
    _open_foreground_log(context)
    heartbeat = _Heartbeat(context)
    heartbeat.start()
    status, error, result = "succeeded", None, None
    with stop_on_signals(context):
        try:
            result = _load_handler(job.kind)(context)
            if context.should_stop():
                status = "cancelled"
        except JobCancelled:
            status = "cancelled"
        except KeyboardInterrupt:
            # A second signal: stopped where it was; what is stored stays, and the last
            # checkpoint (not this moment) is where a resume starts.
            context.stop_signal = context.stop_signal or "SIGINT"
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
            context.finishing = True
            heartbeat.stopped.set()
            heartbeat.join(timeout=5)
            message = {"succeeded": "done", "cancelled": "cancelled"}.get(status, "failed")
            if context.stop_signal is not None and status != "failed":
                status = "interrupted"
                message = (f"stopped by {context.stop_signal}; `ddft jobs resume {job_id}` "
                           "continues it")
                if progress is None:
                    context.log(f"job {job_id} {message}")
            finished = _finish(context, status=status, error=error, message=message,
                               result=result)
            if context.log_file is not None:  # the terminal has the CLI's own last line
                with contextlib.suppress(OSError, ValueError):
                    context.log_file.write(f"job {job_id} {status}: {message}\n")
                context.log_file.close()
                context.log_file = None
            _start_next(db_engine, workspace)
    return finished


def _start_next(db_engine: Engine, workspace: Path) -> None:
    """After a job ends: start what waited for its slot or its success. Never fails the job
    that ended (a store gone or busy leaves the queue to the next command)."""
    try:
        start_queued(db_engine)
    except Exception as exc:  # the job's own status is written; this is only the next one
        with contextlib.suppress(OSError):
            print(redact_secrets(f"could not start the next queued job: {exc}"), flush=True)


def _finish(context: JobContext, *, status: str, error: str | None, message: str,
            result: dict[str, Any] | None) -> Job:
    """Write how the job ended, unless another process took it meanwhile (then its row is
    theirs and this one only says so in the log); returns the row."""
    with session_scope(context.db_engine) as session:
        job = queries.get_job(session, job_id=context.job_id)
        assert job is not None
        if job.pid != os.getpid():
            context.log(f"job {context.job_id} was taken by process {job.pid} on {job.host}; "
                        "this process stopped without writing its status")
            return job
        finished = queries.update_job(
            session, job_id=context.job_id, status=status, error=error, finished_at=utcnow(),
            heartbeat_at=utcnow(), message=message)
        if result:
            finished.result = {**finished.result, **result}
            session.add(finished)
        session.flush()
        session.refresh(finished)
    return finished


def resume_job(db_engine: Engine, job_id: int, *, workspace: Path, detach: bool = True) -> int:
    """Queue an interrupted, failed or cancelled job again, at the back of this host's queue (a
    running job whose process is gone counts as interrupted) and, with `detach`, start it when
    its turn comes; without, this process waits for it (`run_job`). Work already stored is
    skipped by its handler. Queuing it is one claim in the store: of two processes resuming one job, exactly
    one does. Raises JobError when the job is unknown, still active or already succeeded, and
    for the process that loses a race to resume it."""
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
        stored, status, pid = job.status, effective_status(job), job.pid
    if status == "succeeded":
        raise JobError(f"job {job_id} already succeeded; nothing to resume")
    if status not in RESUMABLE:
        raise JobError(f"job {job_id} is {status}; it cannot be resumed")
    host = socket.gethostname()
    with session_scope(db_engine) as session:
        won = queries.claim_job(session, job_id=job_id, from_statuses=(stored,),
                                status="queued", held_by=pid,
                                owner=(None, "") if detach else (os.getpid(), host),
                                message="resumed", clear_cancel=True, requeue=True,
                                queue=host)
        if won:
            queries.update_job(session, job_id=job_id, workspace=str(workspace))
    if not won:
        raise JobError(f"job {job_id} was resumed by another process just now; "
                       f"`ddft jobs show {job_id}` follows it")
    if detach:
        start_queued(db_engine)
    return job_id
