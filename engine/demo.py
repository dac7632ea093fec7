"""`ddft demo`: a complete workspace on a CPU in minutes, through the same code a 7B run uses."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any, Callable, Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from db import queries
from db.store import open_store, resolve_workspace, session_scope
from engine.importers.kitchen import EVAL_SET, TRAIN_SETS, ImportSummary, import_kitchen
from engine.jobs.results import describe_result
from engine.jobs import (
    GenerateRequest,
    GroundRequest,
    JobError,
    JudgeRequest,
    TrainRequest,
    effective_status,
    resume_job,
    run_job,
    submit,
)

BASE_VARIANT = "tiny-base"
TUNED_VARIANT = "tiny-ddft"
TINY_MODEL_DIR = Path("models") / "tiny-videollava"
# What the demo's run uses: the tiny preset (the tiny model's measured settings), with
# checkpoints along the way.
DEMO_TRAINING: dict[str, str] = {"save_every": "250", "seed": "0"}
GENERATION = {"batch_size": 6, "max_new_tokens": 200}
# Runs a queued job in this process and returns its finished row: (engine, job_id, *,
# workspace, description). `ddft demo` hands in the CLI's progress bar.
JobRunner = Callable[..., Any]
# The demo's blind rating campaign: waiting for people, never filled in by the demo itself.
DEMO_CAMPAIGN = "demo-pairwise"
# `ddft demo --ablation`: the paper's modality grid on the kitchen, short runs of the tiny model.
ABLATION_GRID = "kitchen-ablation"
ABLATION_TRAINING: dict[str, str] = {"max_steps": "300", "save_every": "0", "seed": "0"}


def _steps_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        TimeElapsedColumn(),
        console=console,
    )


def build_and_import_kitchen(
    db_engine: Engine, root: Path, *, seed: int = 0, console: Console
) -> list[ImportSummary]:
    """Render the synthetic kitchen under `root` (reused when it exists) and import it."""
    from engine.kitchen.build import build_kitchen

    with _steps_bar(console) as bar:
        task = bar.add_task("kitchen", total=None, message="")

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, message=what)

        build_kitchen(root, seed=seed, progress=update)
    return import_kitchen(db_engine, root)


def kitchen_corpus(db_engine: Engine) -> list[str]:
    """Every prompt and answer of the kitchen datasets: what the tiny tokenizer is trained on."""
    from engine.model.loading import format_prompt

    texts: list[str] = []
    with session_scope(db_engine) as session:
        for name in (*TRAIN_SETS, EVAL_SET):
            dataset = queries.get_dataset(session, name=name)
            if dataset is None:
                continue
            for sample in queries.list_samples(session, dataset_id=dataset.id, limit=None):
                texts.append(format_prompt(sample.modality, sample.prompt) + " " + sample.answer)
    return texts


def _stored_generations(db_engine: Engine, variant: str, eval_set: str) -> tuple[int, int]:
    with session_scope(db_engine) as session:
        v = queries.get_variant(session, name=variant)
        d = queries.get_dataset(session, name=eval_set)
        total = queries.count_samples(session, dataset_id=d.id, included=True)
        stored = len({g.sample_id for g in queries.list_generations(session, variant_id=v.id,
                                                                    dataset_id=d.id)})
    return stored, total


def _ungrounded(db_engine: Engine, variant: str, eval_set: str) -> int:
    """Recipe generations of `variant` on `eval_set` with no grounding stored yet."""
    with session_scope(db_engine) as session:
        v = queries.get_variant(session, name=variant)
        d = queries.get_dataset(session, name=eval_set)
        return sum(1 for g in queries.list_generations(session, variant_id=v.id, dataset_id=d.id)
                   if not queries.groundings_for_generation(session, generation_id=g.id))


def _unjudged(db_engine: Engine, eval_set: str) -> int:
    from engine.evaluation import offline_judge as offline

    with session_scope(db_engine) as session:
        d = queries.get_dataset(session, name=eval_set)
        return sum(
            1
            for g in queries.list_generations(session, dataset_id=d.id)
            if queries.find_judgment(session, generation_id=g.id, judge=offline.JUDGE_NAME,
                                     protocol=offline.PROTOCOL,
                                     prompt_version=offline.PROMPT_VERSION) is None
        )


def _run(db_engine: Engine, request: Any, *, workspace: Path, description: str,
         run: JobRunner | None, resume: int | None = None) -> Any:
    """Submit `request` as the CLI does (or, given `resume`, resume that job of an earlier demo)
    and run its job here with `run` (without one, quietly); returns the finished Job row.
    Raises JobError for a request the store refuses, and when the job does not succeed (Ctrl-C
    stops the demo there; running it again continues)."""
    if resume is None:
        job_id = submit(db_engine, request, workspace=workspace, detach=False)
    else:
        job_id = resume_job(db_engine, resume, workspace=workspace, detach=False)
    if run is None:
        job = run_job(db_engine, job_id, workspace=workspace)
    else:
        job = run(db_engine, job_id, workspace=workspace, description=description)
    if job.status != "succeeded":
        raise JobError(f"job {job_id} ({description}) {job.status}"
                       + (f": {job.message}" if job.status == "interrupted" else "")
                       + "; `ddft demo` again continues where it stopped")
    return job


def _stopped_train_job(db_engine: Engine, variant: str) -> int | None:
    """The newest train job of `variant` that an earlier demo left interrupted (a signal, a
    kill, a crash) or cancelled: resumed from its last checkpoint, not started again."""
    with session_scope(db_engine) as session:
        for job in queries.list_jobs(session, kind="train"):
            if job.params.get("variant") == variant:
                return job.id if effective_status(job) in ("interrupted", "cancelled") else None
    return None


def train_tuned_variant(db_engine: Engine, workspace: Path, model_dir: Path, *,
                        console: Console, run: Optional[JobRunner] = None) -> Any:
    """The demo's LoRA run: nothing when its variant exists; the demo's own run resumed from
    its last checkpoint when an earlier demo left it interrupted or cancelled; a new run
    otherwise. Returns the finished Job row, or None when there was nothing to do. Raises
    JobError when the run does not succeed."""
    with session_scope(db_engine) as session:
        tuned = queries.get_variant(session, name=TUNED_VARIANT)
    if tuned is not None:
        console.print(f"    {TUNED_VARIANT} exists already (job {tuned.job_id})")
        return None
    request = TrainRequest(variant=TUNED_VARIANT, base=str(model_dir), preset="tiny",
                           datasets={name: 1.0 for name in TRAIN_SETS},
                           overrides=DEMO_TRAINING)
    stopped = _stopped_train_job(db_engine, TUNED_VARIANT)
    if stopped is not None:
        console.print(f"    resuming job {stopped} from its last checkpoint")
    job = _run(db_engine, request, workspace=workspace, description="train", run=run,
               resume=stopped)
    console.print(f"    job {job.id} {job.status}: final loss "
                  f"{job.result.get('final_loss', float('nan')):.4f}")
    return job


def run_demo(workspace: str | Path | None, *, console: Console,
             run: Optional[JobRunner] = None, ablation: bool = False) -> Path:
    """Build (or finish building) the demo workspace and print its report; returns its path.
    `run` runs each job (`ddft demo` shows a progress bar); without it jobs run quietly. With
    `ablation`, then run the modality ablation grid (`run_ablation`).

    Each step reuses what an earlier run stored, so a second run only prints the report.
    """
    from engine.model.tiny import build_tiny_model

    started = time.monotonic()
    path = resolve_workspace(workspace)
    db_engine = open_store(path, announce=lambda line: console.print(line, markup=False,
                                                                     highlight=False))
    console.rule(escape(f"ddft demo · {path}"))

    console.print("[bold]1/8[/] synthetic kitchen")
    for summary in build_and_import_kitchen(db_engine, path / "kitchen", console=console):
        console.print(f"    {summary.dataset}: {summary.imported} imported, "
                      f"{summary.skipped} already there", markup=False)

    console.print("[bold]2/8[/] tiny Video-LLaVA (built offline)")
    model_dir = build_tiny_model(path / TINY_MODEL_DIR, kitchen_corpus(db_engine), seed=0)
    with session_scope(db_engine) as session:
        if queries.get_variant(session, name=BASE_VARIANT) is None:
            queries.create_variant(session, name=BASE_VARIANT, base_model=str(model_dir),
                                   description="tiny Video-LLaVA, random weights")
    console.print(f"    {model_dir}", markup=False)

    console.print("[bold]3/8[/] LoRA training on images, videos and questions")
    train_tuned_variant(db_engine, path, model_dir, console=console, run=run)

    console.print("[bold]4/8[/] generating recipes for held-out videos")
    for variant in (BASE_VARIANT, TUNED_VARIANT):
        stored, total = _stored_generations(db_engine, variant, EVAL_SET)
        if stored >= total:
            console.print(f"    {variant}: {stored} of {total} stored already")
            continue
        job = _run(db_engine, GenerateRequest(variant=variant, eval_set=EVAL_SET, **GENERATION),
                   workspace=path, description=variant, run=run)
        console.print(f"    job {job.id} {job.status}: {describe_result(job.result)}",
                      markup=False)

    console.print("[bold]5/8[/] offline judge")
    if _unjudged(db_engine, EVAL_SET):
        job = _run(db_engine, JudgeRequest(eval_set=EVAL_SET), workspace=path,
                   description="judge", run=run)
        console.print(f"    job {job.id} {job.status}: {describe_result(job.result)}",
                      markup=False)
    else:
        console.print("    every generation judged already")

    console.print(f"[bold]6/8[/] keyframe grounding of {TUNED_VARIANT}'s recipes")
    if _ungrounded(db_engine, TUNED_VARIANT, EVAL_SET):
        job = _run(db_engine, GroundRequest(variant=TUNED_VARIANT, eval_set=EVAL_SET),
                   workspace=path, description="ground", run=run)
        console.print(f"    job {job.id} {job.status}: {job.result.get('grounded', 0)} grounded")
    else:
        console.print("    every recipe grounded already")

    console.print("[bold]7/8[/] a blind rating campaign, waiting for raters")
    _demo_campaign(db_engine, console)

    console.print("[bold]8/8[/] report (the paper's Table 1, and what comes with it)")
    from engine.evaluation.report import ReportSelection, build_report, render_markdown

    with session_scope(db_engine) as session:
        report = build_report(session, ReportSelection(eval_set=EVAL_SET))
    console.print(render_markdown(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"\ndemo ready in {time.monotonic() - started:.0f} s · workspace {path}",
                  markup=False)
    reopen = shlex.join(["ddft", "tui", "--workspace", str(path)])
    rate = shlex.join(["ddft", "rate", "--rater", "YOUR-NAME", "--workspace", str(path)])
    console.print(f"open it again with `{reopen}`; rate blind with `{rate}`", markup=False)
    if ablation:
        run_ablation(db_engine, path, model_dir, console=console)
    return path


def run_ablation(db_engine: Engine, workspace: Path, model_dir: Path, *,
                 console: Console) -> None:
    """The paper's modality ablation on the kitchen: image only, video only, questions only and
    all three (short runs of the tiny model), each generating for the held-out videos and
    judged offline, against the untuned base, through the job queue (one training run on the
    device at a time); waits for it and prints the grid's report. Running it again continues
    the grid. Raises JobError when one of its jobs does not succeed."""
    from engine.evaluation.grid_report import build_grid_report, render_markdown
    from engine.jobs.grid import (
        GridRequest,
        advance_grid,
        create_grid,
        grid_status,
        list_grid_names,
        wait_for_grid,
    )

    started = time.monotonic()
    console.rule("modality ablation grid")
    if ABLATION_GRID not in list_grid_names(db_engine):
        create_grid(db_engine, GridRequest(
            name=ABLATION_GRID, base=str(model_dir), datasets=list(TRAIN_SETS),
            eval_set=EVAL_SET, preset="tiny", overrides=dict(ABLATION_TRAINING),
            generation=dict(GENERATION)))
    counts = advance_grid(db_engine, ABLATION_GRID, workspace=workspace)
    console.print(f"    {ABLATION_GRID}: {counts['queued']} jobs queued, {counts['resumed']} "
                  f"resumed, {counts['kept']} kept; `ddft jobs list` shows the queue",
                  markup=False)

    def changed(status: Any) -> None:
        states = ", ".join(f"{cell.variant} {cell.state}" for cell in status.cells)
        console.print(f"    {time.monotonic() - started:4.0f} s  {states}", markup=False)

    status = wait_for_grid(db_engine, ABLATION_GRID, on_change=changed)
    if not status.done:
        raise JobError(f"grid {ABLATION_GRID} stopped: a job did not succeed (`ddft jobs "
                       f"list`); `ddft demo --ablation` again continues it")
    states = {cell.variant: cell.state for cell in grid_status(db_engine, ABLATION_GRID).cells}
    with session_scope(db_engine) as session:
        report = build_grid_report(session, ABLATION_GRID, states=states)
    console.print(render_markdown(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"grid ready in {time.monotonic() - started:.0f} s", markup=False)


def _demo_campaign(db_engine: Engine, console: Console) -> None:
    """A pairwise campaign of the base against the tuned variant, two raters per item, with a
    fixed seed; the demo rates nothing itself."""
    from db.campaigns import get_campaign
    from engine.evaluation.rating import create_campaign

    with session_scope(db_engine) as session:
        exists = get_campaign(session, name=DEMO_CAMPAIGN) is not None
    if exists:
        console.print(f"    {DEMO_CAMPAIGN} exists already")
        return
    created = create_campaign(db_engine, name=DEMO_CAMPAIGN, eval_set=EVAL_SET,
                              variants=[BASE_VARIANT, TUNED_VARIANT], mode="pairwise",
                              raters_per_item=2, seed=0,
                              description="the demo's base against its LoRA run")
    console.print(f"    {DEMO_CAMPAIGN}: {created.items} pairwise items, 2 raters each")
