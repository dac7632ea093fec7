"""Pieces every command shares: the workspace option, opening the store, errors for people,
and running a job in the foreground behind a progress bar."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user asked for something that cannot be done as asked."""
    from db.campaigns import CampaignError
    from db.store import StoreError
    from engine.importers.kitchen import KitchenImportError
    from engine.jobs import JobError
    from engine.media import MediaError

    errors: list[type[BaseException]] = [StoreError, JobError, MediaError, KitchenImportError,
                                         CampaignError]
    try:  # the model layer pulls no torch at import time
        from engine.model.loading import ModelLoadError

        errors.append(ModelLoadError)
    except ImportError:
        pass
    return tuple(errors)


def friendly(command: F) -> F:
    """Turn a user mistake into one red line and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except user_errors() as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def open_workspace(workspace: Path | None):
    """(workspace path, store engine) for a command."""
    from db.store import open_store, resolve_workspace

    path = resolve_workspace(workspace)
    return path, open_store(path)


def progress_bar(out: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[message]}"),
        TimeRemainingColumn(),
        console=out or console,
        transient=False,
    )


def run_foreground(engine, job_id: int, *, workspace: Path, description: str,
                   out: Console | None = None):
    """Run a job in this process with a progress bar; returns the finished Job row."""
    from engine.jobs import run_job

    with progress_bar(out) as bar:
        task = bar.add_task(description, total=None, message="")

        def update(step: int, total: int, message: str) -> None:
            bar.update(task, completed=step, total=total or None, message=message or "")

        return run_job(engine, job_id, workspace=workspace, progress=update)
