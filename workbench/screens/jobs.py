"""The Jobs screen — every job with live progress from the store, its detail, and cancel — and
`JobTableScreen`, the polled jobs table it shares with the Runs screen."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from db.errors import UserError
from engine.evaluation.words import plural
from workbench.data.jobs import (
    JobDetail,
    JobRow,
    JobsUnavailable,
    load_job_detail,
    load_jobs,
    refresh_job_states,
    request_cancel,
    resume_job,
    start_queue,
)
from workbench.dialogs.confirm import ConfirmDialog
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.job_detail import JobDetailPane
from workbench.widgets.jobs_table import Column, JobsTable, columns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

POLL_S = 1.0
# What engine.jobs raises for a job it refuses (JobError) or cannot start (OSError), besides
# JobsUnavailable when it is not importable.
ACTION_ERRORS = (JobsUnavailable, UserError, RuntimeError, OSError)



# How a notice says what a job's status means ("Job 3 has succeeded", not "is succeeded").
_STATUS_PHRASES = {"succeeded": "has succeeded", "failed": "has failed",
                   "cancelled": "was cancelled", "interrupted": "was interrupted"}


def status_phrase(status: str) -> str:
    return _STATUS_PHRASES.get(status, f"is {status}")



def _system_clock() -> datetime:
    return datetime.now(timezone.utc)

class JobTableScreen(WorkbenchScreen):
    """Jobs polled from the store every second into one JobsTable, updated in place, with the
    selected job's detail, cancel and resume. A subclass names the kind it lists (None: all),
    its columns, its detail panes and its words."""

    KIND: ClassVar[str | None] = None
    NAME: ClassVar[str] = "jobs"  # ids #NAME-table and #NAME-note, and the worker groups
    NOUN: ClassVar[str] = "job"
    EMPTY: ClassVar[str] = ""  # the detail when there are no jobs at all
    ASKED_TO_STOP: ClassVar[str] = "Asked job {id} to stop."

    @dataclass
    class Polled(Message):
        rows: tuple[JobRow, ...]
        polled_at: datetime
        detail_for: int | None
        detail: Any
        note: str | None

    @dataclass
    class DetailLoaded(Message):
        job_id: int
        detail: Any

    @dataclass
    class ActionAnswered(Message):
        job_id: int
        action: str  # cancel | resume
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self._detail: Any = None
        self._shown: tuple[Any, Hashable] | None = None
        self._poll_worker: Worker | None = None
        self._poll_again = False
        self._select_after: int | None = None

    # ------------------------------------------------------------------ what a subclass says

    def table_columns(self) -> tuple[Column, ...]:
        raise NotImplementedError

    def detail_loader(self) -> Callable[[Engine, int], Any]:
        """What loads the selected job's detail in a worker; called on the UI thread, so it may
        capture widget state (a width, a mark)."""
        raise NotImplementedError

    def show_detail(self, detail: Any, *, empty: str) -> None:
        raise NotImplementedError

    def detail_state(self) -> Hashable:
        """Screen state besides the detail that changes what the panes show."""
        return None

    def note_text(self, rows: tuple[JobRow, ...]) -> str:
        active = sum(1 for row in rows if row.active)
        queued = sum(1 for row in rows if row.status == "queued")
        return (f"{plural(len(rows), self.NOUN)} · {active} active ({queued} queued) · refreshed "
                f"every {POLL_S:g} s")

    def cancel_question(self, row: JobRow) -> str:
        return (f"Cancel job {row.id} ({row.kind}: {row.title})?\n\n"
                "A running job stops at its next check and keeps what it has saved.")

    def resume_question(self, row: JobRow) -> str:
        return (f"Resume job {row.id} ({row.kind}: {row.title}, {row.status})?\n\n"
                "It starts again in the background and skips what it already stored.")

    # ------------------------------------------------------------------ the table

    def jobs_table(self) -> JobsTable:
        return JobsTable(self.table_columns(), id=f"{self.NAME}-table")

    @property
    def table(self) -> JobsTable:
        return self.query_one(f"#{self.NAME}-table", JobsTable)

    @property
    def selected_job_id(self) -> int | None:
        return self.table.selected_id

    def on_mount(self) -> None:
        self.table.focus()
        self._timer = self.set_interval(POLL_S, self.poll, pause=True)

    def on_screen_resume(self) -> None:
        self._timer.resume()
        self.poll()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    def select_job(self, job_id: int) -> None:
        """Put the cursor on job `job_id` as soon as it is in the table."""
        self._select_after = job_id
        self.poll()

    # ------------------------------------------------------------------ polling

    def poll(self) -> None:
        # A slow store must not pile up threads: while the last poll runs, only note that the
        # store changed (a cancel, a new run), so that one more poll follows it.
        if self._poll_worker is not None and not self._poll_worker.is_finished:
            self._poll_again = True
            return
        self._poll_again = False
        work = partial(self._poll, self.db_engine, self.KIND, self.selected_job_id,
                       self.detail_loader(), getattr(self.app, "clock", _system_clock))
        self._poll_worker = self.run_worker(work, thread=True, exit_on_error=False,
                                            group=f"{self.NAME}-poll")

    def _poll(self, db_engine: Engine, kind: str | None, selected: int | None,
              load_detail: Callable[[Engine, int], Any], clock: Callable[[], datetime]) -> None:
        note = refresh_job_states(db_engine)
        start_queue(db_engine)
        polled_at = clock()
        rows = load_jobs(db_engine, kind=kind)
        detail = load_detail(db_engine, selected) if selected is not None else None
        self.post_message(self.Polled(rows, polled_at, selected, detail, note))

    @on(Worker.StateChanged)
    def _poll_ended(self, event: Worker.StateChanged) -> None:
        if event.worker is self._poll_worker and event.worker.is_finished and self._poll_again:
            self.poll()

    def reload_detail(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            work = partial(self._load_detail, self.db_engine, job_id, self.detail_loader())
            self.run_worker(work, thread=True, exclusive=True, exit_on_error=False,
                            group=f"{self.NAME}-detail")

    def _load_detail(self, db_engine: Engine, job_id: int, load_detail: Callable[[Engine, int], Any]) -> None:
        detail = load_detail(db_engine, job_id)
        if not get_current_worker().is_cancelled:
            self.post_message(self.DetailLoaded(job_id, detail))

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        table = self.table
        table.show(message.rows, message.polled_at)
        self.rows_shown()
        note = self.note_text(message.rows)
        self.query_one(f"#{self.NAME}-note", Static).update(
            Text(note + (f"\n{message.note}" if message.note else "")))
        if self._select_after is not None and table.select(self._select_after):
            self._select_after = None
            self.reload_detail()
            return
        selected = self.selected_job_id
        if message.detail_for is not None and message.detail_for == selected:
            self._show(message.detail)
        elif not message.rows:
            self._show(None)
        elif message.detail_for != selected and selected is not None:
            self.reload_detail()

    def rows_shown(self) -> None:
        """Called after each poll reached the table."""

    @on(DetailLoaded)
    def _detail_loaded(self, message: DetailLoaded) -> None:
        if message.job_id == self.selected_job_id:
            self._show(message.detail)

    def _show(self, detail: Any) -> None:
        shown = (detail, self.detail_state())
        if detail is not None and shown == self._shown:
            return
        self._detail, self._shown = detail, shown
        empty = self.EMPTY if not self.table.jobs else f"The {self.NOUN} is gone from the store."
        self.show_detail(detail, empty=empty)

    def refresh_detail(self) -> None:
        """Draw the shown detail again after `detail_state` changed."""
        self._show(self._detail)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is not self.table:
            return
        job_id = self.selected_job_id
        if job_id is not None and (self._detail is None or self._detail.id != job_id):
            self.reload_detail()

    # ------------------------------------------------------------------ cancel, resume

    def action_cancel(self) -> None:
        row = self.table.selected
        if row is None:
            self.app.bell()
            return
        noun = self.NOUN.capitalize()
        if row.cancel_pending:
            self.notify(f"{noun} {row.id} was already asked to stop; it stops at its next check.")
            return
        if not row.active:
            self.notify(f"{noun} {row.id} {status_phrase(row.status)}; there is nothing to cancel.")
            return

        def answered(cancel: bool | None) -> None:
            if cancel:
                self._act(row.id, "cancel")

        self.app.push_screen(
            ConfirmDialog(self.cancel_question(row), yes=f"Cancel {self.NOUN}", no="Keep running"),
            answered)

    def action_resume(self) -> None:
        row = self.table.selected
        if row is None:
            self.app.bell()
            return
        if not row.resumable:
            self.notify(f"{self.NOUN.capitalize()} {row.id} {status_phrase(row.status)}; only interrupted, "
                        f"failed or cancelled {self.NOUN}s resume.")
            return
        workspace: Path | None = getattr(self.app, "workspace", None)
        if workspace is None:
            self.notify("The workbench was opened without a workspace; resume from a shell with "
                        f"`ddft jobs resume {row.id}`.", severity="error")
            return

        def answered(resume: bool | None) -> None:
            if resume:
                self._act(row.id, "resume", workspace)

        self.app.push_screen(ConfirmDialog(self.resume_question(row), yes="Resume", no="Not now"),
                             answered)

    def _act(self, job_id: int, action: str, workspace: Path | None = None) -> None:
        self.run_worker(partial(self._act_work, self.db_engine, job_id, action, workspace),
                        thread=True, exit_on_error=False, group=f"{self.NAME}-action")

    def _act_work(self, db_engine: Engine, job_id: int, action: str, workspace: Path | None) -> None:
        try:
            if action == "cancel":
                request_cancel(db_engine, job_id)
            else:
                assert workspace is not None
                resume_job(db_engine, job_id, workspace=workspace)
        except ACTION_ERRORS as exc:
            self.post_message(self.ActionAnswered(job_id, action, str(exc)))
        else:
            self.post_message(self.ActionAnswered(job_id, action, None))

    @on(ActionAnswered)
    def _action_answered(self, message: ActionAnswered) -> None:
        noun = self.NOUN.capitalize()
        if message.error:
            self.notify(message.error, title=f"{noun} {message.job_id}", severity="error",
                        markup=False)
        elif message.action == "cancel":
            self.notify(self.ASKED_TO_STOP.format(id=message.job_id), title="Cancel")
        else:
            self.notify(f"{noun} {message.job_id} resumed in the background.", title="Resume")
        self.poll()


# By priority, for a narrow terminal (80 columns): what a job is and where it stands first; its
# title (often long) after them, the rest when there is room.
JOB_COLUMNS = (("id", "id"), ("kind", "kind"), ("status", "status"), ("progress", "step/total"),
               ("title", "title"), ("loss", "loss"), ("heartbeat", "heartbeat"),
               ("started", "started"))
NO_JOBS = ("No jobs yet.\n\nStart one from the command line — `ddft train …`, `ddft generate …`, "
           "`ddft judge …` — or build a complete demo with `ddft demo`. Jobs appear here within a "
           "second, wherever they were started.")


class JobsScreen(JobTableScreen):
    """Every job, polled from the store every second; the table updates in place."""

    SUB_TITLE = "Jobs"
    EMPTY = NO_JOBS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel job", id="jobs.cancel",
                tooltip="Ask the highlighted job to stop (it stops at its next check)"),
        Binding("r", "refresh", "Refresh", id="jobs.refresh"),
    ]

    def table_columns(self) -> tuple[Column, ...]:
        return columns(*JOB_COLUMNS)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="jobs-body"):
            with Vertical(id="jobs-list"):
                yield self.jobs_table()
                yield Static("loading…", id="jobs-note")
            with VerticalScroll(id="job-detail-scroll"):
                yield JobDetailPane(id="job-detail")
        yield Footer()

    def detail_loader(self) -> Callable[[Engine, int], JobDetail | None]:
        return load_job_detail

    def detail_state(self) -> Hashable:
        return self.query_one("#job-detail").size.width  # the loss sparkline fits the pane

    def show_detail(self, detail: JobDetail | None, *, empty: str) -> None:
        self.query_one("#job-detail", JobDetailPane).show(detail, empty=empty)

    def action_refresh(self) -> None:
        self.poll()
