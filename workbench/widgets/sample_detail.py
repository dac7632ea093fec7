"""The detail pane of one sample: its check, conversation, media facts, sampled frames and step segments."""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from workbench.data.frame_strip import FrameStrip
from workbench.data.samples import SampleRow
from workbench.widgets.hanging import HangingLines

CHECK_STYLES = {"ok": "bold green", "warn": "bold yellow", "failed": "bold red"}
NOT_CHECKED = "not checked — run `ddft data check`"
UPPER_HALF = "▀"


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def describe_check(row: SampleRow) -> Text:
    style = CHECK_STYLES.get(row.check_status)
    if style is None:
        return Text(NOT_CHECKED, style="dim")
    text = Text("check: ", style="bold")
    text.append(row.check_status, style=style)
    for reason in row.check_reasons:
        text.append("\n  • ")
        text.append(reason, style=style.removeprefix("bold "))
    return text


def describe_media_facts(row: SampleRow) -> str:
    """Duration, frame count, fps and token count, as far as they are known."""
    duration = row.duration_s
    if duration is None and row.n_frames and row.fps:
        duration = row.n_frames / row.fps
    facts = []
    if duration is not None:
        facts.append(f"duration {_seconds(duration)}")
    if row.n_frames:
        facts.append(f"{row.n_frames:,} frames")
    if row.fps:
        facts.append(f"{row.fps:g} fps")
    if row.tokens:
        facts.append(f"{row.tokens:,} tokens")
    return " · ".join(facts)


def draw_frame_strip(strip: FrameStrip, times: tuple[float, ...] | None, width: int) -> Text:
    """The frames in half blocks (upper pixel as foreground, lower as background), as many to a
    line as fit in `width` cells, each with its time centred below it."""
    per_line = max(1, (width + 1) // (strip.width + 1))
    text = Text()
    styles: dict[tuple, Style] = {}
    for first in range(0, len(strip.frames), per_line):
        frames = strip.frames[first:first + per_line]
        for y in range(0, 2 * strip.cell_rows, 2):
            for index, frame in enumerate(frames):
                if index:
                    text.append(" ")
                for upper, lower in zip(frame[y], frame[y + 1]):
                    style = styles.get((upper, lower))
                    if style is None:
                        style = styles[(upper, lower)] = Style(
                            color=Color.from_rgb(*upper), bgcolor=Color.from_rgb(*lower))
                    text.append(UPPER_HALF, style=style)
            text.append("\n")
        labels = []
        for index in range(first, first + len(frames)):
            label = _seconds(times[index]) if times and index < len(times) else ""
            labels.append(label.center(strip.width))
        text.append(" ".join(labels).rstrip() + "\n", style="dim")
    return text


def describe_sample(row: SampleRow, *, strip: FrameStrip | None = None, strip_note: str = "",
                    width: int = 60) -> HangingLines:
    """The sample's detail; a step sentence that wraps goes on under itself, not its times."""
    text = Text()
    text.append(f"Sample {row.id}", style="bold")
    text.append(f"  {row.dataset} · {row.modality} · {row.split} · ")
    text.append("included ✓" if row.included else "excluded ✗", style="green" if row.included else "red")
    text.append(f"\nexternal id: {row.external_id}")
    if row.group:
        text.append(f"   group: {row.group}")
    text.append("\n")
    text.append_text(describe_check(row))
    text.append("\n\nhuman\n", style="bold cyan")
    text.append(row.human_turn)
    text.append("\n\ngpt\n", style="bold magenta")
    text.append(row.answer)
    text.append("\n\nmedia: ", style="bold")
    text.append(row.media_path or "none (text only)")
    facts = describe_media_facts(row)
    if facts:
        text.append(f"\n{facts}")
    if row.modality == "video":
        if strip is not None:
            text.append("\nsampled frames\n", style="bold")
            text.append_text(draw_frame_strip(strip, row.frame_times, width))
            text.rstrip()
        else:
            text.append("\nframe times: ", style="bold")
            if row.frame_times is None:
                text.append("not probed", style="dim")
            else:
                text.append(", ".join(_seconds(t) for t in row.frame_times))
                text.append(f"  ({len(row.frame_times)} frames)", style="dim")
            if strip_note:
                text.append(f"\n{strip_note}", style="dim")
    rows = HangingLines()
    rows.add_text(text)
    if row.segments:
        rows.add("")
        rows.add(Text(f"steps ({len(row.segments)})", style="bold"))
        for segment in row.segments:
            rows.add(Text(segment.sentence),
                     Text(f" {_seconds(segment.start):>7}–{_seconds(segment.end):<7} ", style="dim"))
    return rows


class SampleDetailPane(Static):
    """Shows the highlighted sample, or a note saying why there is none."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[SampleRow, FrameStrip | None, str] | None = None

    def show(self, row: SampleRow | None, *, empty: str = "", strip: FrameStrip | None = None,
             strip_note: str = "") -> None:
        """Show `row`; `strip` (already loaded, in a worker) draws its sampled frames."""
        self._shown = (row, strip, strip_note) if row else None
        if row is None:
            self.update(Text(empty, style="dim"))
            return
        self.update(describe_sample(row, strip=strip, strip_note=strip_note, width=self._width()))

    def _width(self) -> int:
        # Before the first layout the pane has no size; the resize that follows draws it again.
        return self.content_region.width or self.size.width or 60

    def on_resize(self, event: Resize) -> None:
        if self._shown is not None and self._shown[1] is not None:
            row, strip, note = self._shown
            self.update(describe_sample(row, strip=strip, strip_note=note, width=self._width()))
