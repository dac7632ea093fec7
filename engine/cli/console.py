"""Pieces every command shares: the workspace option, opening the store, errors for people,
output for scripts, and submitting a job to run detached or in the foreground with progress."""

from __future__ import annotations

import functools
import inspect
import os
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from db.errors import UserError

console = Console()
err_console = Console(stderr=True)


def print_table(table: Any, out: Console | None = None) -> None:
    """Print a Rich table: fitted to a terminal's width; into a pipe or a file (`ddft jobs list |
    grep failed`, a CI log) at its full width, never cut to the 80 columns Rich assumes there.
    $COLUMNS, when set, still decides."""
    out = out or console
    if out.is_terminal or "COLUMNS" in os.environ:
        out.print(table)
        return
    from rich.measure import Measurement

    natural = Measurement.get(out, out.options.update(width=10_000), table).maximum
    # Console.print never draws wider than its console: a console of the table's width, on the
    # same stream.
    Console(file=out.file, width=max(out.width, natural), color_system=None).print(table)

WORKSPACE_VARIABLE = "DDFT_WORKSPACE"
WorkspaceOption = Annotated[
    Optional[Path],
    typer.Option(
        "--workspace",
        "-w",
        envvar=WORKSPACE_VARIABLE,
        help="Workspace folder (default: ./workspace). The store is the workspace's ddft.db, "
             "or the database $DDFT_DB_URL names when it is set.",
        show_default=False,
    ),
]


def _flags_take_no_value() -> None:
    """typer's rich help prints every option's value type in a column, flags included, so
    `--detach <bool>` reads as if it took a value (and `--help` shows `<bool>` too). A flag
    takes none: its type is left out, as click's plain help does."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_ddft_flags", False):
        return

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return shown(self, ctx)

    display_type_rich._ddft_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

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


def help_text(doc: str | None) -> str | None:
    """A command's docstring as its `--help` shows it: each paragraph on one line, so the
    terminal wraps it at its own width. typer joins the lines of the first paragraph only; a
    later paragraph, and the first one in a command list, would keep the source's line breaks
    and break mid-sentence."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in paragraph.splitlines())
                       for paragraph in paragraphs)


