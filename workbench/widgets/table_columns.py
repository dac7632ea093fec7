"""Which columns of a table fit a width, chosen by priority, so that what matters most stays on
screen in a narrow terminal (status before title, ✓/✗ before prompt)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text

# A DataTable cell has one cell of padding on each side.
CELL_PADDING = 2
# The vertical scrollbar a long table shows.
SCROLLBAR = 2


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    priority: int  # lower: kept longer as the width shrinks
    # The flexible column (a preview) is kept at this width at least, and drawn last in its row
    # so that a terminal that cuts it cuts only its end; 0: a column drawn whole or not at all.
    min_width: int = 0


def cell_width(cells: Iterable[str | Text]) -> int:
    """The widest of `cells`, in terminal cells."""
    return max((c.cell_len if isinstance(c, Text) else Text(c).cell_len for c in cells),
               default=0)


def fit_columns(columns: Sequence[Column], widths: Mapping[str, int], available: int,
                ) -> tuple[tuple[Column, int | None], ...]:
    """The columns that fit in `available` cells, in their own order, each with the width to
    give it (None: as wide as its cells). Columns are taken by priority, each while its width
    (the wider of its label and `widths[key]`, plus padding) still fits; a column with a
    `min_width` needs only that much and gets what the others leave, up to its natural width.
    The column of the lowest priority number is always kept."""
    chosen: dict[str, int] = {}
    used = 0
    for column in sorted(columns, key=lambda c: c.priority):
        natural = max(Text(column.label).cell_len, widths.get(column.key, 0))
        need = (min(natural, column.min_width) if column.min_width else natural) + CELL_PADDING
        if used + need <= available or not chosen:
            chosen[column.key] = natural
            used += need
    fitted = []
    for column in columns:
        if column.key not in chosen:
            continue
        natural = chosen[column.key]
        width: int | None = None
        if column.min_width:
            others = sum(chosen[k] + CELL_PADDING for k in chosen if k != column.key)
            room = available - others - CELL_PADDING
            width = max(column.min_width, room) if room < natural else None
        fitted.append((column, width))
    return tuple(fitted)
