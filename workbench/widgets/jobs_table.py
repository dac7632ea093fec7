"""The polled jobs table of the Jobs and Runs screens: cells rendered from a row's typed fields,
redrawn in place when they change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from workbench.data.jobs import JobRow, format_age, format_duration, format_local, format_progress
from workbench.widgets.job_detail import row_status

Cell = str | Text
# A cell from a row and the moment of the poll that read it (for ages such as "1m ago").
Render = Callable[[JobRow, datetime], Cell]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    render: Render


def _number(value: float | None, pattern: str, unit: str = "") -> str:
    return "—" if value is None else format(value, pattern) + unit


def _heartbeat(row: JobRow, now: datetime) -> str:
    if row.heartbeat_at is None:
        return "—"
    return format_age((now - row.heartbeat_at).total_seconds())


def _eta(row: JobRow, _now: datetime) -> str:
    eta = row.training.eta_s if row.training else None
    return "—" if eta is None else format_duration(eta)


# Every cell a jobs table can show, by column key; a screen picks its columns from these.
CELLS: dict[str, Render] = {
    "id": lambda row, _now: str(row.id),
    # A title or variant name is people's text: a Text cell, never parsed as markup.
    "kind": lambda row, _now: row.kind,
    "title": lambda row, _now: Text(row.title),
    "variant": lambda row, _now: Text(row.variant),
    "status": lambda row, _now: row_status(row),
    "progress": lambda row, _now: format_progress(row.step, row.total),
    "loss": lambda row, _now: _number(row.loss, ".4f"),
    "heartbeat": _heartbeat,
    "started": lambda row, _now: format_local(row.started_at),
    "eta": _eta,
    "samples_per_s": lambda row, _now: _number(row.training and row.training.samples_per_s, ".2f"),
    "tokens_per_s": lambda row, _now: _number(row.training and row.training.tokens_per_s, ",.0f"),
    "gpu_memory": lambda row, _now: _number(row.training and row.training.gpu_memory_gb, ".1f", " GB"),
}


def columns(*labelled: tuple[str, str]) -> tuple[Column, ...]:
    """Columns of CELLS, as (key, label) pairs."""
    return tuple(Column(key, label, CELLS[key]) for key, label in labelled)


class JobsTable(DataTable):
    """Jobs newest first, one row each, keyed by job id. `show` rebuilds the table only when jobs
    came or went (the cursor stays on its job) and otherwise redraws just the changed cells."""

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.job_columns = tuple(columns)
        self._jobs: dict[int, JobRow] = {}
        self._drawn: dict[int, tuple[Cell, ...]] = {}
        self._polled_at: datetime | None = None

    def on_mount(self) -> None:
        for column in self.job_columns:
            self.add_column(column.label, key=column.key)

    @property
    def jobs(self) -> tuple[JobRow, ...]:
        return tuple(self._jobs.values())

    @property
    def selected_id(self) -> int | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    @property
    def selected(self) -> JobRow | None:
        job_id = self.selected_id
        return None if job_id is None else self._jobs.get(job_id)

    def select(self, job_id: int) -> bool:
        """Put the cursor on job `job_id`; False when it is not in the table."""
        order = list(self._jobs)
        if job_id not in self._jobs:
            return False
        self.move_cursor(row=order.index(job_id))
        return True

    def show(self, rows: Sequence[JobRow], polled_at: datetime) -> None:
        drawn = {row.id: tuple(c.render(row, polled_at) for c in self.job_columns) for row in rows}
        if list(drawn) != list(self._drawn):
            selected = self.selected_id
            self.clear()
            for job_id, cells in drawn.items():
                self.add_row(*cells, key=str(job_id))
            if selected in drawn:
                self.move_cursor(row=list(drawn).index(selected), scroll=False)
        else:
            for job_id, cells in drawn.items():
                for column, new, before in zip(self.job_columns, cells, self._drawn[job_id]):
                    if new != before:
                        self.update_cell(str(job_id), column.key, new)
        self._jobs = {row.id: row for row in rows}
        self._drawn = drawn
        self._polled_at = polled_at

    def redraw(self) -> None:
        """Render every row again, for a column that reads the screen's own state (a mark)."""
        if self._polled_at is not None:
            self.show(self.jobs, self._polled_at)
