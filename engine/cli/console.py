"""Pieces every command shares: the workspace option, opening the store, errors for people,
and submitting a job to run detached or in the foreground behind a progress bar."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from db.errors import UserError

console = Console()
err_console = Console(stderr=True)

WorkspaceOption = Annotated[
    Optional[Path],
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: $DDFT_WORKSPACE or ./workspace).",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def checked_name(kind: str) -> Callable[[Optional[str]], Optional[str]]:
    """A typer callback for an option or argument that names a new `kind` ("variant",
    "dataset", "campaign"): the name without surrounding blanks, or a usage error (exit 2) with
    db.names.check_name's one line."""

    def check(value: Optional[str]) -> Optional[str]:
        from db.names import check_name

        if value is None:
            return None
        problem = check_name(kind, value.strip())
        if problem is not None:
            raise typer.BadParameter(problem)
        return value.strip()

    return check


def friendly(command: F) -> F:
    """Turn a user mistake (any db.errors.UserError) into one red line and exit status 1,
    never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print `message` as one red line (literally: a `[/]` in a name is not markup) and end
    the command with exit status 1."""
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1) from None


def write_output(path: Path, text: str) -> None:
    """Write a command's output file through engine.export.write_output_file (no half file, never
    through a link, straight into a pipe or device); a path that cannot be written ends the
    command with one line naming it."""
    from engine.export import OutputError, write_output_file

    try:
        write_output_file(path, text)
    except OutputError as exc:
        fail(str(exc))


def print_output(text: str) -> None:
    """Print a command's output to stdout; a full disk or closed pipe is one line, not a
    traceback."""
    import sys

    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise typer.Exit(1) from None
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] cannot write the output: "
                          f"{escape(str(exc.strerror or exc))}")
        raise typer.Exit(1) from None


def open_workspace(workspace: Path | None, *, create: bool = False):
    """(workspace path, store engine) for a command. Only a command that makes things passes
    `create`: it makes a missing store and says so in one line; every other command ends with
    db.store.StoreError "no store at PATH" instead of leaving an empty store behind."""
    from db.store import open_store, resolve_workspace

    path = resolve_workspace(workspace)
    return path, open_store(path, create=create, announce=lambda line: console.print(
        line, markup=False, highlight=False))


def progress_bar(out: Console | None = None) -> Progress:
    # The description (a job's title) and the message (a sample id, a file) are user text:
    # shown literally, never parsed as markup.
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        TimeRemainingColumn(),
        console=out or console,
        transient=False,
    )


def run_foreground(db_engine, job_id: int, *, workspace: Path, description: str,
                   out: Console | None = None):
    """Run a job in this process with a progress bar; returns the finished Job row (Ctrl-C
    stops it as a cancel does and leaves it "interrupted"). Raises what engine.jobs.run_job
    raises; a Ctrl-C before the job has started ends the command with one line."""
    from engine.jobs import run_job

    try:
        with progress_bar(out) as bar:
            task = bar.add_task(description, total=None, message="")

            def update(step: int, total: int, message: str) -> None:
                bar.update(task, completed=step, total=total or None, message=message or "")

            return run_job(db_engine, job_id, workspace=workspace, progress=update)
    except KeyboardInterrupt:
        err_console.print(f"job {job_id} stopped by Ctrl-C before it started; "
                          f"`ddft jobs resume {job_id}` runs it", markup=False, highlight=False)
        raise typer.Exit(130) from None


def launch(db_engine, workspace: Path, request: Any, *, detach: bool):
    """Submit `request` (an engine.jobs request); with `detach` start it in the background and
    say how to follow it, else run it here behind a progress bar and print its result.
    Returns the finished Job row, or None when detached. Raises engine.jobs.JobError (a
    UserError) listing the request's problems before any job exists; ends the command with
    status 1 when the job does not succeed."""
    from engine.jobs import submit

    job_id = submit(db_engine, request, workspace=workspace, detach=detach)
    if detach:
        from db import queries
        from db.store import session_scope

        with session_scope(db_engine) as session:
            pid = queries.get_job(session, job_id=job_id).pid
        console.print(f"job {job_id} started in the background (pid {pid}); "
                      f"`ddft jobs show {job_id}` follows it")
        return None
    job = run_foreground(db_engine, job_id, workspace=workspace, description=request.title())
    if job.status == "interrupted":  # Ctrl-C, or a signal: one line, never a traceback
        console.print(f"job {job_id} interrupted: {job.message}", markup=False, highlight=False)
        raise typer.Exit(130)
    console.print(f"job {job_id} {job.status}: {job.result}", markup=False, highlight=False)
    if job.status != "succeeded":
        raise typer.Exit(1)
    return job
