"""The Grid screen: an ablation grid's cells with the status of their training, generation and
judging, polled from the store, then its comparison table (Table 1 per cell, paired tests
against the base and the all-modalities cell, Holm-corrected) as it fills in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from workbench.data.grid import GridTable, GridView, load_grid
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.job_detail import STATUS_STYLES
from workbench.widgets.table_columns import SCROLLBAR, Column, cell_width, fit_columns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

POLL_S = 2.0
NO_GRIDS = ("No ablation grids yet.\n\n`ddft ablate run NAME --base MODEL` makes one (each "
            "modality alone and all together, against the base), or `ddft demo --ablation` "
            "runs one on the kitchen.")
CELL_STYLES = {"done": "green", "running": "bold yellow", "queued": "cyan", "stopped": "magenta",
               "new": "dim"}
# By priority, for an 80-column terminal: the cell and its state first.
COLUMNS = (("cell", "cell"), ("state", "state"), ("train", "train"), ("generate", "generate"),
           ("judge", "judge"), ("variant", "variant"))


# The comparison table's columns (engine.evaluation.grid_report.table_headers, in its order) by
# priority: on 80 columns the cell, its accuracy and its test against the base stay.
RESULT_PRIORITY = (0, 15, 10, 5, 6, 1, 7, 3, 8, 4, 11, 2, 9, 12, 13, 14)
# The paired-test columns ("Δacc …, p=…; Δscore …, p=…") are drawn on two lines.
TEST_COLUMNS = (11, 12)


def _status(value: str | None) -> Text:
    return Text(value or "—", style=STATUS_STYLES.get(value or "", "dim"))


class GridScreen(WorkbenchScreen):
    """One ablation grid: cells × status, refreshed every two seconds, then its table."""

    SUB_TITLE = "Grid"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "next_grid", "Next grid", id="grid.next", tooltip="Show the next grid"),
        Binding("r", "refresh", "Refresh", id="grid.refresh"),
    ]

    @dataclass
    class Loaded(Message):
        view: GridView

    def __init__(self) -> None:
        super().__init__()
        self.grid_name: str | None = None
        self._names: tuple[str, ...] = ()
        self._shown: tuple | None = None
        self._table: GridTable | None = None
        self._fitted_width = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="grid-body"):
            yield Static("loading…", id="grid-title")
            yield DataTable(id="grid-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="grid-report-title")
            yield DataTable(id="grid-results", cursor_type="row", zebra_stripes=True)
            yield Static("", id="grid-left-out")
            yield Static("", id="grid-report")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#grid-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self._timer = self.set_interval(POLL_S, self.poll, pause=True)

    def on_screen_resume(self) -> None:
        self._timer.resume()
        self.poll()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    def store_opened(self) -> None:
        self.poll()

    def poll(self) -> None:
        if not self.store_ready:
            return
        self.run_worker(partial(self._load, self.db_engine, self.grid_name), thread=True,
                        exclusive=True, exit_on_error=False, group="grid-poll")

    def _load(self, db_engine: Engine, name: str | None) -> None:
        self.post_message(self.Loaded(load_grid(db_engine, name)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        view = message.view
        self._names = view.names
        title = self.query_one("#grid-title", Static)
        report = self.query_one("#grid-report", Static)
        table = self.query_one("#grid-table", DataTable)
        if view.status is None:
            table.clear()
            title.update(Text(view.error or NO_GRIDS))
            report.update("")
            self._show_results(None)
            return
        status = view.status
        self.grid_name = status.name
        counts = ", ".join(f"{n} {state}" for state, n in sorted(status.counts.items()))
        more = f" · g: next of {len(view.names)} grids" if len(view.names) > 1 else ""
        title.update(Text(f"grid {status.name} on {status.eval_set} · {counts}{more}"))
        rows = tuple((cell.variant, cell.state, cell.train, cell.generate, cell.judges)
                     for cell in status.cells)
        if rows != self._shown:
            self._shown = rows
            table.clear()
            for cell in status.cells:
                label = "base (untuned)" if cell.is_base else "+".join(cell.modalities) + "".join(
                    f" {k}={v}" for k, v in cell.settings.items())
                table.add_row(Text(label), Text(cell.state, style=CELL_STYLES.get(cell.state, "")),
                              _status(cell.train if not cell.is_base else None),
                              _status(cell.generate),
                              _status(", ".join(cell.judges) if cell.judges else None),
                              Text(cell.variant), key=cell.variant)
        self._show_results(view.report)

    def _show_results(self, table: GridTable | None) -> None:
        """The comparison table with the columns that fit the screen, by priority; those left
        out are named under it (`ddft ablate report` has them all)."""
        if table == self._table and table is not None and self._fitted_width == self.size.width:
            return
        self._table, self._fitted_width = table, self.size.width
        results = self.query_one("#grid-results", DataTable)
        heading = self.query_one("#grid-report-title", Static)
        left_out = self.query_one("#grid-left-out", Static)
        report = self.query_one("#grid-report", Static)
        results.clear(columns=True)
        results.display = table is not None
        if table is None:
            heading.update("")
            left_out.update("")
            report.update(Text("The table appears here as cells are judged.", style="dim")
                          if self._shown is not None else "")
            return
        heading.update(Text(table.heading, style="bold"))
        columns = tuple(Column(str(i), header, RESULT_PRIORITY[i])
                        for i, header in enumerate(table.headers))
        rows = [(variant, tuple(cell.replace("; ", "\n") if i in TEST_COLUMNS else cell
                                for i, cell in enumerate(cells)))
                for variant, cells in table.rows]
        widths = {c.key: cell_width(line for _, cells in rows for line in cells[i].split("\n"))
                  for i, c in enumerate(columns)}
        # The screen's width, not the table's: the columns shown must not depend on whether
        # the table was laid out before the report arrived.
        fitted = fit_columns(columns, widths, self.size.width - 4 - SCROLLBAR)
        shown = [int(column.key) for column, _ in fitted]
        for column, _ in fitted:
            results.add_column(column.label, key=column.key)
        tall = any("\n" in cells[i] for _, cells in rows for i in shown)
        for variant, cells in rows:
            results.add_row(*(Text(cells[i]) for i in shown), key=variant,
                            height=2 if tall else 1)
        missing = [h for i, h in enumerate(table.headers) if i not in shown]
        left_out.update(Text(f"Left out at this width: {', '.join(missing)} (wider terminal, "
                             f"or `ddft ablate report`)", style="dim") if missing else "")
        report.update(Text("\n".join(table.notes), style="dim"))

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_results, self._table)

    def action_refresh(self) -> None:
        self.poll()

    def action_next_grid(self) -> None:
        if len(self._names) < 2:
            self.app.bell()
            return
        index = self._names.index(self.grid_name) if self.grid_name in self._names else -1
        self.grid_name = self._names[(index + 1) % len(self._names)]
        self._shown = None
        self.poll()
