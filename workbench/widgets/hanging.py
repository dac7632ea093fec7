"""Rows with a hanging indent: marks and list markers keep their column, and a line that wraps
goes on under its own text instead of under the marks."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

# The list marker of a recipe line ("- ", "2. ", "Step 3: "), as engine.evaluation.recipe reads
# it, with the spaces around it: it stays with the marks, and wrapped text lines up after it.
LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022+]\s+|\(?\d{1,2}\s*[.):]\s*|step\s+\d{1,2}\s*[.):]?\s*)?",
                         re.IGNORECASE)
# Below this many cells for the text, a row wraps as plain text (the indent would eat it).
MIN_BODY = 12


def split_marker(line: str) -> tuple[str, str]:
    """A line's list marker with its spaces, and the rest: ("2. ", "Fry the tomato")."""
    marker = LIST_MARKER.match(line)
    end = marker.end() if marker else 0
    return line[:end], line[end:]


class HangingLines:
    """Rows of (prefix, text); a text too long for the width wraps under its first character.

    `str()` gives the plain text, a row a line, so a test (or a copy) reads what is drawn.
    """

    def __init__(self, rows: Iterable[tuple[Text, Text]] = ()) -> None:
        self.rows: list[tuple[Text, Text]] = list(rows)

    def add(self, text: Text | str, prefix: Text | str = "", style: str = "") -> None:
        """One row; `text` may hold newlines, each of which starts a row with the same indent."""
        head = prefix if isinstance(prefix, Text) else Text(prefix)
        body = text if isinstance(text, Text) else Text(text, style=style)
        lines = body.split("\n", allow_blank=True) if "\n" in body.plain else [body]
        for index, line in enumerate(lines):
            self.rows.append((head if index == 0 else Text(" " * head.cell_len), line))

    def add_text(self, text: Text) -> None:
        """Every line of `text` as a row without a prefix (a heading, a note)."""
        for line in text.split("\n", allow_blank=True):
            self.rows.append((Text(), line))

    def __str__(self) -> str:
        return "\n".join(prefix.plain + body.plain for prefix, body in self.rows)

    def as_text(self) -> Text:
        """The rows as one Text, styles kept, without the wrapping (for a copy or a test)."""
        return Text("\n").join(Text.assemble(prefix, body) for prefix, body in self.rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        for prefix, body in self.rows:
            indent = prefix.cell_len
            if width - indent < MIN_BODY:
                yield Text.assemble(prefix, body)
                continue
            lines = body.wrap(console, width - indent) if body.plain else [Text()]
            for index, line in enumerate(lines):
                head = prefix if index == 0 else Text(" " * indent)
                yield Text.assemble(head, line, no_wrap=True, overflow="fold")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((p.cell_len + b.cell_len for p, b in self.rows), default=0)
        return Measurement(min(MIN_BODY, widest), widest).clamp(max_width=options.max_width)


def recipe_lines(text: str, *, style: str = "") -> HangingLines:
    """A recipe as written, each list item's wrapped lines under its text, not its marker."""
    rows = HangingLines()
    for line in text.splitlines() or [""]:
        marker, body = split_marker(line)
        rows.add(Text(body, style=style), marker)
    return rows
