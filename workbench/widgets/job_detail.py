"""The detail pane of one job: status, params, message, error, metrics, loss curve and log tail."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from workbench.data.jobs import (
    LOG_LINES,
    JobDetail,
    JobRow,
    format_progress,
    loss_sparkline,
    shown_path,
)

STATUS_STYLES = {
    "queued": "cyan",
    "running": "bold yellow",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "interrupted": "magenta",
}


# How many failed samples the detail names.
FAILURES_SHOWN = 5


def status_text(status: str, *, cancel_pending: bool = False) -> Text:
    """A stored job status in its colour; "(cancel asked)" follows when a live job was asked to stop."""
    label = f"{status} (cancel asked)" if cancel_pending else status
    return Text(label, style=STATUS_STYLES.get(status, ""))


def row_status(row: JobRow) -> Text:
    """A row's status cell: a queued job with its place in line (`queued #2`) or `blocked`."""
    if row.status == "queued" and row.blocked_by:
        return Text("queued (blocked)", style=STATUS_STYLES["queued"])
    if row.status == "queued" and row.queue_position is not None:
        return Text(f"queued #{row.queue_position}", style=STATUS_STYLES["queued"])
    return status_text(row.status, cancel_pending=row.cancel_pending)


def _point(label: str, point: tuple[int, float] | None) -> str:
    return "" if point is None else f"{label} {point[1]:.4f} @ step {point[0]}"


def describe_job(job: JobDetail, *, chart_width: int = 60, workspace: Path | None = None) -> Text:
    row = job.row
    text = Text()
    text.append(f"Job {row.id}", style="bold")
    text.append(f"  {row.kind} · {row.title}\n")
    text.append("status: ")
    text.append_text(status_text(row.status))
    if row.cancel_pending:
        text.append("  (cancel requested)", style="yellow")
    text.append(f"   step {format_progress(row.step, row.total)}\n")
    if row.queue_line:
        text.append(f"queue: {row.queue_line}\n", style="cyan")
    if job.message:
        text.append(f"message: {job.message}\n")
    if job.error:
        text.append("error: ", style="bold red")
        text.append(f"{job.error}\n", style="red")
    if job.failed:
        text.append(f"failed: {job.failed} samples", style="bold yellow")
        text.append(" (not stored; the others are)\n", style="dim")
        shown = job.failures[:FAILURES_SHOWN]
        for sample, path, reason in shown:
            text.append(f"  {sample} ({path}): {reason}\n")
        if job.failed > len(shown):
            text.append(f"  … and {job.failed - len(shown)} more\n", style="dim")
    text.append("\nparams\n", style="bold")
    for key, value in job.params or (("—", ""),):
        text.append(f"  {key}: ", style="dim")
        text.append(f"{value}\n")
    text.append("\nmetrics\n", style="bold")
    if job.latest:
        text.append("  " + " · ".join(f"{name} {value:.4g}" for name, value in job.latest) + "\n")
    else:
        text.append("  none reported yet\n" if row.active else "  none reported\n", style="dim")
    if job.loss:
        text.append(f"\nloss ({len(job.loss)} points)\n", style="bold")
        sparkline = loss_sparkline(list(job.loss), chart_width)
        if sparkline:
            text.append(f"  {sparkline}\n", style="green")
        lowest = min(job.loss, key=lambda point: point[1])
        parts = [_point("first", job.loss[0]), _point("last", job.loss[-1]), _point("min", lowest)]
        text.append("  " + " · ".join(parts) + "\n", style="dim")
    text.append_text(describe_log(job, workspace))
    return text


def describe_log(job: JobDetail, workspace: Path | None = None) -> Text:
    """The log's path (relative to `workspace` when inside it) and its last lines, or why
    there are none."""
    text = Text()
    text.append("\nlog ", style="bold")
    if not job.log_path:
        text.append("— none yet\n" if job.row.active else
                    "— none: this job wrote no log\n", style="dim")
    elif job.log_tail is None:
        text.append(f"{shown_path(job.log_path, workspace)} (not readable here)\n", style="dim")
    else:
        text.append(f"{shown_path(job.log_path, workspace)} (last {LOG_LINES} lines)\n",
                    style="dim")
        for line in job.log_tail:
            text.append(f"  {line}\n")
    return text


class JobDetailPane(Static):
    """Shows the selected job, or a note saying why there is none."""

    def show(self, job: JobDetail | None, *, empty: str = "") -> None:
        width = max(20, self.size.width - 4)
        workspace = getattr(self.app, "workspace", None)
        self.update(describe_job(job, chart_width=width, workspace=workspace) if job
                    else Text(empty, style="dim"))
