"""`ddft ablate`: the paper's modality ablation as one grid of queued jobs, and its report."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.cli.console import (
    WorkspaceOption,
    console,
    fail,
    friendly,
    open_workspace,
    print_table,
)

app = typer.Typer(help="Modality ablation grids: one training run per cell, each followed by "
                       "generation and judging, queued on the device; and their comparison "
                       "report.", no_args_is_help=True)


class GridFormat(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"


class GridJudge(str, Enum):
    offline = "offline"
    gpt = "gpt"


def _status_table(status) -> Table:
    table = Table("cell", "variant", "state", "train", "generate", "judge")
    for cell in status.cells:
        label = "base (untuned)" if cell.is_base else "+".join(cell.modalities) + "".join(
            f" {k}={v}" for k, v in cell.settings.items())
        table.add_row(Text(label), Text(cell.variant), cell.state, cell.train or "—",
                      cell.generate or "—", ", ".join(cell.judges) or "—")
    return table


def print_report(db_engine, name: str, fmt: str, *, judge: str | None = None,
                 protocol: str | None = None, prompt_version: str | None = None) -> None:
    """Print grid `name`'s comparison report in `fmt` (md, csv, json)."""
    from db.store import session_scope
    from engine.evaluation.grid_report import build_grid_report, render
    from engine.jobs.grid import grid_status

    states = {cell.variant: cell.state for cell in grid_status(db_engine, name).cells}
    with session_scope(db_engine) as session:
        built = build_grid_report(session, name, states=states, judge=judge, protocol=protocol,
                                  prompt_version=prompt_version)
    console.print(render(built, fmt), markup=False, highlight=False, soft_wrap=True, end="")


@app.command("run")
@friendly
def run(
    name: Annotated[str, typer.Argument(help="The grid's name (its cells' variants are "
                                             "NAME-image, NAME-video, ...).")],
    base: Annotated[Optional[str], typer.Option(help="Base model: hub id or local directory "
                                                "(needed to make a grid).")] = None,
    dataset: Annotated[Optional[list[str]], typer.Option(
        "--dataset", "-d", help="A training set (repeat); its modality is the store's. "
                                "Default: the kitchen's image, video and question sets.")] = None,
    eval_set: Annotated[str, typer.Option(help="Eval set every cell generates for.")]
    = "kitchen-eval",
    modalities: Annotated[Optional[list[str]], typer.Option(
        "--modalities", "-m", metavar="M+M",
        help="A cell's modality subset, e.g. image+video (repeat). Default: each modality "
             "alone and all together.")] = None,
    grid_axis: Annotated[Optional[list[str]], typer.Option(
        "--grid", metavar="FIELD=V,V", help="Cross the cells with these values of a preset "
                                             "field, e.g. --grid lora_r=64,128 (repeat).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Preset name or .toml file; default: "
                                                  "tiny for the tiny model, paper otherwise.")]
    = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override one preset setting in every cell "
                                           "(repeat).")] = None,
    judge: Annotated[Optional[list[GridJudge]], typer.Option(
        "--judge", help="Judge of every cell's recipes (repeat); default offline.")] = None,
    judge_model: Annotated[str, typer.Option(help="GPT judge model.")] = "gpt-3.5-turbo",
    protocol: Annotated[str, typer.Option(help="GPT judge protocol.")] = "paper",
    base_url: Annotated[Optional[str], typer.Option(help="GPT judge endpoint.")] = None,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs each training run takes.")] = 1,
    best_checkpoint: Annotated[bool, typer.Option(
        "--best-checkpoint", help="Generate with each run's checkpoint of lowest validation "
                                  "loss instead of its last.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Generations per batch.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest recipe in tokens.")] = 256,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the grid to finish, saying "
                                       "when each cell changes, then print its report.")]
    = False,
    fmt: Annotated[GridFormat, typer.Option("--format", help="The report's format with "
                                            "--wait.")] = GridFormat.md,
    workspace: WorkspaceOption = None,
) -> None:
    """Make a modality ablation grid and queue its jobs, or continue one: running the same
    command again after a cancel, a crash or a reboot queues what is missing and resumes what
    stopped (training from its last checkpoint); a finished cell is never trained again."""
    from db import queries
    from db.store import session_scope
    from engine.importers.kitchen import TRAIN_SETS
    from engine.jobs.grid import (
        GENERATION_DEFAULTS,
        GridError,
        GridRequest,
        advance_grid,
        create_grid,
        parse_axis,
        parse_subset,
        same_definition,
    )
    from engine.jobs.requests import parse_set_arg

    path, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        exists = queries.get_grid(session, name=name) is not None
    defined = any(v for v in (base, dataset, modalities, grid_axis, preset, set_, judge))
    if not exists or defined:
        if not base:
            fail(f"no grid named {name!r} yet: --base is needed to make it")
        try:
            overrides = dict(parse_set_arg(text) for text in set_ or [])
            axes = dict(parse_axis(text) for text in grid_axis or [])
            subsets = [parse_subset(text) for text in modalities or []] or None
        except ValueError as exc:
            fail(str(exc))
            return
        judges = [{"judge": j.value, **({"model": judge_model, "protocol": protocol,
                                         "base_url": base_url} if j is GridJudge.gpt else {})}
                  for j in (judge or [GridJudge.offline])]
        generation = {**GENERATION_DEFAULTS, "batch_size": batch_size,
                      "max_new_tokens": max_new_tokens}
        request = GridRequest(name=name, base=base, datasets=list(dataset or TRAIN_SETS),
                              eval_set=eval_set, subsets=subsets, axes=axes,
                              preset=preset or "", overrides=overrides, judges=judges,
                              gpus=gpus, best_checkpoint=best_checkpoint,
                              generation=generation)
        if GridJudge.gpt in (judge or []):
            # Its judge jobs run after hours of training: a missing or rejected key, an
            # unreachable server or an unknown model is said now, before anything is queued.
            from engine.llm import check_endpoint

            check_endpoint(judge_model, base_url)
        if exists:
            differences = same_definition(db_engine, request)
            if differences:
                raise GridError(f"grid {name} exists with other settings ("
                                + "; ".join(differences) + f"); `ddft ablate run {name}` "
                                "alone continues it, or choose another name")
        else:
            create_grid(db_engine, request)
            console.print(f"grid {name} made", markup=False, highlight=False)
    counts = advance_grid(db_engine, name, workspace=path)
    console.print(f"grid {name}: {counts['queued']} jobs queued, {counts['resumed']} resumed, "
                  f"{counts['kept']} kept (finished, running or waiting); `ddft ablate status "
                  f"{name}` follows it, `ddft jobs list` shows the queue",
                  markup=False, highlight=False)
    if wait:
        _wait(db_engine, name, fmt.value)


