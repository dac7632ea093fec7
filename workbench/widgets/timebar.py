"""A video's time axis drawn in characters: the annotated steps, a variant's generated steps and
the sampled frames, each on its own row, so where a step was put reads at a glance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

# The row labels' column ("annotated ", "generated ", "frames    ").
LABEL = 10
# The bar is never drawn narrower than this many cells.
MIN_BAR = 12
# A width to draw at when the text is read as a string (a copy, a test).
PLAIN_WIDTH = 72
# Adjacent steps alternate between these, so two touching steps read apart; the digit says which
# step a cell belongs to without colour.
SPAN_STYLES = ("bold cyan", "bold magenta")
PAST_END = "▸"
OVERLAP = "▒"
EMPTY = "·"
FRAME = "▲"


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    number: int  # 1-based: the step's number, drawn as its last digit


@dataclass(frozen=True)
class TimeRow:
    label: str
    spans: tuple[Span, ...]


class TimeBar:
    """Rows of step spans on one axis from 0 to the video's duration (or the latest time drawn
    when the duration is unknown), fitted to the width it is given. A span past the end is cut
    there and the row ends in ▸; cells two spans of one row share are drawn ▒."""

    def __init__(self, rows: Iterable[TimeRow], *, duration: float | None,
                 frames: Sequence[float] = ()) -> None:
        self.rows = tuple(rows)
        self.frames = tuple(frames)
        ends = [s.end for row in self.rows for s in row.spans] + list(self.frames)
        self.end = duration if duration else max(ends, default=0.0)
        self.known_duration = bool(duration)

    def _cell(self, time: float, cells: int) -> int:
        return min(cells - 1, max(0, int(time / self.end * cells)))

    def _row(self, row: TimeRow, cells: int) -> Text:
        # A span owns the cells whose middle lies in [start, end); one too short to own a middle
        # (or empty, or ending before it starts) owns the cell it starts in. Touching steps share
        # no cell; overlapping ones do (▒).
        marks: list[tuple[str, str]] = [(EMPTY, "dim")] * cells
        step = self.end / cells
        past = False
        for number, span in enumerate(row.spans):
            past = past or (self.known_duration and max(span.start, span.end) > self.end)
            owned = [c for c in range(cells) if span.start <= (c + 0.5) * step < span.end]
            if not owned and span.start < self.end:
                # Too short to own a cell's middle, empty or inverted: a mark where it starts.
                owned = [self._cell(span.start, cells)]
            style = SPAN_STYLES[number % len(SPAN_STYLES)]
            for cell in owned:
                taken = marks[cell][0] != EMPTY
                marks[cell] = (OVERLAP, "red") if taken else (str(span.number % 10), style)
        if past:
            marks[-1] = (PAST_END, "bold red")
        line = Text(row.label[:LABEL - 1].ljust(LABEL), style="dim")
        for mark, style in marks:
            line.append(mark, style=style)
        return line

    def lines(self, width: int) -> list[Text]:
        cells = max(MIN_BAR, width - LABEL)
        if self.end <= 0:
            return [Text("no times to draw", style="dim")]
        start, end = "0s", f"{self.end:.1f}s" + ("" if self.known_duration else " (latest time)")
        axis = Text(" " * LABEL + start + end.rjust(max(1, cells - len(start))), style="dim")
        lines = [axis] + [self._row(row, cells) for row in self.rows]
        if self.frames:
            ticks = [" "] * cells
            for time in self.frames:
                ticks[self._cell(time, cells)] = FRAME
            lines.append(Text("frames".ljust(LABEL), style="dim") + Text("".join(ticks)))
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(LABEL + MIN_BAR, options.max_width)

    def __str__(self) -> str:
        return "\n".join(line.plain for line in self.lines(PLAIN_WIDTH))


class Stack:
    """Renderables drawn one under another; `str()` gives their text, a part a block, so a test
    (or a copy) reads what is drawn."""

    def __init__(self, *parts: object) -> None:
        self.parts = [part for part in parts if part is not None]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.parts

    def __str__(self) -> str:
        return "\n".join(part.plain if isinstance(part, Text) else str(part)
                         for part in self.parts)
