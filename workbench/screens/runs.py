"""The Runs screen: every training run with progress and ETA, the selected run's curves, checkpoints and
log, a second run's loss overlaid, and new run, cancel and resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from workbench.data.curves import Chart, Curve, render_run_charts
from workbench.data.jobs import JobsUnavailable, refresh_job_states, request_cancel
from workbench.data.runs import (
    Overlay,
    RunDetail,
    RunRow,
    load_run_detail,
    load_runs,
    resume_run,
)
from workbench.dialogs.confirm import ConfirmDialog
from workbench.dialogs.new_run import NewRunDialog
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.job_detail import status_text
from workbench.widgets.run_detail import RunChart, RunFiles, RunSummary

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

POLL_S = 1.0
COLUMNS = (("mark", "◆"), ("id", "id"), ("variant", "variant"), ("status", "status"),
           ("progress", "step/total"), ("eta", "ETA"), ("loss", "loss"), ("samples_per_s", "samples/s"),
           ("tokens_per_s", "tokens/s"), ("gpu_memory", "GPU mem"), ("started", "started"))
MARK = Text("◆", style="bold magenta")
NO_RUNS = ("No training runs yet.\n\nPress n for the New run form: pick a base model, preset and "
           "datasets, and it starts `ddft train …` as a background job that keeps going when you "
           "close the laptop. Runs started from a shell (`ddft train …`, `ddft demo`) appear here "
           "too, within a second.")


def _cell(key: str, value: str) -> str | Text:
    return status_text(value) if key == "status" else value


@dataclass(frozen=True)
class RunView:
    """What the detail panes show: the run, the run overlaid on it, and both charts."""

    run: RunDetail
    overlay: Overlay | None
    charts: tuple[Chart, Chart]


def load_run_view(engine: Engine, job_id: int, *, overlay_id: int | None, width: int) -> RunView | None:
    run, overlay = load_run_detail(engine, job_id, overlay_id=overlay_id)
    if run is None:
        return None
    charts = render_run_charts(
        label=run.label, loss=run.loss, lr=run.lr, projector_lr=run.projector_lr,
        overlay=Curve(overlay.label, overlay.loss) if overlay is not None else None, width=width)
    return RunView(run, overlay, charts)


class RunsScreen(WorkbenchScreen):
    """Training runs polled from the store every second; the table updates in place."""

    SUB_TITLE = "Runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_run", "New run", id="runs.new",
                tooltip="Open the New run form: it shows and starts the `ddft train …` command"),
        Binding("o", "mark_overlay", "Overlay", id="runs.overlay",
                tooltip="Mark the highlighted run; other runs then show its loss curve over theirs"),
        Binding("c", "cancel_run", "Cancel run", id="runs.cancel",
                tooltip="Ask the highlighted run to save a checkpoint and stop"),
        Binding("r", "resume_run", "Resume", id="runs.resume",
                tooltip="Start an interrupted, failed or cancelled run again from its last checkpoint"),
    ]

    @dataclass
    class Polled(Message):
        rows: tuple[RunRow, ...]
        view_for: int | None
        view: RunView | None
        note: str | None

    @dataclass
    class ViewLoaded(Message):
        job_id: int
        view: RunView | None

    @dataclass
    class ActionAnswered(Message):
        job_id: int
        action: str  # cancel | resume
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[int, RunRow] = {}
        self._order: list[int] = []
        self._view: RunView | None = None
        self._shown: tuple[RunView | None, int | None] | None = None
        self._poll_worker: Worker | None = None
        self._marked: int | None = None
        self._select_after: int | None = None
        self._poll_again = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="runs-body"):
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static("loading…", id="runs-note")
            with Horizontal(id="run-detail"):
                with VerticalScroll(id="run-main"):
                    yield RunSummary(id="run-summary")
                    yield RunChart(id="run-loss", empty="no loss logged yet")
                    yield RunChart(id="run-lr", empty="no learning rate logged yet")
                with VerticalScroll(id="run-files-scroll"):
                    yield RunFiles(id="run-files")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
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
    def selected_run_id(self) -> int | None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    def _chart_width(self) -> int:
        return max(30, self.query_one("#run-main").size.width - 3)

    def poll(self) -> None:
        # A slow store must not pile up threads: while the last poll runs, only note that the
        # store changed (a cancel, a new run), so that one more poll follows it.
        if self._poll_worker is not None and not self._poll_worker.is_finished:
            self._poll_again = True
            return
        self._poll_again = False
        self._poll_worker = self._poll(self.engine, self.selected_run_id, self._marked, self._chart_width())

    @work(thread=True, exit_on_error=False, group="runs-poll")
    def _poll(self, engine: Engine, selected: int | None, marked: int | None, width: int) -> None:
        note = refresh_job_states(engine)
        rows = load_runs(engine)
        view = load_run_view(engine, selected, overlay_id=marked, width=width) if selected is not None else None
        self.post_message(self.Polled(rows, selected, view, note))

    def _reload_view(self) -> None:
        job_id = self.selected_run_id
        if job_id is not None:
            self._load_view(self.engine, job_id, self._marked, self._chart_width())

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-detail")
    def _load_view(self, engine: Engine, job_id: int, marked: int | None, width: int) -> None:
        view = load_run_view(engine, job_id, overlay_id=marked, width=width)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ViewLoaded(job_id, view))

    def _mark_cell(self, job_id: int) -> str | Text:
        return MARK if job_id == self._marked else ""

    @on(Worker.StateChanged)
    def _poll_ended(self, event: Worker.StateChanged) -> None:
        if event.worker is self._poll_worker and event.worker.is_finished and self._poll_again:
            self.poll()

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        table = self.query_one("#runs-table", DataTable)
        order = [row.id for row in message.rows]
        if order != self._order:
            # Runs were added or removed: rebuild, keeping the cursor on the same run.
            selected = self.selected_run_id
            table.clear()
            for row in message.rows:
                table.add_row(self._mark_cell(row.id),
                              *(_cell(k, v) for (k, _), v in zip(COLUMNS[1:], row.cells())),
                              key=str(row.id))
            self._order = order
            if selected in order:
                table.move_cursor(row=order.index(selected), scroll=False)
        else:
            for row in message.rows:
                old = self._rows.get(row.id)
                if old == row or old is None:
                    continue
                for (key, _), new, before in zip(COLUMNS[1:], row.cells(), old.cells()):
                    if new != before:
                        table.update_cell(str(row.id), key, _cell(key, new))
        self._rows = {row.id: row for row in message.rows}
        if self._marked is not None and self._marked not in self._rows:
            self._marked = None
        active = sum(1 for row in message.rows if row.active)
        note = f"{len(message.rows)} runs · {active} active · refreshed every {POLL_S:g} s"
        if self._marked is not None:
            note += f" · ◆ run {self._marked} overlaid on the others' loss"
        self.query_one("#runs-note", Static).update(note + (f"\n{message.note}" if message.note else ""))
        if self._select_after in self._rows:
            table.move_cursor(row=order.index(self._select_after))
            self._select_after = None
            self._reload_view()
            return
        if message.view_for is not None and message.view_for == self.selected_run_id:
            self._show(message.view)
        elif not message.rows:
            self._show(None)
        elif message.view_for != self.selected_run_id and self.selected_run_id is not None:
            self._reload_view()

    @on(ViewLoaded)
    def _view_loaded(self, message: ViewLoaded) -> None:
        if message.job_id == self.selected_run_id:
            self._show(message.view)

    def _show(self, view: RunView | None) -> None:
        if view is not None and (view, self._marked) == self._shown:
            return
        self._view = view
        self._shown = (view, self._marked)
        empty = NO_RUNS if not self._rows else "The run is gone from the store."
        self.query_one("#run-summary", RunSummary).show(
            view.run if view else None, view.overlay if view else None, self._marked, empty=empty)
        self.query_one("#run-loss", RunChart).show(view.charts[0] if view else None)
        self.query_one("#run-lr", RunChart).show(view.charts[1] if view else None)
        self.query_one("#run-files", RunFiles).show(view.run if view else None)

    @on(DataTable.RowHighlighted, "#runs-table")
    def _row_highlighted(self) -> None:
        job_id = self.selected_run_id
        if job_id is not None and (self._view is None or self._view.run.id != job_id):
            self._reload_view()

    def select_run(self, job_id: int) -> None:
        """Put the cursor on run `job_id` as soon as it is in the table."""
        self._select_after = job_id
        self.poll()

    # ------------------------------------------------------------------ overlay

    def action_mark_overlay(self) -> None:
        job_id = self.selected_run_id
        if job_id is None:
            self.app.bell()
            return
        before, self._marked = self._marked, (None if self._marked == job_id else job_id)
        table = self.query_one("#runs-table", DataTable)
        for changed in {before, self._marked} - {None}:
            if str(changed) in table.rows:
                table.update_cell(str(changed), "mark", self._mark_cell(changed))  # type: ignore[arg-type]
        if self._marked is None:
            self.notify(f"Run {job_id} is no longer overlaid.", title="Overlay")
        else:
            self.notify(f"Run {job_id}'s loss is drawn over the loss of the run you select.",
                        title="Overlay")
        self._reload_view()

    # ------------------------------------------------------------------ new run, cancel, resume

    def action_new_run(self) -> None:
        def started(job_id: int | None) -> None:
            if job_id is not None:
                self.notify(f"Run {job_id} started in the background.", title="New run")
                self.select_run(job_id)

        self.app.push_screen(NewRunDialog(), started)

    def action_cancel_run(self) -> None:
        job_id = self.selected_run_id
        row = self._rows.get(job_id) if job_id is not None else None
        if row is None:
            self.app.bell()
            return
        if not row.active:
            self.notify(f"Run {row.id} is {row.status}; there is nothing to cancel.")
            return

        def answered(cancel: bool | None) -> None:
            if cancel:
                self._act(self.engine, row.id, "cancel", None)

        question = (f"Cancel run {row.id} ({row.variant}, step {row.progress})?\n\n"
                    "It saves a checkpoint at its next check and stops; resume it later with r.")
        self.app.push_screen(ConfirmDialog(question, yes="Cancel run", no="Keep running"), answered)

    def action_resume_run(self) -> None:
        job_id = self.selected_run_id
        row = self._rows.get(job_id) if job_id is not None else None
        if row is None:
            self.app.bell()
            return
        if not row.resumable:
            self.notify(f"Run {row.id} is {row.status}; only interrupted, failed or cancelled runs "
                        "resume.")
            return
        workspace: Path | None = getattr(self.app, "workspace", None)
        if workspace is None:
            self.notify("The workbench was opened without a workspace; resume from a shell with "
                        f"`ddft jobs resume {row.id}`.", severity="error")
            return

        def answered(resume: bool | None) -> None:
            if resume:
                self._act(self.engine, row.id, "resume", workspace)

        question = (f"Resume run {row.id} ({row.variant}, {row.status} at step {row.progress})?\n\n"
                    "It starts again in the background from its last checkpoint.")
        self.app.push_screen(ConfirmDialog(question, yes="Resume", no="Not now"), answered)

    @work(thread=True, exit_on_error=False, group="runs-action")
    def _act(self, engine: Engine, job_id: int, action: str, workspace: Path | None) -> None:
        try:
            if action == "cancel":
                request_cancel(engine, job_id)
            else:
                assert workspace is not None
                resume_run(engine, job_id, workspace=workspace)
        except (JobsUnavailable, RuntimeError, OSError) as exc:  # RuntimeError: engine.jobs.JobError
            self.post_message(self.ActionAnswered(job_id, action, str(exc)))
        else:
            self.post_message(self.ActionAnswered(job_id, action, None))

    @on(ActionAnswered)
    def _action_answered(self, message: ActionAnswered) -> None:
        if message.error:
            self.notify(message.error, title=f"Run {message.job_id}", severity="error")
        elif message.action == "cancel":
            self.notify(f"Asked run {message.job_id} to save and stop.", title="Cancel")
        else:
            self.notify(f"Run {message.job_id} resumed in the background.", title="Resume")
        self.poll()