def friendly(command: F) -> F:
    """Turn a user mistake (any db.errors.UserError) into one red line and exit status 1,
    never a traceback. The command's help is its docstring with each paragraph unwrapped
    (`help_text`)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))

    wrapper.__doc__ = help_text(command.__doc__)
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


def print_json(obj: Any) -> None:
    """Print `obj` as JSON on stdout for scripts (`--json`): indented, text as written (not
    escaped to ASCII), dates and paths as strings; never markup, never wrapped."""
    import json

    print_output(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def open_workspace(workspace: Path | None, *, create: bool = False):
    """(workspace path, store engine) for a command. Only a command that makes things passes
    `create`: it makes a missing store and says so in one line; every other command ends with
    db.store.StoreError "no store at PATH" instead of leaving an empty store behind."""
    from db.store import open_store, resolve_workspace

    path = resolve_workspace(workspace)
    return path, open_store(path, create=create, announce=lambda line: console.print(
        line, markup=False, highlight=False))


# How often output that is not a terminal gets a progress line.
PROGRESS_LINE_SECONDS = 10.0


class ProgressLines:
    """Progress for output that is not a terminal (a pipe, `| tee`, CI, `make demo
    ARGS=--no-tui`), where a bar would show nothing until the end: a line when a task starts,
    then at most one every `every` seconds (step of total, the task's message, such as a
    training run's loss, and the time left at the rate so far), and a last one when it ends.
    The same small interface as rich's Progress (`add_task`, `update`, a context manager)."""

    def __init__(self, out: Console, *, every: float = PROGRESS_LINE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.every, self.clock = out, every, clock
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> "ProgressLines":
        return self

    def __exit__(self, *exc: Any) -> None:
        for task in self.tasks.values():
            if task["printed_at"] is not None and task["shown"] != self._state(task):
                self._print(task)

    def add_task(self, description: str, total: int | None = None, message: str = "") -> int:
        now = self.clock()
        task_id = len(self.tasks)
        self.tasks[task_id] = {"description": description, "total": total, "completed": 0,
                               "message": message, "started": now, "first": None,
                               "printed_at": None, "shown": None}
        # Loading a model can take minutes before the first step: say at once that it began.
        self.out.print(f"{description}: started", markup=False, highlight=False,
                       soft_wrap=True)
        return task_id

    def update(self, task_id: int, *, completed: int | None = None, total: int | None = None,
               message: str | None = None, **_: Any) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            if task["first"] is None:
                task["first"] = (completed, self.clock())
            task["completed"] = completed
        if total is not None:
            task["total"] = total
        if message is not None:
            task["message"] = message
        if task["printed_at"] is None or self.clock() - task["printed_at"] >= self.every:
            self._print(task)

    @staticmethod
    def _state(task: dict[str, Any]) -> tuple:
        return task["completed"], task["total"], task["message"]

    def line(self, task: dict[str, Any]) -> str:
        """`generate tiny-ddft on kitchen-eval: 6/12 · tiny-ddft: sample 7 · 0:00:42 left`."""
        done, total = task["completed"], task["total"]
        parts = [f"{done}/{total}" if total else f"{done}"]
        if task["message"]:
            parts.append(str(task["message"]))
        first = task["first"]
        if total and first is not None and done > first[0] and done < total:
            rate = (done - first[0]) / max(self.clock() - first[1], 1e-9)
            left = int((total - done) / rate)
            parts.append(f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left")
        return f"{task['description']}: " + " · ".join(parts)

    def _print(self, task: dict[str, Any]) -> None:
        task["printed_at"] = self.clock()
        task["shown"] = self._state(task)
        # Names, paths and messages are user text: printed literally.
        self.out.print(self.line(task), markup=False, highlight=False, soft_wrap=True)


def progress_bar(out: Console | None = None) -> Progress | ProgressLines:
    """A progress bar on a terminal; elsewhere (a pipe, a file, CI) `ProgressLines`, which
    prints a line every PROGRESS_LINE_SECONDS instead of nothing until the end."""
    target = out or console
    if not target.is_terminal:
        return ProgressLines(target)
    # The description (a job's title) and the message (a sample id, a file) are user text:
    # shown literally, never parsed as markup.
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        TimeRemainingColumn(),
        console=target,
        transient=False,
    )


def run_foreground(db_engine, job_id: int, *, workspace: Path, description: str,
                   out: Console | None = None):
    """Run a job in this process with a progress bar (progress lines when the output is not a
    terminal: `progress_bar`); returns the finished Job row (Ctrl-C stops it as a cancel does
    and leaves it "interrupted"). Raises what engine.jobs.run_job raises; a Ctrl-C before the
    job has started ends the command with one line."""
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

        from engine.jobs.queue import queue_places

        with session_scope(db_engine) as session:
            job = queries.get_job(session, job_id=job_id)
            place = queue_places(session).get(job_id) if job.status == "queued" else None
            pid = job.pid
        if place is not None:
            # Waiting for the device: it starts by itself when its turn comes.
            console.print(f"job {job_id} queued: {place.describe()}; it starts by itself, "
                          f"`ddft jobs show {job_id}` follows it", markup=False, highlight=False)
        else:
            console.print(f"job {job_id} started in the background (pid {pid}); "
                          f"`ddft jobs show {job_id}` follows it", markup=False, highlight=False)
        return None
    from engine.jobs.results import describe_result

    job = run_foreground(db_engine, job_id, workspace=workspace, description=request.title())
    if job.status == "interrupted":  # Ctrl-C, or a signal: one line, never a traceback
        console.print(f"job {job_id} interrupted: {job.message}", markup=False, highlight=False)
        raise typer.Exit(130)
    console.print(f"job {job_id} {job.status}: {describe_result(job.result)}", markup=False,
                  highlight=False)
    if job.status != "succeeded":
        raise typer.Exit(1)
    return job


