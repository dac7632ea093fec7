"""`ddft timestamps`, `ddft ground` and `ddft report-video`: where in the video a variant places
its steps, which frame each generated step attends to, and the report on both."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from engine.cli.console import WorkspaceOption, console, fail, friendly, open_workspace

DetachOption = Annotated[
    bool, typer.Option("--detach", help="Run as a background job and return at once.")
]


def _check_names(engine, *, variant: str | None, eval_set: str, task: str | None = None):
    """The variant's base model, after checking that the variant and a video eval set exist
    (and, for grounding, that the variant has recipes there to ground)."""
    from db import queries
    from db.store import session_scope

    with session_scope(engine) as session:
        found = queries.get_variant(session, name=variant) if variant is not None else None
        if variant is not None and found is None:
            fail(f"no model variant named {variant!r}; `ddft variants list` shows them")
        dataset = queries.get_dataset(session, name=eval_set)
        if dataset is None:
            fail(f"no eval set named {eval_set!r}; `ddft data list` shows the datasets")
        if task is not None and dataset.modality != "video":
            fail(f"{eval_set} holds {dataset.modality} samples; {task} needs videos with "
                 "annotated steps, such as kitchen-eval or an imported YouCook2 set")
        if task == "grounding" and not queries.list_generations(session, variant_id=found.id,
                                                                dataset_id=dataset.id):
            fail(f"{variant} has no recipes for {eval_set} to ground: run `ddft generate "
                 f"--variant {variant} --eval-set {eval_set}` first")
        return found.base_model if found is not None else None


@friendly
def timestamps(
    variant: Annotated[str, typer.Option(help="Model variant to ask.")],
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    batch_size: Annotated[int, typer.Option(help="Generations per batch.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer in tokens.")] = 256,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """Ask a variant for each step of its recipe with start and end times (greedy), for the
    timestamp evaluation; stored answers are skipped. `ddft report-video` scores them."""
    from engine.cli.main import _launch

    path, engine = open_workspace(workspace)
    _check_names(engine, variant=variant, eval_set=eval_set, task="timestamps")
    params = {"variant": variant, "eval_set": eval_set, "batch_size": batch_size,
              "max_new_tokens": max_new_tokens, "num_frames": 8, "task": "timestamps"}
    _launch(engine, path, kind="generate", params=params, title=f"timestamps {variant}",
            detach=detach)


@friendly
def ground(
    variant: Annotated[str, typer.Option(help="Model variant whose recipes to ground.")],
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    layers: Annotated[str, typer.Option(
        help="Decoder layers to average: late (the later half), all, or a list like 12-31 or "
             "0,4,8-11.")] = "late",
    heads: Annotated[str, typer.Option(help="Attention heads to average: all or a list.")]
    = "all",
    top_k: Annotated[int, typer.Option("--top-k", help="Frames kept per step, most attended "
                                       "first.")] = 1,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """Find the sampled frame each generated recipe step attends to most (teacher-forced
    attention); generations grounded with the same settings are skipped."""
    from engine.cli.main import _launch
    from engine.evaluation.grounding import GroundingError, check_index_spec, language_shape, parse_index_spec

    try:
        check_index_spec(layers, "--layers")
        check_index_spec(heads, "--heads")
    except GroundingError as exc:
        fail(str(exc))
    if not 1 <= top_k <= 8:
        fail(f"--top-k: expected 1 to 8 frames, found {top_k}")
    path, engine = open_workspace(workspace)
    base = _check_names(engine, variant=variant, eval_set=eval_set, task="grounding")
    shape = language_shape(base) if base else None
    if shape is not None:  # a local model: check the layer and head numbers before any job
        try:
            parse_index_spec(layers, shape[0], "--layers")
            parse_index_spec(heads, shape[1], "--heads")
        except GroundingError as exc:
            fail(str(exc))
    params = {"variant": variant, "eval_set": eval_set, "layers": layers, "heads": heads,
              "top_k": top_k}
    _launch(engine, path, kind="ground", params=params, title=f"ground {variant}",
            detach=detach)


class VideoReportFormat(str, Enum):
    md = "md"
    json = "json"


@friendly
def report_video(
    eval_set: Annotated[str | None, typer.Option(help="Eval dataset (default: the oldest "
                                                 "eval set).")] = None,
    fmt: Annotated[VideoReportFormat, typer.Option("--format", help="Output format.")]
    = VideoReportFormat.md,
    workspace: WorkspaceOption = None,
) -> None:
    """Where in the video: timestamp checks per variant, frame coverage of the annotated
    steps, and keyframe-grounding hit rates against a random frame."""
    from db.store import session_scope
    from engine.evaluation.report import ReportError, ReportSelection, build_report, render_video

    _, engine = open_workspace(workspace)
    try:
        with session_scope(engine) as session:
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

