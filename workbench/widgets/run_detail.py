"""The panes of one training run: its summary, its loss and learning-rate charts, checkpoints and log."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from workbench.data.curves import Chart
from workbench.data.jobs import format_duration, format_local, shown_path
from workbench.data.runs import Overlay, RunDetail
from workbench.widgets.job_detail import describe_log, status_text

METRIC_LABELS = {
    "loss": ("loss", ".4f", ""),
    "val_loss": ("validation loss", ".4f", ""),
    "lr": ("lr", ".3g", ""),
    "projector_lr": ("projector lr", ".3g", ""),
    "grad_norm": ("grad norm", ".3g", ""),
    "samples_per_s": ("samples/s", ".2f", ""),
    "tokens_per_s": ("tokens/s", ",.0f", ""),
    "gpu_memory_gb": ("GPU memory", ".1f", " GB"),
}


def describe_run(run: RunDetail, overlay: Overlay | None, marked: int | None) -> Text:
    row, job = run.row, run.job
    text = Text()
    text.append(f"Run {run.id}", style="bold")
    text.append(f"  {run.variant}")
    if row.title and row.title != run.variant:
        text.append(f" · {row.title}", style="dim")
    text.append("\nstatus ")
    text.append_text(status_text(row.status))
    if row.cancel_pending:
        text.append("  (cancel requested)", style="yellow")
    percent = f" ({100 * row.step / row.total:.0f}%)" if row.total else ""
    eta = row.training.eta_s if row.training else None
    text.append(f"   step {row.step}/{row.total or '?'}{percent}   "
                f"ETA {'—' if eta is None else format_duration(eta)}\n")
    text.append(f"started {format_local(row.started_at)}", style="dim")
    if not row.active and job.finished_at is not None:
        text.append(f" · ended {format_local(job.finished_at)}", style="dim")
    text.append("\n")
    latest = dict(job.latest)
    parts = []
    for name, (label, pattern, unit) in METRIC_LABELS.items():
        value = latest.get(name)
        parts.append(f"{label} {'—' if value is None else format(value, pattern) + unit}")
    text.append(" · ".join(parts) + "\n")
    for key, value in run.setup:
        text.append(f"{key}: ", style="dim")
        text.append(f"{value}\n")
    if job.message:
        text.append(f"message: {job.message}\n")
    if job.error:
        text.append("error: ", style="bold red")
        text.append(f"{job.error}\n", style="red")
    if overlay is not None:
        text.append(f"loss overlaid with {overlay.label} (o on it again to clear)\n", style="magenta")
    elif marked == run.id:
        text.append("marked for comparison: select another run to overlay its loss\n", style="magenta")
    if row.resumable:
        text.append(f"{row.status}: press r to resume from its last checkpoint\n", style="yellow")
    return text


def chart_text(chart: Chart, *, empty: str) -> Text:
    """The chart, then its legend (each curve's glyph in its colour and its label: a run's
    name is people's text, never markup) and its note, below the plot rather than over it."""
    if chart.kind == "plotext":
        text = Text.from_ansi(chart.text, no_wrap=True)
    elif chart.kind == "sparkline":
        text = Text(chart.text, style="green", no_wrap=True)
    else:
        return Text(f"{chart.title}: {empty}", style="dim")
    text.rstrip()
    if chart.legend:
        text.append("\n")
        for index, (glyph, label, colour) in enumerate(chart.legend):
            if index:
                text.append("   ")
            text.append(f"{glyph}{glyph} ", style=f"bold color({colour})")
            text.append(label)
    if chart.note:
        text.append(f"\n{chart.note}", style="dim")
    return text


def describe_files(run: RunDetail, workspace: Path | None = None) -> Text:
    """The run's checkpoints and log; paths inside `workspace` are drawn relative to it."""
    text = Text()
    text.append(f"checkpoints ({len(run.checkpoints)})\n", style="bold")
    if not run.checkpoints:
        text.append("  none saved yet\n", style="dim")
    for checkpoint in run.checkpoints:
        text.append(f"  step {checkpoint.step:>6}", style="bold" if checkpoint.final else "")
        text.append("  final" if checkpoint.final else "       ", style="green")
        if checkpoint.val_loss is not None:
            text.append(f"  val {checkpoint.val_loss:.4f}")
            text.append(" best" if checkpoint.best else "     ", style="bold yellow")
        text.append(f"  {format_local(checkpoint.saved_at)}  ", style="dim")
        text.append(f"{shown_path(checkpoint.path, workspace)}\n")
    if any(c.best for c in run.checkpoints):
        text.append(f"  best: the lowest validation loss; `ddft variants from-checkpoint "
                    f"{run.id} --name NAME --best`\n", style="dim")
    text.append_text(describe_log(run.job, workspace))
    return text


class RunSummary(Static):
    """Status, progress, ETA, throughput and setup of the selected run."""

    def show(self, run: RunDetail | None, overlay: Overlay | None, marked: int | None, *,
             empty: str = "") -> None:
        self.update(describe_run(run, overlay, marked) if run else Text(empty, style="dim"))


class RunChart(Static):
    """One chart; updated only when its drawing changed, so polling does not flicker."""

    def __init__(self, *, empty: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.empty = empty
        self._chart: Chart | None = None

    def show(self, chart: Chart | None) -> None:
        if chart == self._chart:
            return
        self._chart = chart
        self.update(Text("") if chart is None else chart_text(chart, empty=self.empty))


class RunFiles(Static):
    """Checkpoints and the log tail of the selected run."""

    def show(self, run: RunDetail | None) -> None:
        self.update(describe_files(run, getattr(self.app, "workspace", None)) if run
                    else Text(""))
