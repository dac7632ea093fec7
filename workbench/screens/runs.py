"""The Runs screen: the jobs table filtered to training, with step of total, ETA and throughput
columns (as many as fit, by priority); the selected run's curves (training and validation loss,
a log scale on `l`, learning rates), checkpoints and log; a second run's loss overlaid; and new
run, cancel and resume."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.widgets import Footer, Header, Static

from workbench.data.curves import LOSS_HEIGHT, LR_HEIGHT, Chart, Curve, render_run_charts
from workbench.data.jobs import RUN_KIND, JobRow, format_progress
from workbench.data.runs import Overlay, RunDetail, load_run_detail
from workbench.dialogs.new_run import NewRunDialog
from workbench.screens.jobs import JobTableScreen
from workbench.widgets.jobs_table import Column, JobsTable, columns
from workbench.widgets.run_detail import RunChart, RunFiles, RunSummary

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

RUN_COLUMNS = (("id", "id"), ("variant", "variant"), ("status", "status"), ("progress", "step/total"),
               ("eta", "ETA"), ("loss", "loss"), ("samples_per_s", "samples/s"),
               ("tokens_per_s", "tokens/s"), ("gpu_memory", "GPU mem"), ("started", "started"))
# Which columns stay when the table is narrow, most wanted first: the run, where it is and how
# its loss goes before throughput and memory; the start time last.
COLUMN_PRIORITY = ("mark", "id", "variant", "status", "progress", "loss", "eta",
                   "samples_per_s", "gpu_memory", "tokens_per_s", "started")
# Below this many columns the run's files go under its curves instead of beside them.
NARROW = 120
MARK = Text("◆", style="bold magenta")
NO_RUNS = ("No training runs yet.\n\nPress n for the New run form: pick a base model, preset and "
           "datasets, and it starts `ddft train …` as a background job that keeps going when you "
           "close the laptop. Runs started from a shell (`ddft train …`, `ddft demo`) appear here "
           "too, within a second.")


def fit_columns(all_columns: Sequence[Column], rows: Sequence[JobRow], polled_at: datetime | None,
                width: int, priority: Sequence[str] = COLUMN_PRIORITY) -> tuple[Column, ...]:
    """The columns that fit in `width` cells, taken in `priority` order and shown in their own
    order; a column is as wide as its label or its widest cell, plus DataTable's padding."""
    def needed(column: Column) -> int:
        cells = [column.render(row, polled_at) for row in rows] if polled_at else []
        return max([len(column.label)] + [Text(c).cell_len if isinstance(c, str) else c.cell_len
                                          for c in cells]) + 2

    by_key = {column.key: column for column in all_columns}
    chosen: set[str] = set()
    used = 0
    for key in [k for k in priority if k in by_key] + [k for k in by_key if k not in priority]:
        size = needed(by_key[key])
        if used + size > width and chosen:
            break
        chosen.add(key)
        used += size
    return tuple(column for column in all_columns if column.key in chosen)


class RunsTable(JobsTable):
    """The jobs table showing only the columns that fit its width (`fit_columns`)."""

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(columns, id=id)
        self.all_columns = tuple(columns)

    def on_resize(self, _event: Resize) -> None:
        self.fit()

    def show(self, rows: Sequence[JobRow], polled_at: datetime) -> None:
        super().show(rows, polled_at)
        self.fit()

    def fit(self) -> None:
        # Two cells for the vertical scrollbar, which comes and goes with the rows.
        chosen = fit_columns(self.all_columns, self.jobs, self._polled_at, self.size.width - 2)
        if not self.size.width or chosen == self.job_columns:
            return
        selected = self.selected_id
        self.job_columns = chosen
        self.clear(columns=True)
        for column in chosen:
            self.add_column(column.label, key=column.key)
        self._drawn = {}  # every row is added again under the new columns
        if self._polled_at is not None:
            super().show(self.jobs, self._polled_at)
        if selected is not None:
            self.select(selected)


@dataclass(frozen=True)
class RunView:
    """What the detail panes show: the run, the run overlaid on it, and both charts."""

    run: RunDetail
    overlay: Overlay | None
    charts: tuple[Chart, Chart]

    @property
    def id(self) -> int:
        return self.run.id


