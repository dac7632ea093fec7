"""`ddft`: every step of directed domain fine-tuning, headless; `ddft tui` opens the workbench."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from engine.cli import ablate as ablate_cli
from engine.cli import bench as bench_cli
from engine.cli import data as data_cli
from engine.cli import grounding as grounding_cli
from engine.cli import jobs as jobs_cli
from engine.cli import rating as rating_cli
from engine.cli import report as report_cli
from engine.cli import serve as serve_cli
from engine.cli import variants as variants_cli
from engine.llm import BASE_URL_VARIABLE
from engine.cli.console import (
    WorkspaceOption,
    checked_name,
    console,
    fail,
    friendly,
    launch,
    open_workspace,
    run_foreground,
)

app = typer.Typer(
    name="ddft",
    help="Directed domain fine-tuning of Video-LLaVA: curate, train, generate, judge, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(jobs_cli.app, name="jobs")
app.add_typer(data_cli.app, name="data")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(variants_cli.app, name="variants")
app.add_typer(rating_cli.app, name="campaign")
app.command("rate")(rating_cli.rate)
app.command("report")(report_cli.report)
app.command("serve")(serve_cli.serve)
app.add_typer(ablate_cli.app, name="ablate")
grounding_cli.register(app)


def start_queue_on_open() -> None:
    """Have every store this process opens start the head of its host's job queue when it may
    start (queued jobs outlive the workbench and a reboot: the next command starts them)."""
    from db.store import add_open_listener
    from engine.jobs.runner import start_queued_on_open

    add_open_listener(start_queued_on_open)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("ddft")
        except PackageNotFoundError:
            number = "unknown (not installed as a package)"
        console.print(f"ddft {number}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print ddft's version (from the installed package) and exit.")] = False,
) -> None:
    """Directed domain fine-tuning of Video-LLaVA: curate, train, generate, judge, report."""


DetachOption = Annotated[
    bool, typer.Option("--detach", help="Run as a background job and return at once.")
]


@app.command()
@friendly
def demo(
    workspace: WorkspaceOption = None,
    no_tui: Annotated[bool, typer.Option("--no-tui", help="Print the report; do not open the "
                                         "workbench.")] = False,
    ablation: Annotated[bool, typer.Option("--ablation", help="Then run the modality ablation "
                                           "grid on the kitchen (each modality alone and all "
                                           "three, against the base) through the job queue, and "
                                           "print its comparison report.")] = False,
) -> None:
    """Build a complete demo workspace (kitchen, tiny model, LoRA run, generations, judge,
    report) and open the workbench on it. A second run reuses what exists."""
    from functools import partial

    from engine.demo import run_demo

    # The demo runs its jobs through the CLI's progress bar, handed in: it never imports the CLI.
    path = run_demo(workspace, console=console, run=partial(run_foreground, out=console),
                    ablation=ablation)
    if not no_tui:
        from engine.cli.tui import not_a_terminal

        missing = not_a_terminal()
        if missing:  # built all the same; only the screen needs a terminal
            console.print(f"{missing} is not a terminal, so the workbench is not opened; "
                          f"`ddft tui --workspace {path}` opens it in one", markup=False,
                          highlight=False)
            return
        _open_tui(path)


def _open_tui(path: Path) -> None:
    from engine.cli.tui import open_workbench

    code = open_workbench(path)
    if code:
        raise typer.Exit(code)


@app.command()
@friendly
def tui(workspace: WorkspaceOption = None) -> None:
    """Open the workbench on a workspace."""
    from db.store import resolve_workspace

    _open_tui(resolve_workspace(workspace))


@app.command()
@friendly
def train(
    variant: Annotated[Optional[str], typer.Option(help="Name of the model variant the run "
                                                   "produces.", callback=checked_name("variant"))
                       ] = None,
    base: Annotated[Optional[str], typer.Option(help="Base model: hub id or local directory.")]
    = None,
    preset: Annotated[Optional[str], typer.Option(
        help="Preset name (paper, tiny) or a .toml file; default: tiny for the tiny model, "
             "paper otherwise.")] = None,
    dataset: Annotated[
        Optional[list[str]],
        typer.Option("--dataset", "-d", metavar="NAME[=WEIGHT]",
                     help="Training dataset with its mixture weight (repeat); default: the "
                          "kitchen's image, video and text sets, weight 1."),
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="KEY=VALUE",
                     help="Override one preset setting (repeat), e.g. --set lora_r=64."),
    ] = None,
    # Ranges of these settings are checked with every other setting by TrainRequest.problems,
    # which names all the bad ones in one message.
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (max_steps).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Samples per micro-batch.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="LoRA learning rate.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    gradient_checkpointing: Annotated[Optional[bool], typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations to save memory.", show_default=False)] = None,
    gpus: Annotated[int, typer.Option(help="GPUs to train on, data-parallel.")] = 1,
    processes: Annotated[int, typer.Option(help="Data-parallel processes on the CPU (gloo): the "
                                           "multi-GPU path without a GPU.")] = 1,
    variant_checkpoint: Annotated[str, typer.Option(
        "--variant-checkpoint", help="The checkpoint the variant is made from: final (the "
                                     "last) or best (the lowest validation loss).")] = "final",
    resume: Annotated[Optional[int], typer.Option(
        "--resume", metavar="JOB_ID", min=1,
        help="Continue this train job from its last checkpoint (as the same job).")] = None,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """LoRA-train a base model on included samples of the given datasets.

    Settings come from a preset, with --set overrides on top; `--resume JOB_ID` continues an
    interrupted, failed or cancelled run from its last checkpoint.
    """
    from engine.importers.kitchen import TRAIN_SETS
    from engine.jobs.requests import TrainRequest, parse_dataset_arg, parse_set_arg

    path, db_engine = open_workspace(workspace)
    if resume is not None:
        _resume_train(db_engine, path, resume, detach=detach)
        return
    if not variant or not base:
        fail("--variant and --base are needed (or --resume JOB_ID to continue a run)")
    try:
        datasets = dict(parse_dataset_arg(text) for text in dataset or [])
        overrides = dict(parse_set_arg(text) for text in set_ or [])
    except ValueError as exc:
        fail(str(exc))
    flags = {"max_steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
             "seed": seed, "gradient_checkpointing": gradient_checkpointing}
    overrides.update({k: str(v).lower() if isinstance(v, bool) else str(v)
                      for k, v in flags.items() if v is not None})
    request = TrainRequest(variant=variant, base=base, preset=preset or "",
                           datasets=datasets or {name: 1.0 for name in TRAIN_SETS},
                           overrides=overrides, gpus=gpus, processes=processes,
                           variant_checkpoint=variant_checkpoint)
    launch(db_engine, path, request, detach=detach)


def _resume_train(db_engine, path: Path, job_id: int, *, detach: bool) -> None:
    from db import queries
    from db.store import session_scope
    from engine.jobs import refresh_job_states, resume_job

    refresh_job_states(db_engine)
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None or job.kind != "train":
            fail(f"no train job with id {job_id}; `ddft jobs list` shows the jobs")
    resume_job(db_engine, job_id, workspace=path, detach=detach)
    if detach:
        console.print(f"job {job_id} resumes from its last checkpoint in the background; "
                      f"`ddft jobs show {job_id}` follows it")
        return
    from engine.jobs.results import describe_result

    job = run_foreground(db_engine, job_id, workspace=path, description=f"train job {job_id}")
    console.print(f"job {job_id} {job.status}: {describe_result(job.result)}", markup=False,
                  highlight=False)
    if job.status != "succeeded":
        raise typer.Exit(1)


@app.command()
@friendly
def generate(
    variant: Annotated[str, typer.Option(help="Model variant to generate with.")],
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    batch_size: Annotated[int, typer.Option(min=1, help="Generations per batch.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer in tokens.")] = 256,
    include_failed: grounding_cli.IncludeFailedOption = False,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """Generate recipes for an eval set (greedy); stored generations are skipped. A video or
    image that cannot be read is counted as failed with its reason; the others go on."""
    from db import queries
    from db.store import session_scope
    from engine.jobs import GenerateRequest

    path, db_engine = open_workspace(workspace)
    request = GenerateRequest(variant=variant, eval_set=eval_set, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, include_failed=include_failed)
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=eval_set)
    if dataset is not None and dataset.purpose != "eval":
        # Allowed (it shows how well a variant fits what it learned), but never a held-out
        # score: say so before the numbers are mistaken for one.
        console.print(f"[yellow]note:[/] {escape(eval_set)} is a training set; its scores "
                      "measure how well a variant fits its training data, not held-out videos",
                      highlight=False)
    grounding_cli.print_failures(launch(db_engine, path, request, detach=detach))


class JudgeName(str, Enum):
    offline = "offline"
    gpt = "gpt"


class Protocol(str, Enum):
    paper = "paper"
    upstream = "upstream"
    two_stage = "two-stage"
    pairwise = "pairwise"


@app.command()
@friendly
def judge(
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    variant: Annotated[
        Optional[list[str]], typer.Option(help="Only these variants (repeat); default all.")
    ] = None,
    judge_name: Annotated[JudgeName, typer.Option("--judge", help="offline (no network) or gpt "
                                                  "(any OpenAI-compatible endpoint).")
                          ] = JudgeName.offline,
    protocol: Annotated[Protocol, typer.Option(help="GPT judge protocol.")] = Protocol.paper,
    model: Annotated[str, typer.Option(help="GPT judge model.")] = "gpt-3.5-turbo",
    base_url: Annotated[Optional[str], typer.Option(envvar=BASE_URL_VARIABLE, show_default=False,
                                                    help="OpenAI-compatible endpoint (default: "
                                                    "OpenAI's).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="GPT requests in flight.")] = 16,
    pair: Annotated[Optional[list[str]], typer.Option(help="Pairwise: the two variants "
                                                      "(give --pair twice).")] = None,
    workspace: WorkspaceOption = None,
    detach: DetachOption = False,
) -> None:
    """Score stored generations against their references; judged ones are skipped. The GPT
    judge's key comes from $OPENAI_API_KEY and is never stored."""
    from db.redaction import redact_secrets
    from engine.jobs import JudgeRequest

    if base_url and redact_secrets(base_url) != base_url:
        # The job's stored params keep the URL with its credentials redacted; the job, here or
        # detached (it inherits this environment), takes them from $OPENAI_BASE_URL.
        import os

        os.environ[BASE_URL_VARIABLE] = base_url
    path, db_engine = open_workspace(workspace)
    request = JudgeRequest(eval_set=eval_set, variants=list(variant or []),
                           judge=judge_name.value, protocol=protocol.value, model=model,
                           base_url=base_url, concurrency=concurrency, pair=pair or None)
    if request.judge == "gpt":
        # A missing or rejected key, an unreachable server or an unknown model is said here,
        # before a job is made, not as a failed job in the list (the request's own problems,
        # an unknown eval set or variant, are said first, by launch).
        from db.store import session_scope
        from engine.llm import check_endpoint

        with session_scope(db_engine) as session:
            if not request.problems(session):
                check_endpoint(model, base_url)
    launch(db_engine, path, request, detach=detach)


def main() -> None:
    start_queue_on_open()
    app()


if __name__ == "__main__":
    main()
