"""`ddft timestamps`, `ddft ground` and `ddft report-video`: where in the video a variant places
its steps, which frame each generated step attends to, and the report on both."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from engine.cli.console import (
    WorkspaceOption,
    console,
    fail,
    friendly,
    launch,
    open_workspace,
)
from engine.evaluation.words import plural

DetachOption = Annotated[
    bool, typer.Option("--detach", help="Run as a background job and return at once.")
]
IncludeFailedOption = Annotated[
    bool, typer.Option("--include-failed", help="Also try samples that `ddft data check` "
                                                "failed (left out by default).")
]
# How many failed samples a command names; `ddft jobs show ID` has the first 20.
FAILURES_SHOWN = 5


def print_failures(job) -> None:
    """After a generate, timestamps or ground job: "N failed" naming the first few samples with
    their file and reason, and the samples a ground job had no recipe for. Names, paths and
    reasons are printed literally (a `[/]` in a file name is not markup)."""
    if job is None:
        return
    result = job.result or {}
    failed = int(result.get("failed") or 0)
    if failed:
        console.print(f"{failed} failed (not stored; `ddft jobs show {job.id}` lists them, "
                      "`ddft report` counts them):", markup=False, highlight=False)
        shown = result.get("failures", [])[:FAILURES_SHOWN]
        for failure in shown:
            console.print(f"  {failure['sample']} ({failure['path']}): {failure['reason']}",
                          markup=False, highlight=False, soft_wrap=True)
        if failed > len(shown):
            console.print(f"  … and {failed - len(shown)} more", markup=False, highlight=False)
    if result.get("no_recipe"):
        console.print(f"{plural(result['no_recipe'], 'sample has', 'samples have')} no "
                      f"recipe to ground (their generation failed): {', '.join(result.get('no_recipe_samples', []))}",
                      markup=False, highlight=False, soft_wrap=True)


@friendly
def timestamps(
    variant: Annotated[str, typer.Option(help="Model variant to ask.")],
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    batch_size: Annotated[int, typer.Option(min=1, help="Generations per batch.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer in tokens.")] = 256,
    include_failed: IncludeFailedOption = False,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """Ask a variant for each step of its recipe with start and end times (greedy), for the
    timestamp evaluation; stored answers are skipped. `ddft report-video` scores them. A video
    that cannot be read is counted as failed with its reason; the others go on."""
    from engine.jobs import TimestampsRequest

    path, db_engine = open_workspace(workspace)
    print_failures(launch(db_engine, path, TimestampsRequest(
        variant=variant, eval_set=eval_set, batch_size=batch_size,
        max_new_tokens=max_new_tokens, include_failed=include_failed), detach=detach))


@friendly
def ground(
    variant: Annotated[str, typer.Option(help="Model variant whose recipes to ground.")],
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    layers: Annotated[str, typer.Option(
        help="Decoder layers to average: late (the later half), all, or a list like 12-31 or "
             "0,4,8-11.")] = "late",
    heads: Annotated[str, typer.Option(help="Attention heads to average: all or a list.")]
    = "all",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Frames kept per step, most "
                                       "attended first.")] = 1,
    include_failed: IncludeFailedOption = False,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """Find the sampled frame each generated recipe step attends to most (teacher-forced
    attention); generations grounded with the same settings are skipped. A video that cannot
    be read is counted as failed with its reason; the others go on."""
    from engine.jobs import GroundRequest

    path, db_engine = open_workspace(workspace)
    print_failures(launch(db_engine, path, GroundRequest(
        variant=variant, eval_set=eval_set, layers=layers, heads=heads, top_k=top_k,
        include_failed=include_failed), detach=detach))


class VideoReportFormat(str, Enum):
    md = "md"
    json = "json"


@friendly
def report_video(
    eval_set: Annotated[str | None, typer.Option(help="Eval dataset (default: the one with "
                                                 "the most judged recipes).")] = None,
    fmt: Annotated[VideoReportFormat, typer.Option("--format", help="Output format.")]
    = VideoReportFormat.md,
    workspace: WorkspaceOption = None,
) -> None:
    """Where in the video: timestamp checks per variant, frame coverage of the annotated
    steps, and keyframe-grounding hit rates against a random frame."""
    from db.store import session_scope
    from engine.evaluation.report import ReportError, ReportSelection, build_report, render_video

    _, db_engine = open_workspace(workspace)
    try:
        with session_scope(db_engine) as session:
            built = build_report(session, ReportSelection(eval_set=eval_set), parts={"video"})
    except ReportError as exc:
        fail(str(exc))
        return
    console.print(render_video(built, fmt.value), markup=False, highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level `ddft` app."""
    app.command("timestamps")(timestamps)
    app.command("ground")(ground)
    app.command("report-video")(report_video)

