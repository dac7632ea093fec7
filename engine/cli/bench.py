"""`ddft bench`: benchmark commands whose numbers go in the README."""

from __future__ import annotations

import platform
from typing import Annotated

import typer

from engine.cli.console import console, friendly

app = typer.Typer(help="Benchmarks: each prints what it measured, how, and on what.",
                  no_args_is_help=True)


def _machine() -> str:
    return f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}"


@app.command("import")
@friendly
def bench_import_cmd(
    rows: Annotated[int, typer.Option(help="FoodX-251 rows to import.")] = 158_000,
    store_rows: Annotated[int, typer.Option(help="Samples in the store for the page and "
                                            "search timings.")] = 160_000,
    repeats: Annotated[int, typer.Option(help="Timed repeats of each query.")] = 20,
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