def _wait(db_engine, name: str, fmt: str) -> None:
    from engine.jobs.grid import wait_for_grid

    def changed(status) -> None:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(status.counts.items()))
        console.print(f"grid {name}: {counts}", markup=False, highlight=False)

    try:
        status = wait_for_grid(db_engine, name, on_change=changed)
    except KeyboardInterrupt:
        console.print(f"stopped waiting; the grid's jobs go on. `ddft ablate status {name}` "
                      "follows them", markup=False, highlight=False)
        raise typer.Exit(130) from None
    if not status.done:
        print_table(_status_table(status))
        fail(f"grid {name} stopped: a job did not succeed (`ddft jobs list` names it); "
             f"`ddft ablate run {name}` resumes it")
    print_report(db_engine, name, fmt)


@app.command("status")
@friendly
def status(name: str, workspace: WorkspaceOption = None) -> None:
    """Each cell of a grid with the status of its training, generation and judging."""
    from engine.jobs.grid import grid_status

    _, db_engine = open_workspace(workspace)
    found = grid_status(db_engine, name)
    console.print(f"[bold]grid {escape(found.name)}[/] on {escape(found.eval_set)} · "
                  + ", ".join(f"{n} {state}" for state, n in sorted(found.counts.items())))
    print_table(_status_table(found))


@app.command("list")
@friendly
def list_grids(workspace: WorkspaceOption = None) -> None:
    """Every grid, newest first, with its cells' states."""
    from engine.jobs.grid import grid_status, list_grid_names

    _, db_engine = open_workspace(workspace)
    names = list_grid_names(db_engine)
    if not names:
        console.print("no grids yet: `ddft ablate run NAME --base MODEL` makes one")
        return
    table = Table("grid", "eval set", "cells", "states")
    for name in names:
        found = grid_status(db_engine, name)
        table.add_row(Text(name), Text(found.eval_set), str(len(found.cells)),
                      ", ".join(f"{n} {s}" for s, n in sorted(found.counts.items())))
    print_table(table)


@app.command("cancel")
@friendly
def cancel(name: str, workspace: WorkspaceOption = None) -> None:
    """Stop every queued and running job of a grid (a training run saves a checkpoint first);
    `ddft ablate run NAME` continues it later."""
    from engine.jobs.grid import cancel_grid

    _, db_engine = open_workspace(workspace)
    cancelled = cancel_grid(db_engine, name)
    console.print(f"grid {name}: cancel asked for {len(cancelled)} jobs"
                  + (f" ({', '.join(map(str, cancelled))})" if cancelled else ""),
                  markup=False, highlight=False)


@app.command("report")
@friendly
def report(
    name: str,
    fmt: Annotated[GridFormat, typer.Option("--format", help="Output format.")] = GridFormat.md,
    judge: Annotated[Optional[str], typer.Option(help="Judge (default: the most used in the "
                                                 "grid).")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="Protocol.")] = None,
    prompt_version: Annotated[Optional[str], typer.Option("--prompt-version",
                                                          help="Prompt version.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """The grid's comparison: every cell and the base as rows of Table 1 with intervals, each
    cell's paired tests against the base and the all-modalities cell (Holm-adjusted across the
    grid), and each cell's training cost."""
    _, db_engine = open_workspace(workspace)
    print_report(db_engine, name, fmt.value, judge=judge, protocol=protocol,
                 prompt_version=prompt_version)
