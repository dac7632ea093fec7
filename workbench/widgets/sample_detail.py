"""The detail pane of one sample: its conversation, media path, frame times and step segments."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.data.samples import SampleRow


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def describe_sample(row: SampleRow) -> Text:
    text = Text()
    text.append(f"Sample {row.id}", style="bold")
    text.append(f"  {row.dataset} · {row.modality} · {row.split} · ")
    text.append("included ✓" if row.included else "excluded ✗", style="green" if row.included else "red")
    text.append(f"\nexternal id: {row.external_id}")
    if row.group:
        text.append(f"   group: {row.group}")
    text.append("\n\nhuman\n", style="bold cyan")
    text.append(row.human_turn)
    text.append("\n\ngpt\n", style="bold magenta")
    text.append(row.answer)
    text.append("\n\nmedia: ", style="bold")
    text.append(row.media_path or "none (text only)")
    if row.modality == "video":
        if row.duration_s is not None:
            text.append(f"\nduration: {_seconds(row.duration_s)}")
        text.append("\nframe times: ", style="bold")
        if row.frame_times is None:
            text.append("not probed", style="dim")
        else:
            text.append(", ".join(_seconds(t) for t in row.frame_times))
            text.append(f"  ({len(row.frame_times)} frames)", style="dim")
    if row.segments:
        text.append(f"\n\nsteps ({len(row.segments)})", style="bold")
        for segment in row.segments:
            text.append(f"\n {_seconds(segment.start):>7}–{_seconds(segment.end):<7} ", style="dim")
            text.append(segment.sentence)
    return text


class SampleDetailPane(Static):
    """Shows the highlighted sample, or a note saying why there is none."""

    def show(self, row: SampleRow | None, *, empty: str = "") -> None:
        self.update(describe_sample(row) if row else Text(empty, style="dim"))
