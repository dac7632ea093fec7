"""The Grid screen's data: every ablation grid by name, and one grid's cells with their job
statuses and, once anything is judged, its comparison report (engine.evaluation.grid_report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class GridTable:
    """The grid's comparison table (engine.evaluation.grid_report), as its cells."""

    heading: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (variant, a cell per header)
    notes: tuple[str, ...]


@dataclass(frozen=True)
class GridView:
    """What the Grid screen shows for one grid: its status (engine.jobs.grid.GridStatus), its
    comparison table (None while nothing is judged) and the names of every grid."""

    names: tuple[str, ...]
    status: Any  # engine.jobs.grid.GridStatus, or None without grids
    report: GridTable | None
    error: str | None = None


def load_grid(db_engine: Engine, name: str | None) -> GridView:
    """Grid `name` (default: the newest) with its report; `error` says why there is none."""
    from db.errors import UserError
    from db.store import session_scope
    from engine.evaluation.grid_report import (
        build_grid_report,
        table_cells,
        table_headers,
        table_heading,
        table_notes,
    )
    from engine.jobs.grid import grid_status_in

    with session_scope(db_engine) as session:
        from db import queries

        names = tuple(g.name for g in queries.list_grids(session))
        if not names:
            return GridView(names=(), status=None, report=None)
        chosen = name if name in names else names[0]
        try:
            status = grid_status_in(session, chosen)
            states = {cell.variant: cell.state for cell in status.cells}
            report = build_grid_report(session, chosen, states=states, n_boot=2_000)
        except UserError as exc:
            return GridView(names=names, status=None, report=None, error=str(exc))
    judged = any(row.table is not None for row in report.rows)
    table = GridTable(heading=table_heading(report), headers=table_headers(report),
                      rows=tuple((row.variant, table_cells(row)) for row in report.rows),
                      notes=tuple(table_notes(report)))
    return GridView(names=names, status=status, report=table if judged else None)
