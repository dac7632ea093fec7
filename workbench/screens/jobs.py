"""The Jobs screen: every job with live progress from the store, its detail, and cancel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from workbench.data.jobs import (
    JobDetail,
    JobRow,
    JobsUnavailable,
    load_job_detail,
    load_jobs,
    refresh_job_states,
    request_cancel,
)
from workbench.dialogs.confirm import ConfirmDialog
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.job_detail import JobDetailPane, status_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

POLL_S = 1.0
COLUMNS = (("id", "id"), ("kind", "kind"), ("title", "title"), ("status", "status"),
           ("progress", "step/total"), ("loss", "loss"), ("heartbeat", "heartbeat"),
           ("started", "started"))
NO_JOBS = ("No jobs yet.\n\nStart one from the command line — `ddft train …`, `ddft generate …`, "
           "`ddft judge …` — or build a complete demo with `ddft demo`. Jobs appear here within a "
           "second, wherever they were started.")


def _cell(key: str, value: str) -> str | Text:
    return status_text(value) if key == "status" else value


class JobsScreen(WorkbenchScreen):
    """Jobs polled from the store every second; the table updates in place."""

    SUB_TITLE = "Jobs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_job", "Cancel job", id="jobs.cancel",
                tooltip="Ask the highlighted job to stop (it stops at its next check)"),
        Binding("r", "refresh", "Refresh", id="jobs.refresh"),
    ]

    @dataclass
    class Polled(Message):
        rows: tuple[JobRow, ...]
        detail_for: int | None
        detail: JobDetail | None
        note: str | None

    @dataclass
    class DetailLoaded(Message):
        job_id: int
        detail: JobDetail | None

    @dataclass
    class CancelAnswered(Message):
        job_id: int
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[int, JobRow] = {}
        self._order: list[int] = []
        self._detail: JobDetail | None = None
        self._poll_worker: Worker | None = None
        self._note: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="jobs-body"):
            with Vertical(id="jobs-list"):
                yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
                yield Static("loading…", id="jobs-note")
            with VerticalScroll(id="job-detail-scroll"):
                yield JobDetailPane(id="job-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self._timer = self.set_interval(POLL_S, self.poll, pause=True)

    def on_screen_resume(self) -> None:
        self._timer.resume()
        self.poll()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    # ------------------------------------------------------------------ polling

    @property
    def selected_job_id(self) -> int | None:
        table = self.query_one("#jobs-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    def _chart_width(self) -> int:
        return max(20, self.query_one("#job-detail").size.width - 4)

    def poll(self) -> None:
        # A slow store must not pile up threads: skip a tick while the last poll still runs.
        if self._poll_worker is not None and not self._poll_worker.is_finished:
            return
        self._poll_worker = self._poll(self.engine, self.selected_job_id, self._chart_width())

    @work(thread=True, exit_on_error=False, group="jobs-poll")
    def _poll(self, engine: Engine, selected: int | None, width: int) -> None:
        note = refresh_job_states(engine)
        rows = load_jobs(engine)
        detail = load_job_detail(engine, selected, chart_width=width) if selected is not None else None
        self.post_message(self.Polled(rows, selected, detail, note))

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-detail")
    def _load_detail(self, engine: Engine, job_id: int, width: int) -> None:
        detail = load_job_detail(engine, job_id, chart_width=width)
        if not get_current_worker().is_cancelled:
            self.post_message(self.DetailLoaded(job_id, detail))

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        table = self.query_one("#jobs-table", DataTable)
        order = [row.id for row in message.rows]
        if order != self._order:
            # Jobs were added or removed: rebuild, keeping the cursor on the same job.
            selected = self.selected_job_id
            table.clear()
            for row in message.rows:
                table.add_row(*(_cell(k, v) for (k, _), v in zip(COLUMNS, row.cells())), key=str(row.id))
            self._order = order
            if selected in order:
                table.move_cursor(row=order.index(selected), scroll=False)
        else:
            for row in message.rows:
                old = self._rows.get(row.id)
                if old == row or old is None:
                    continue
                for (key, _), new, before in zip(COLUMNS, row.cells(), old.cells()):
                    if new != before:
                        table.update_cell(str(row.id), key, _cell(key, new))
        self._rows = {row.id: row for row in message.rows}
        self._note = message.note
        active = sum(1 for row in message.rows if row.active)
        note = f"{len(message.rows)} jobs · {active} active · refreshed every {POLL_S:g} s"
        self.query_one("#jobs-note", Static).update(note + (f"\n{message.note}" if message.note else ""))
        if message.detail_for is not None and message.detail_for == self.selected_job_id:
            self._show_detail(message.detail)
        elif not message.rows:
            self._show_detail(None)
        elif message.detail_for != self.selected_job_id and self.selected_job_id is not None:
            self._load_detail(self.engine, self.selected_job_id, self._chart_width())

    @on(DetailLoaded)
    def _detail_loaded(self, message: DetailLoaded) -> None:
        if message.job_id == self.selected_job_id:
            self._show_detail(message.detail)

    def _show_detail(self, detail: JobDetail | None) -> None:
        if detail is not None and detail == self._detail:
            return
        self._detail = detail
        pane = self.query_one("#job-detail", JobDetailPane)
        pane.show(detail, empty=NO_JOBS if not self._rows else "The job is gone from the store.")

    @on(DataTable.RowHighlighted, "#jobs-table")
    def _row_highlighted(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None and (self._detail is None or self._detail.id != job_id):
            self._load_detail(self.engine, job_id, self._chart_width())

    # ------------------------------------------------------------------ cancel

    def action_cancel_job(self) -> None:
        job_id = self.selected_job_id
        row = self._rows.get(job_id) if job_id is not None else None
        if row is None:
            self.app.bell()
            return
        if not row.active:
            self.notify(f"Job {row.id} is {row.status}; there is nothing to cancel.")
            return

        def answered(cancel: bool | None) -> None:
            if cancel:
                self._cancel(self.engine, row.id)

        question = (f"Cancel job {row.id} ({row.kind}: {row.title})?\n\n"
                    "A running job stops at its next check and keeps what it has saved.")
        self.app.push_screen(ConfirmDialog(question, yes="Cancel job", no="Keep running"), answered)

    @work(thread=True, exit_on_error=False, group="jobs-cancel")
    def _cancel(self, engine: Engine, job_id: int) -> None:
        try:
            request_cancel(engine, job_id)
        except (JobsUnavailable, RuntimeError) as exc:  # RuntimeError: engine.jobs.JobError
            self.post_message(self.CancelAnswered(job_id, str(exc)))
        else:
            self.post_message(self.CancelAnswered(job_id, None))

    @on(CancelAnswered)
    def _cancel_answered(self, message: CancelAnswered) -> None:
        if message.error:
            self.notify(message.error, title=f"Job {message.job_id}", severity="error")
        else:
            self.notify(f"Asked job {message.job_id} to stop.", title="Cancel")
        self.poll()

    def action_refresh(self) -> None:
        self.poll()
