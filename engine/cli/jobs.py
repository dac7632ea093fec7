"""`ddft jobs`: list, show, cancel, resume and run background jobs."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.cli.console import (
    WorkspaceOption,
    console,
    fail,
    friendly,
    open_workspace,
    print_output,
    print_table,
)

app = typer.Typer(help="Background jobs: training, generation and judging runs.",
                  no_args_is_help=True)


def _age(when: datetime | None) -> str:
    if when is None:
        return "—"
    from db.models import utcnow

    seconds = int((utcnow() - when).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def iso_utc(when: datetime | None) -> str | None:
    """A store timestamp as ISO 8601 in UTC to the second (`2026-12-03T08:46:47Z`); None for
    none. Naive timestamps are UTC already (SQLite keeps no zone)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) for scripts.")]


def job_json(job, *, status: str, place, loss: float | None = None) -> dict[str, Any]:
    """One job as `ddft jobs list --json` and `show --json` print it; the keys are stable."""
    return {
        "id": job.id, "kind": job.kind, "title": job.title, "status": status,
        "stored_status": job.status, "cancel_requested": bool(job.cancel_requested),
        "step": job.step, "total": job.total, "message": job.message, "error": job.error,
        "loss": loss,
        "queue": {"host": job.queue, "devices": job.devices,
                  "position": place.position if place else None,
                  "after": list(job.after or []),
                  "waits_for": list(place.waits_for) if place else [],
                  "blocked_by": list(place.blocked_by) if place else []},
        "pid": job.pid, "host": job.host or None,
        "created_at": iso_utc(job.created_at), "queued_at": iso_utc(job.queued_at),
        "started_at": iso_utc(job.started_at), "heartbeat_at": iso_utc(job.heartbeat_at),
        "finished_at": iso_utc(job.finished_at),
        "params": job.params, "result": job.result, "log_path": job.log_path or None,
    }


def _status_cell(status: str, place) -> str:
    if status == "queued" and place is not None:
        if place.blocked_by:
            return "queued (blocked)"
        if place.position is not None:
            return f"queued #{place.position}"
    return status


