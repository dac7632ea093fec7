"""The Runs screen: the jobs table filtered to training, with step of total, ETA and throughput
columns; the selected run's curves, checkpoints and log; a second run's loss overlaid; and new run,
cancel and resume."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Static

from workbench.data.curves import Chart, Curve, render_run_charts
from workbench.data.jobs import RUN_KIND, JobRow, format_progress
from workbench.data.runs import Overlay, RunDetail, load_run_detail
from workbench.dialogs.new_run import NewRunDialog
from workbench.screens.jobs import JobTableScreen
from workbench.widgets.jobs_table import Column, columns
from workbench.widgets.run_detail import RunChart, RunFiles, RunSummary

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

RUN_COLUMNS = (("id", "id"), ("variant", "variant"), ("status", "status"), ("progress", "step/total"),
               ("eta", "ETA"), ("loss", "loss"), ("samples_per_s", "samples/s"),
               ("tokens_per_s", "tokens/s"), ("gpu_memory", "GPU mem"), ("started", "started"))
MARK = Text("◆", style="bold magenta")
NO_RUNS = ("No training runs yet.\n\nPress n for the New run form: pick a base model, preset and "
           "datasets, and it starts `ddft train …` as a background job that keeps going when you "
           "close the laptop. Runs started from a shell (`ddft train …`, `ddft demo`) appear here "
           "too, within a second.")


@dataclass(frozen=True)
class RunView:
    """What the detail panes show: the run, the run overlaid on it, and both charts."""

    run: RunDetail
    overlay: Overlay | None
    charts: tuple[Chart, Chart]

    @property
    def id(self) -> int:
        return self.run.id


def load_run_view(db_engine: Engine, job_id: int, *, overlay_id: int | None, width: int) -> RunView | None:
    run, overlay = load_run_detail(db_engine, job_id, overlay_id=overlay_id)
    if run is None:
        return None
    charts = render_run_charts(
        label=run.label, loss=run.job.loss, lr=run.lr, projector_lr=run.projector_lr,
        overlay=Curve(overlay.label, overlay.loss) if overlay is not None else None, width=width)
    return RunView(run, overlay, charts)


class RunsScreen(JobTableScreen):
    """The jobs table of kind "train", with training columns and a run's charts and files."""

    SUB_TITLE = "Runs"
    KIND = RUN_KIND
    NAME = "runs"
    NOUN = "run"
    EMPTY = NO_RUNS
    ASKED_TO_STOP = "Asked run {id} to save and stop."
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_run", "New run", id="runs.new",
                tooltip="Open the New run form: it shows and starts the `ddft train …` command"),
        Binding("o", "mark_overlay", "Overlay", id="runs.overlay",
                tooltip="Mark the highlighted run; other runs then show its loss curve over theirs"),
        Binding("c", "cancel", "Cancel run", id="runs.cancel",
                tooltip="Ask the highlighted run to save a checkpoint and stop"),
        Binding("r", "resume", "Resume", id="runs.resume",
                tooltip="Start an interrupted, failed or cancelled run again from its last checkpoint"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._marked: int | None = None

    def table_columns(self) -> tuple[Column, ...]:
        mark = Column("mark", "◆", lambda row, _now: MARK if row.id == self._marked else "")
        return (mark, *columns(*RUN_COLUMNS))

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="runs-body"):
            yield self.jobs_table()
            yield Static("loading…", id="runs-note")
            with Horizontal(id="run-detail"):
                with VerticalScroll(id="run-main"):
                    yield RunSummary(id="run-summary")
                    yield RunChart(id="run-loss", empty="no loss logged yet")
                    yield RunChart(id="run-lr", empty="no learning rate logged yet")
                with VerticalScroll(id="run-files-scroll"):
                    yield RunFiles(id="run-files")
        yield Footer()

    @property
    def selected_run_id(self) -> int | None:
        return self.selected_job_id

    def select_run(self, job_id: int) -> None:
        """Put the cursor on run `job_id` as soon as it is in the table."""
        self.select_job(job_id)

    # ------------------------------------------------------------------ the detail

    def detail_loader(self) -> Callable[[Engine, int], RunView | None]:
        width = max(30, self.query_one("#run-main").size.width - 3)

        def load(db_engine: Engine, job_id: int, marked: int | None = self._marked) -> RunView | None:
            return load_run_view(db_engine, job_id, overlay_id=marked, width=width)

        return load

    def detail_state(self) -> Hashable:
        return self._marked

    def show_detail(self, view: RunView | None, *, empty: str) -> None:
        self.query_one("#run-summary", RunSummary).show(
            view.run if view else None, view.overlay if view else None, self._marked, empty=empty)
        self.query_one("#run-loss", RunChart).show(view.charts[0] if view else None)
        self.query_one("#run-lr", RunChart).show(view.charts[1] if view else None)
        self.query_one("#run-files", RunFiles).show(view.run if view else None)

    def note_text(self, rows: tuple[JobRow, ...]) -> str:
        note = super().note_text(rows)
        if self._marked is not None:
            note += f" · ◆ run {self._marked} overlaid on the others' loss"
        return note

    def rows_shown(self) -> None:
        if self._marked is not None and self._marked not in {row.id for row in self.table.jobs}:
            self._marked = None
            self.table.redraw()

    # ------------------------------------------------------------------ overlay

    def action_mark_overlay(self) -> None:
        job_id = self.selected_run_id
        if job_id is None:
            self.app.bell()
            return
        self._marked = None if self._marked == job_id else job_id
        self.table.redraw()
        if self._marked is None:
            self.notify(f"Run {job_id} is no longer overlaid.", title="Overlay")
        else:
            self.notify(f"Run {job_id}'s loss is drawn over the loss of the run you select.",
                        title="Overlay")
        self.reload_detail()

    # ------------------------------------------------------------------ new run, cancel, resume

    def action_new_run(self) -> None:
        def started(job_id: int | None) -> None:
            if job_id is not None:
                self.notify(f"Run {job_id} started in the background.", title="New run")
                self.select_run(job_id)

        self.app.push_screen(NewRunDialog(), started)

    def cancel_question(self, row: JobRow) -> str:
        return (f"Cancel run {row.id} ({row.variant}, step {format_progress(row.step, row.total)})?"
                "\n\nIt saves a checkpoint at its next check and stops; resume it later with r.")

    def resume_question(self, row: JobRow) -> str:
        return (f"Resume run {row.id} ({row.variant}, {row.status} at step "
                f"{format_progress(row.step, row.total)})?\n\n"
                "It starts again in the background from its last checkpoint.")
