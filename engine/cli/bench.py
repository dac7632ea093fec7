"""`ddft bench`: benchmark commands whose numbers go in the README."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.console import console, fail, friendly

app = typer.Typer(help="Benchmarks: each prints what it measured, how, and on what.",
                  no_args_is_help=True)


def _machine() -> str:
    return f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}"


@app.command("import")
@friendly
def bench_import_cmd(
    rows: Annotated[int, typer.Option(min=1, help="FoodX-251 rows to import.")] = 158_000,
    store_rows: Annotated[int, typer.Option(min=1, help="Samples in the store for the page and "
                                            "search timings.")] = 160_000,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats of each query.")] = 20,
) -> None:
    """Import speed (FoodX-251 format) and Samples-screen query speed at full-dataset scale."""
    from engine.bench import bench_import

    console.print(f"ddft bench import · {_machine()}")
    result = bench_import(rows=rows, store_rows=store_rows, repeats=repeats,
                          progress=lambda message: console.print(f"  {message}"))
    for timing in result.timings:
        console.print(timing.line(), markup=False, highlight=False)
    for note in result.notes:
        console.print(note, markup=False, highlight=False)


@app.command("train")
@friendly
def bench_train_cmd(
    batch_sizes: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,2,4",
    checkpointing: Annotated[str, typer.Option(
        help="Gradient checkpointing: on, off or on,off.")] = "on,off",
    bf16: Annotated[str, typer.Option(
        help="The bf16 setting (CUDA only): on, off or on,off.")] = "on,off",
    steps: Annotated[int, typer.Option(min=1, help="Timed steps per configuration.")] = 8,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps before them.")] = 3,
    preset: Annotated[str, typer.Option(
        help="Training preset: a name (paper, tiny) or a .toml file.")] = "paper",
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override one preset setting (repeat), as `ddft train --set`.",
        show_default=False)] = None,
    peak_tflops: Annotated[float | None, typer.Option(
        min=0, help="Peak dense bf16 TFLOP/s for MFU (default: from the GPU's name).",
        show_default=False)] = None,
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="The scaled-down CPU architecture even when a GPU is there.")] = False,
    budget_s: Annotated[float | None, typer.Option(
        min=0, help="Skip configurations that would start after this many seconds.",
        show_default=False)] = None,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write every number to this JSON file.", show_default=False)] = None,
) -> None:
    """Speed of the product's LoRA training step (engine.train's set-up and optimizer step, the
    preset's settings) on the Video-LLaVA-7B architecture with random weights and synthetic
    8-frame videos: step time, tokens/s, samples/s, peak GPU memory and MFU over a grid of batch
    size, gradient checkpointing and bf16. Without a GPU, a scaled-down smoke test. Same as
    `python -m engine.bench_train`."""
    from engine.bench_train import (
        BenchTrainError,
        bench_train,
        parse_batch_sizes,
        parse_overrides,
        parse_switches,
        write_json,
    )

    try:
        result = bench_train(
            batch_sizes=parse_batch_sizes(batch_sizes),
            checkpointing=parse_switches("--checkpointing", checkpointing),
            bf16=parse_switches("--bf16", bf16),
            steps=steps, warmup=warmup, preset=preset, overrides=parse_overrides(set_),
            peak_tflops=peak_tflops,
            smoke=True if smoke else None, budget_s=budget_s,
            progress=lambda message: console.print(f"  {message}", markup=False,
                                                   highlight=False))
    except BenchTrainError as exc:
        fail(str(exc))
    for line in result.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if json_path is not None:
        write_json(result, json_path)
        console.print(f"wrote {json_path}", markup=False, highlight=False)


@app.command("generate")
@friendly
def bench_generate_cmd(
    videos: Annotated[int | None, typer.Option(
        min=1, help="Synthetic videos per batch size (default: 16 on CPU, 64 on a GPU).",
        show_default=False)] = None,
    batch_sizes: Annotated[str | None, typer.Option(
        help="Batch sizes, comma-separated (default: 1,8,16 on CPU, 1,8,32 on a GPU).",
        show_default=False)] = None,
    new_tokens: Annotated[int | None, typer.Option(
        min=1, help="Tokens generated per video, forced (default: 32 on CPU, 128 on a GPU).",
        show_default=False)] = None,
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="The tiny model on CPU even when a GPU is there.")] = False,
) -> None:
    """Batched against one-at-a-time video generation at a fixed output length: seconds per
    video, videos/min and the speed-up. The tiny model on CPU; on a GPU, the Video-LLaVA-7B
    architecture with random weights."""
    from engine.bench_generate import (
        BenchGenerateError,
        bench_generate,
        parse_batch_sizes,
    )

    console.print(f"ddft bench generate · {_machine()}", markup=False, highlight=False)
    try:
        result = bench_generate(
            videos=videos, new_tokens=new_tokens, smoke=True if smoke else None,
            batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes else None,
            progress=lambda message: console.print(f"  {message}", markup=False,
                                                   highlight=False, soft_wrap=True))
    except BenchGenerateError as exc:
        fail(str(exc))
    for line in result.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("judge")
@friendly
def bench_judge_cmd(
    judgments: Annotated[int, typer.Option(min=1, help="Generations to judge.")] = 408,
    latency_ms: Annotated[float, typer.Option(
        min=0, help="How long the local server takes to answer each request.")] = 200.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 16,
) -> None:
    """The GPT judge against a local OpenAI-compatible server on 127.0.0.1 that answers slowly:
    a run with an empty cache, a re-run into a fresh store from the cache, and a re-run on the
    same store. No key of yours is read and nothing leaves the machine."""
    from engine.bench_judge import bench_judge

    if judgments < 1 or concurrency < 1 or latency_ms < 0:
        fail("--judgments and --concurrency must be at least 1, --latency-ms at least 0")
    console.print(f"ddft bench judge · {_machine()}", markup=False, highlight=False)
    result = bench_judge(judgments=judgments, latency_s=latency_ms / 1000,
                         concurrency=concurrency,
                         progress=lambda message: console.print(f"  {message}", markup=False,
                                                                highlight=False,
                                                                soft_wrap=True))
    for line in result.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("compare")
@friendly
def bench_compare_cmd(
    samples: Annotated[int, typer.Option(min=1, help="Eval videos in the store.")] = 408,
    variants: Annotated[int, typer.Option(min=1, help="Model variants, each with "
                                          "generations.")] = 4,
    repeats: Annotated[int, typer.Option(min=1, help="Timed loads of each.")] = 20,
) -> None:
    """The Compare screen's loaders on a store of synthetic rows (no model): one page (an eval
    set's sample list over every variant) and one sample's view, median and max."""
    from engine.bench_compare import BenchCompareError, bench_compare
    # The Compare screen's own loaders: the CLI, the composition root, may open the workbench.
    from workbench.data.compare import load_choices, load_view

    console.print(f"ddft bench compare · {_machine()}", markup=False, highlight=False)
    try:
        result = bench_compare(load_choices=load_choices, load_view=load_view, samples=samples, variants=variants, repeats=repeats,
                               progress=lambda message: console.print(
                                   f"  {message}", markup=False, highlight=False))
    except BenchCompareError as exc:
        fail(str(exc))
    for line in result.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("raters")
@friendly
def bench_raters_cmd(
    raters: Annotated[int, typer.Option(min=1, help="Rater processes.")] = 16,
    samples: Annotated[int, typer.Option(min=1, help="Pairwise items in the campaign.")] = 300,
    raters_per_item: Annotated[int, typer.Option(min=1, help="Raters each item goes to.")] = 3,
    step_ms: Annotated[float, typer.Option(
        help="The job writer's step: progress and metrics written this often.")] = 50.0,
    job: Annotated[bool, typer.Option(help="Run the training job's writer beside them.")] = True,
) -> None:
    """Many raters at once on SQLite: rater processes claiming and saving through
    db.campaigns (no think time; every fifth item skipped, every seventh rating undone and given
    again) while a process writes a training job's progress and metrics; saves/s, p50, p95 and
    worst save time, every error that reached a rater or the job, and whether any rating was
    lost or stored twice."""
    from engine.bench_raters import bench_raters

    console.print(f"ddft bench raters · {_machine()}", markup=False, highlight=False)
    result = bench_raters(raters=raters, samples=samples, raters_per_item=raters_per_item,
                          step_s=step_ms / 1000, job=job,
                          progress=lambda message: console.print(
                              f"  {message}", markup=False, highlight=False))
    for line in result.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


from engine.cli.timeaware import bench_timestamps  # noqa: E402 (registered with the group)

app.command("timestamps")(bench_timestamps)
