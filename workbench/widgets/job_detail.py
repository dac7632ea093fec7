"""The detail pane of one job: status, params, message, error, metrics, loss curve and log tail."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.data.jobs import LOG_LINES, JobDetail

STATUS_STYLES = {
    "queued": "cyan",
    "running": "bold yellow",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "interrupted": "magenta",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status.split(" ")[0], ""))


def _point(label: str, point: tuple[int, float] | None) -> str:
    return "" if point is None else f"{label} {point[1]:.4f} @ step {point[0]}"


def describe_job(job: JobDetail) -> Text:
    text = Text()
    text.append(f"Job {job.id}", style="bold")
    text.append(f"  {job.kind} · {job.title}\n")
    text.append("status: ")
    text.append_text(status_text(job.status))
    if job.cancel_requested:
        text.append("  (cancel requested)", style="yellow")
    text.append(f"   step {job.progress}\n")
    if job.message:
        text.append(f"message: {job.message}\n")
    if job.error:
        text.append("error: ", style="bold red")
        text.append(f"{job.error}\n", style="red")
    text.append("\nparams\n", style="bold")
    for key, value in job.params or (("—", ""),):
        text.append(f"  {key}: ", style="dim")
        text.append(f"{value}\n")
    text.append("\nmetrics\n", style="bold")
    if job.latest:
        text.append("  " + " · ".join(f"{name} {value:.4g}" for name, value in job.latest) + "\n")
    else:
        text.append("  none reported yet\n", style="dim")
    if job.loss_points:
        text.append(f"\nloss ({job.loss_points} points)\n", style="bold")
        if job.loss_sparkline:
            text.append(f"  {job.loss_sparkline}\n", style="green")
        parts = [_point("first", job.loss_first), _point("last", job.loss_last), _point("min", job.loss_min)]
        text.append("  " + " · ".join(p for p in parts if p) + "\n", style="dim")
    text.append("\nlog ", style="bold")
    if not job.log_path:
        text.append("— none yet\n", style="dim")
    elif job.log_tail is None:
        text.append(f"{job.log_path} (not readable here)\n", style="dim")
    else:
        text.append(f"{job.log_path} (last {LOG_LINES} lines)\n", style="dim")
        for line in job.log_tail:
            text.append(f"  {line}\n")
    return text


class JobDetailPane(Static):
    """Shows the selected job, or a note saying why there is none."""

    def show(self, job: JobDetail | None, *, empty: str = "") -> None:
        self.update(describe_job(job) if job else Text(empty, style="dim"))