@app.command("list")
@friendly
def list_jobs(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """All jobs, newest first; a running job whose process is gone shows as interrupted, and a
    queued one shows its place in its host's device queue."""
    from db import queries
    from db.store import session_scope
    from engine.jobs import effective_status
    from engine.jobs.queue import queue_places

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        jobs = queries.list_jobs(session)
        places = queue_places(session)
        losses = {job.id: queries.latest_metrics(session, job_id=job.id).get("loss")
                  for job in jobs}
    if as_json:
        print_json({"jobs": [job_json(job, status=effective_status(job),
                                      place=places.get(job.id), loss=losses[job.id])
                             for job in jobs]})
        return
    table = Table("id", "kind", "title", "status", "progress", "loss", "heartbeat", "message")
    for job in jobs:
        loss = losses[job.id]
        place = places.get(job.id)
        message = place.describe() if place is not None else job.message
        table.add_row(
            str(job.id), job.kind, Text(job.title),
            _status_cell(effective_status(job), place),
            f"{job.step}/{job.total}" if job.total else str(job.step),
            "—" if loss is None else f"{loss:.4f}",
            _age(job.heartbeat_at), Text(message),
        )
    if not jobs:
        console.print("no jobs yet: `ddft demo`, `ddft train`, `ddft generate` or `ddft judge` "
                      "start one")
        return
    print_table(table)


@app.command("show")
@friendly
def show_job(job_id: int, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """One job: parameters, status, its place in the queue, progress, metrics, checkpoints and
    the end of its log. Times are ISO 8601 in UTC."""
    from pathlib import Path

    from db import queries
    from db.store import session_scope
    from engine.jobs import effective_status
    from engine.jobs.queue import queue_places
    from engine.jobs.results import describe_result

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            fail(f"no job with id {job_id}")
        metrics = queries.latest_metrics(session, job_id=job_id)
        checkpoints = queries.list_checkpoints(session, job_id=job_id)
        place = queue_places(session).get(job_id)
    status = effective_status(job)
    if as_json:
        data = job_json(job, status=status, place=place, loss=metrics.get("loss"))
        data["metrics"] = metrics
        data["checkpoints"] = [{"step": c.step, "path": c.path, "final": c.final,
                                "created_at": iso_utc(c.created_at)} for c in checkpoints]
        print_json(data)
        return
    console.print(f"[bold]job {job.id}[/] {job.kind} · {escape(job.title)} · "
                  f"[bold]{escape(_status_cell(status, place))}[/]")
    if place is not None:
        console.print(f"queue: {place.describe()} (host {job.queue or '—'}, "
                      f"{job.devices} device slot{'s' if job.devices != 1 else ''})",
                      markup=False, highlight=False)
    console.print(f"progress: {job.step}/{job.total}  message: {job.message}", markup=False)
    console.print(f"pid: {job.pid} on {job.host or '—'}  heartbeat: {_age(job.heartbeat_at)}",
                  markup=False)
    console.print("  ".join(f"{label} {iso_utc(when) or '—'}" for label, when in (
        ("created", job.created_at), ("queued", job.queued_at), ("started", job.started_at),
        ("heartbeat", job.heartbeat_at), ("finished", job.finished_at))),
        markup=False, highlight=False, soft_wrap=True)
    console.print("params: " + json.dumps(job.params, sort_keys=True), markup=False)
    if job.result:
        console.print("result: " + describe_result(job.result), markup=False, highlight=False)
        console.print("result (json): " + json.dumps(job.result, sort_keys=True), markup=False,
                      highlight=False, soft_wrap=True)
    if metrics:
        console.print("latest: " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    for checkpoint in checkpoints:
        console.print(f"checkpoint step {checkpoint.step}{' (final)' if checkpoint.final else ''}:"
                      f" {checkpoint.path}", markup=False)
    if job.error:
        console.print(f"[red]error:[/] {escape(job.error)}")
    if job.log_path and Path(job.log_path).is_file():
        tail = Path(job.log_path).read_text(errors="replace").splitlines()[-15:]
        console.print(f"log ({job.log_path}):", markup=False)
        for line in tail:
            console.print("  " + line, markup=False, highlight=False)


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout, keys sorted."""
    print_output(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@app.command("cancel")
@friendly
def cancel_job(job_id: int, workspace: WorkspaceOption = None) -> None:
    """Ask a job to stop; a training run saves a checkpoint first."""
    from engine.jobs import request_cancel

    _, db_engine = open_workspace(workspace)
    request_cancel(db_engine, job_id)
    console.print(f"cancel requested for job {job_id}")


@app.command("resume")
@friendly
def resume(
    job_id: int,
    workspace: WorkspaceOption = None,
    foreground: Annotated[bool, typer.Option(help="Run here instead of in the background.")] = False,
) -> None:
    """Start an interrupted, failed or cancelled job again; stored work is skipped."""
    from engine.cli.console import run_foreground
    from engine.jobs import resume_job

    path, db_engine = open_workspace(workspace)
    resume_job(db_engine, job_id, workspace=path, detach=not foreground)
    if foreground:
        from engine.jobs.results import describe_result

        job = run_foreground(db_engine, job_id, workspace=path, description=f"job {job_id}")
        console.print(f"job {job_id} {job.status}"
                      + (f": {job.message}" if job.status == "interrupted" else
                         f": {describe_result(job.result)}" if job.result else ""),
                      markup=False, highlight=False)
        if job.status != "succeeded":
            raise typer.Exit(1)
    else:
        console.print(f"job {job_id} resumed in the background (it waits its turn when the "
                      f"device is busy); watch it with `ddft jobs show {job_id}`")


@app.command("slots")
@friendly
def slots(
    count: Annotated[Optional[int], typer.Argument(
        min=1, help="Device jobs that may run at once on a host (default 1).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Show or set how many device jobs (training, generation, grounding, timestamps) run at
    once on a host; the others wait in its queue. One by default; more for a large card or
    several GPUs (a run with --gpus N takes N)."""
    from db import queries
    from db.store import session_scope
    from engine.jobs.queue import SLOTS_SETTING, device_slots

    _, db_engine = open_workspace(workspace)
    if count is not None:
        with session_scope(db_engine, write=True) as session:
            queries.set_setting(session, name=SLOTS_SETTING, value=str(count))
        from engine.jobs import start_queued

        start_queued(db_engine)
    with session_scope(db_engine) as session:
        now = device_slots(session)
    console.print(f"device slots: {now} (device jobs beyond that wait in the queue)")


@app.command("run", hidden=True)
def run(
    job_id: int,
    workspace: WorkspaceOption = None,
    from_pid: Annotated[Optional[int], typer.Option(
        "--from-pid", help="The process that took the job from the queue for this one.")] = None,
) -> None:
    """Run a queued job in this process (what a detached job's process executes)."""
    from engine.jobs import run_job

    path, db_engine = open_workspace(workspace)
    try:
        job = run_job(db_engine, job_id, workspace=path, handed_by=from_pid)
    except Exception as exc:
        print(f"job {job_id} failed: {exc}", flush=True)
        raise typer.Exit(1) from None
    print(f"job {job_id} {job.status}", flush=True)