def load_run_view(db_engine: Engine, job_id: int, *, overlay_id: int | None, width: int,
                  log_loss: bool = False, loss_height: int = LOSS_HEIGHT,
                  lr_height: int = LR_HEIGHT) -> RunView | None:
    run, overlay = load_run_detail(db_engine, job_id, overlay_id=overlay_id)
    if run is None:
        return None
    charts = render_run_charts(
        label=run.label, loss=run.job.loss, val_loss=run.val_loss, lr=run.lr,
        projector_lr=run.projector_lr,
        overlay=Curve(overlay.label, overlay.loss) if overlay is not None else None,
        overlay_val=(Curve(f"{overlay.label} validation", overlay.val_loss)
                     if overlay is not None and overlay.val_loss else None),
        width=width, log_loss=log_loss, loss_height=loss_height, lr_height=lr_height)
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
        Binding("l", "log_loss", "Log loss", id="runs.log",
                tooltip="Draw the loss on a logarithmic scale (again: a linear one)"),
        Binding("c", "cancel", "Cancel run", id="runs.cancel",
                tooltip="Ask the highlighted run to save a checkpoint and stop"),
        Binding("r", "resume", "Resume", id="runs.resume",
                tooltip="Start an interrupted, failed or cancelled run again from its last checkpoint"),
    ]

    DEFAULT_CSS = """
    RunsScreen #run-files-below { display: none; margin-top: 1; }
    RunsScreen.-narrow #run-files-scroll { display: none; }
    RunsScreen.-narrow #run-files-below { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._marked: int | None = None
        self._log_loss = False
        self._shown_run: int | None = None

    def table_columns(self) -> tuple[Column, ...]:
        mark = Column("mark", "◆", lambda row, _now: MARK if row.id == self._marked else "")
        return (mark, *columns(*RUN_COLUMNS))

    def jobs_table(self) -> JobsTable:
        return RunsTable(self.table_columns(), id=f"{self.NAME}-table")

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
                    yield RunFiles(id="run-files-below")
                with VerticalScroll(id="run-files-scroll"):
                    yield RunFiles(id="run-files")
        yield Footer()

    def on_resize(self, event: Resize) -> None:
        narrow = event.size.width < NARROW
        if narrow == self.has_class("-narrow"):
            return
        # Narrow: one column, the curves first (the table row already says status, step and
        # loss), the files under them; wide: summary and curves beside the files.
        self.set_class(narrow, "-narrow")
        main = self.query_one("#run-main")
        summary = self.query_one("#run-summary")
        if narrow:
            main.move_child(summary, after=self.query_one("#run-lr"))
        else:
            main.move_child(summary, before=self.query_one("#run-loss"))
        self.call_after_refresh(self.reload_detail)

    @property
    def selected_run_id(self) -> int | None:
        return self.selected_job_id

    def select_run(self, job_id: int) -> None:
        """Put the cursor on run `job_id` as soon as it is in the table."""
        self.select_job(job_id)

    # ------------------------------------------------------------------ the detail

    def detail_loader(self) -> Callable[[Engine, int], RunView | None]:
        main = self.query_one("#run-main")
        width = max(30, main.size.width - 3)
        # A chart and its legend fill the pane's height when it is short (80×24), so that one
        # of them is whole on screen at a time; never taller than their usual size.
        room = main.size.height - 3 if main.size.height else LOSS_HEIGHT
        log_loss, marked = self._log_loss, self._marked

        def load(db_engine: Engine, job_id: int) -> RunView | None:
            return load_run_view(db_engine, job_id, overlay_id=marked, width=width,
                                 log_loss=log_loss, loss_height=min(LOSS_HEIGHT, room),
                                 lr_height=min(LR_HEIGHT, room))

        return load

    def detail_state(self) -> Hashable:
        return self._marked, self._log_loss

    def show_detail(self, view: RunView | None, *, empty: str) -> None:
        if view is not None and view.id != self._shown_run:
            # Another run: its detail starts at its top, not where the last one was scrolled to.
            for scroll in ("#run-main", "#run-files-scroll"):
                self.query_one(scroll, VerticalScroll).scroll_home(animate=False)
        self._shown_run = view.id if view is not None else None
        self.query_one("#run-summary", RunSummary).show(
            view.run if view else None, view.overlay if view else None, self._marked, empty=empty)
        self.query_one("#run-loss", RunChart).show(view.charts[0] if view else None)
        self.query_one("#run-lr", RunChart).show(view.charts[1] if view else None)
        for files in ("#run-files", "#run-files-below"):
            self.query_one(files, RunFiles).show(view.run if view else None)

    def note_text(self, rows: tuple[JobRow, ...]) -> str:
        note = super().note_text(rows)
        if self._marked is not None:
            note += f" · ◆ run {self._marked} overlaid on the others' loss"
        return note

    def rows_shown(self) -> None:
        if self._marked is not None and self._marked not in {row.id for row in self.table.jobs}:
            self._marked = None
            self.table.redraw()

    # ------------------------------------------------------------------ log scale

    def action_log_loss(self) -> None:
        self._log_loss = not self._log_loss
        self.notify("The loss is drawn on a " + ("logarithmic" if self._log_loss else "linear")
                    + " scale.", title="Loss")
        self.reload_detail()

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
