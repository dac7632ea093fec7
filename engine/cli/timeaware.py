"""Teaching the model when: `ddft data timestamps` (the timestamp training task made from a video
dataset's annotated segments) and `ddft bench timestamps` (the kitchen study that measures the
frame-time options against the recipe-only variant).

Registered as `app.command("timestamps")(data_timestamps)` in engine/cli/data.py and
`app.command("timestamps")(bench_timestamps)` in engine/cli/bench.py.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli.console import WorkspaceOption, console, fail, friendly, open_workspace


@friendly
def data_timestamps(
    dataset: Annotated[str, typer.Argument(
        help="A stored video dataset with annotated step segments (YouCook2, Tasty, "
             "kitchen-videos).", show_default=False)],
    name: Annotated[Optional[str], typer.Option(
        help="Name of the new dataset (default: DATASET-timestamps).",
        show_default=False)] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """The timestamp training task: a dataset of DATASET's training videos whose answers list
    the annotated steps with their start and end times, in the format `ddft timestamps` asks
    for. Curate and check it like any dataset; mix it with the recipe task by weight:
    `ddft train --dataset DATASET --dataset DATASET-timestamps=0.5`. Re-running adds only
    videos not in it yet."""
    from engine.importers.timestamps import TimestampTaskError, make_timestamp_dataset

    _, db_engine = open_workspace(workspace)
    try:
        summary, plan = make_timestamp_dataset(db_engine, dataset, name=name)
    except TimestampTaskError as exc:
        fail(str(exc))
        return
    console.print(f"{summary.dataset}: {summary.imported} imported, {summary.skipped} already "
                  "there", markup=False, highlight=False)
    for note in plan.notes:
        console.print(f"  {note}", markup=False, highlight=False)


@friendly
def bench_timestamps(
    steps: Annotated[int, typer.Option(min=1, help="LoRA steps per variant.")] = 700,
    seed: Annotated[int, typer.Option(help="Training seed of every variant.")] = 0,
    recipes: Annotated[bool, typer.Option(
        help="Also generate and judge each variant's recipes (Table 1).")] = True,
    workspace: WorkspaceOption = None,
) -> None:
    """Teaching the model when, measured on the synthetic kitchen (tiny model, CPU): the
    recipe-only ddft variant, a control trained on the timestamp task without frame times, and
    the two frame-time options, each asked for timed steps on the held-out videos; prints the
    timestamp checks, each variant against the recipe-only one with paired bootstrap
    intervals, and Table 1. Reuses what an earlier run stored (use a fresh --workspace for a
    fresh measurement)."""
    from engine.evaluation.report import render_markdown
    from engine.evaluation.timestamps import (
        render_comparison_markdown,
        render_timestamps_markdown,
    )
    from engine.kitchen.study import run_study

    path, db_engine = open_workspace(workspace, create=True)
    console.print(f"ddft bench timestamps · {platform.machine()}, {os.cpu_count()} CPUs, "
                  f"Python {platform.python_version()} · {steps} steps, seed {seed}",
                  markup=False, highlight=False)
    result = run_study(path, db_engine, steps=steps, seed=seed, recipes=recipes,
                       say=lambda line: console.print(f"  {line}", markup=False,
                                                      highlight=False))
    for text in (render_timestamps_markdown(result.timestamps),
                 render_comparison_markdown(result.comparison)):
        console.print("\n" + text, markup=False, highlight=False, soft_wrap=True)
    if result.report is not None:
        table = render_markdown(result.report).split("\n## ")[0]
        console.print("\n" + table, markup=False, highlight=False, soft_wrap=True)
    console.print(f"\nmeasured in {result.seconds:.0f} s · workspace {Path(path)}",
                  markup=False, highlight=False)
