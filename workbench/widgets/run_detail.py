"""The panes of one training run: its summary, its loss and learning-rate charts, checkpoints and log."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.data.curves import Chart
from workbench.data.jobs import LOG_LINES
from workbench.data.runs import Overlay, RunDetail
from workbench.widgets.job_detail import status_text

METRIC_LABELS = {
    "loss": ("loss", ".4f", ""),
    "lr": ("lr", ".3g", ""),
    "projector_lr": ("projector lr", ".3g", ""),
    "grad_norm": ("grad norm", ".3g", ""),
    "samples_per_s": ("samples/s", ".2f", ""),
    "tokens_per_s": ("tokens/s", ",.0f", ""),
    "gpu_memory_gb": ("GPU memory", ".1f", " GB"),
}


def describe_run(run: RunDetail, overlay: Overlay | None, marked: int | None) -> Text:
    text = Text()
    text.append(f"Run {run.id}", style="bold")
    text.append(f"  {run.variant}")
    if run.title and run.title != run.variant:
        text.append(f" · {run.title}", style="dim")
    text.append("\nstatus ")
    text.append_text(status_text(run.status))
    if run.cancel_requested and run.active:
        text.append("  (cancel requested)", style="yellow")
    percent = f" ({100 * run.step / run.total:.0f}%)" if run.total else ""
    text.append(f"   step {run.step}/{run.total or '?'}{percent}   ETA {run.eta}\n")
    text.append(f"started {run.started}", style="dim")
    if not run.active and run.finished != "—":
        text.append(f" · ended {run.finished}", style="dim")
    text.append("\n")
    latest = dict(run.latest)
    parts = []
    for name, (label, pattern, unit) in METRIC_LABELS.items():
        value = latest.get(name)
        parts.append(f"{label} {'—' if value is None else format(value, pattern) + unit}")
    text.append(" · ".join(parts) + "\n")
    for key, value in run.setup:
        text.append(f"{key}: ", style="dim")
        text.append(f"{value}\n")
    if run.message:
        text.append(f"message: {run.message}\n")
    if run.error:
        text.append("error: ", style="bold red")
        text.append(f"{run.error}\n", style="red")
    if overlay is not None:
        text.append(f"loss overlaid with {overlay.label} (o on it again to clear)\n", style="magenta")
    elif marked == run.id:
        text.append("marked for comparison: select another run to overlay its loss\n", style="magenta")
    if run.resumable:
        text.append(f"{run.status}: press r to resume from its last checkpoint\n", style="yellow")
    return text


def chart_text(chart: Chart, *, empty: str) -> Text:
    if chart.kind == "plotext":
        return Text.from_ansi(chart.text, no_wrap=True)
    if chart.kind == "sparkline":
        return Text(chart.text, style="green", no_wrap=True)
    return Text(f"{chart.title}: {empty}", style="dim")


def describe_files(run: RunDetail) -> Text:
    text = Text()
    text.append(f"checkpoints ({len(run.checkpoints)})\n", style="bold")
    if not run.checkpoints:
        text.append("  none saved yet\n", style="dim")
    for checkpoint in run.checkpoints:
        text.append(f"  step {checkpoint.step:>6}", style="bold" if checkpoint.final else "")
        text.append("  final" if checkpoint.final else "       ", style="green")
        text.append(f"  {checkpoint.saved}  ", style="dim")
        text.append(f"{checkpoint.path}\n")
    text.append("\nlog ", style="bold")
    if not run.log_path:
        text.append("— none yet\n", style="dim")
    elif run.log_tail is None:
        text.append(f"{run.log_path} (not readable here)\n", style="dim")
    else:
        text.append(f"{run.log_path} (last {LOG_LINES} lines)\n", style="dim")
        for line in run.log_tail:
            text.append(f"  {line}\n")
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
        self.update(describe_files(run) if run else Text(""))
