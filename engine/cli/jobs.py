"""`ddft jobs`: list, show, cancel, resume and run background jobs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.cli.console import WorkspaceOption, console, fail, friendly, open_workspace

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


@app.command("list")
@friendly
def list_jobs(workspace: WorkspaceOption = None) -> None:
    """All jobs, newest first; a running job whose process is gone shows as interrupted."""
    from db import queries
    from db.store import session_scope
    from engine.jobs import effective_status

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        jobs = queries.list_jobs(session)
        table = Table("id", "kind", "title", "status", "progress", "loss", "heartbeat", "message")
        for job in jobs:
            loss = queries.latest_metrics(session, job_id=job.id).get("loss")
            table.add_row(
                str(job.id), job.kind, Text(job.title), effective_status(job),
                f"{job.step}/{job.total}" if job.total else str(job.step),
                "—" if loss is None else f"{loss:.4f}",
                _age(job.heartbeat_at), Text(job.message),
            )
    if not jobs:
        console.print("no jobs yet: `ddft demo`, `ddft train`, `ddft generate` or `ddft judge` "
                      "start one")
        return
    console.print(table)


@app.command("show")
@friendly
def show_job(job_id: int, workspace: WorkspaceOption = None) -> None:
    """One job: parameters, status, progress, metrics, checkpoints and the end of its log."""
    from pathlib import Path

    from db import queries
    from db.store import session_scope
    from engine.jobs import effective_status

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            fail(f"no job with id {job_id}")
        metrics = queries.latest_metrics(session, job_id=job_id)
        checkpoints = queries.list_checkpoints(session, job_id=job_id)
    console.print(f"[bold]job {job.id}[/] {job.kind} · {escape(job.title)} · "
                  f"[bold]{effective_status(job)}[/]")
    console.print(f"progress: {job.step}/{job.total}  message: {job.message}", markup=False)
    console.print(f"pid: {job.pid} on {job.host or '—'}  heartbeat: {_age(job.heartbeat_at)}",
                  markup=False)
    console.print(f"created {job.created_at:%Y-%m-%d %H:%M:%S}  started "
                  f"{job.started_at or '—'}  finished {job.finished_at or '—'}")
    console.print("params: " + json.dumps(job.params, sort_keys=True), markup=False)
    if job.result:
        console.print("result: " + json.dumps(job.result, sort_keys=True), markup=False)
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
        job = run_foreground(db_engine, job_id, workspace=path, description=f"job {job_id}")
        console.print(f"job {job_id} {job.status}"
                      + (f": {job.message}" if job.status == "interrupted" else ""),
                      markup=False, highlight=False)
        if job.status != "succeeded":
            raise typer.Exit(1)
    else:
        console.print(f"job {job_id} resumed in the background; watch it with "
                      f"`ddft jobs show {job_id}`")


@app.command("run", hidden=True)
def run(job_id: int, workspace: WorkspaceOption = None) -> None:
    """Run a queued job in this process (what a detached job's process executes)."""
    from engine.jobs import run_job

    path, db_engine = open_workspace(workspace)
    try:
        job = run_job(db_engine, job_id, workspace=path)
    except Exception as exc:
        print(f"job {job_id} failed: {exc}", flush=True)
        raise typer.Exit(1) from None
    print(f"job {job_id} {job.status}", flush=True)
