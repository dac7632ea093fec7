"""CSV that a spreadsheet opens as data: text cells that a spreadsheet would run as a formula are
neutralised, numbers are left as numbers. Every CSV writer of ddft goes through `csv_writer`."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

# What makes Excel, LibreOffice and Google Sheets read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_cell(value: Any) -> Any:
    """`value` as a CSV cell: text that starts like a formula gets a leading `'` (shown as
    text, never evaluated); numbers, and text that is a plain number such as "-0.5", are kept."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


class _SafeWriter:
    def __init__(self, out: TextIO):
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, cells: Iterable[Any]) -> None:
        self._writer.writerow([spreadsheet_cell(cell) for cell in cells])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: TextIO) -> _SafeWriter:
    """A csv.writer (lines end in \\n) whose every cell goes through `spreadsheet_cell`."""
    return _SafeWriter(out)
