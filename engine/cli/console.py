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


def write_output(path: Path, text: str) -> None:
    """Write a command's output file: a regular file (new or replaced) through a temporary file
    beside it, so a failure leaves no half file, with the mode an ordinary write would give;
    through a symbolic link to its target; straight into a pipe or device. A path that cannot
    be written ends the command with one line naming it."""
    import os
    import stat
    import tempfile

    path = path.expanduser()
    target = path.resolve() if path.is_symlink() else path
    try:
        if target.exists() and not target.is_file():
            if target.is_dir():
                fail(f"{path} is a folder; give a file name")
            if stat.S_ISCHR(target.stat().st_mode) or stat.S_ISFIFO(target.stat().st_mode):
                with open(target, "w", encoding="utf-8", newline="") as out:
                    out.write(text)
                return
            fail(f"cannot write {path}: not a regular file")
        if not target.parent.is_dir():
            fail(f"cannot write {path}: no folder {target.parent}")
        if target.exists():
            mode = stat.S_IMODE(target.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


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
        err_console.print(f"[bold red]error:[/] cannot write the output: {exc.strerror or exc}")
        raise typer.Exit(1) from None


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
