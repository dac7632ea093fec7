"""`ddft data`: build and import the synthetic kitchen, list datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from engine.cli.console import WorkspaceOption, console, friendly, open_workspace

app = typer.Typer(help="Datasets: import, list.", no_args_is_help=True)


@app.command("kitchen")
@friendly
def kitchen(
    workspace: WorkspaceOption = None,
    root: Annotated[Optional[Path], typer.Option(help="Where to build the kitchen "
                                                 "(default: WORKSPACE/kitchen).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the rendering.")] = 0,
) -> None:
    """Build the synthetic kitchen (reusing an existing build) and import it."""
    from engine.demo import build_and_import_kitchen

    path, engine = open_workspace(workspace)
    for summary in build_and_import_kitchen(engine, root or path / "kitchen", seed=seed,
                                            console=console):
        console.print(f"{summary.dataset}: imported {summary.imported}, "
                      f"skipped {summary.skipped} (already present)")


@app.command("list")
@friendly
def list_datasets(workspace: WorkspaceOption = None) -> None:
    """Datasets with their sample counts."""
    from db import queries
    from db.store import session_scope

    _, engine = open_workspace(workspace)
    table = Table("id", "name", "modality", "purpose", "source", "samples", "included")
    with session_scope(engine) as session:
        datasets = queries.list_datasets(session)
        for d in datasets:
            table.add_row(str(d.id), d.name, d.modality, d.purpose, d.source,
                          str(queries.count_samples(session, dataset_id=d.id)),
                          str(queries.count_samples(session, dataset_id=d.id, included=True)))
    if not datasets:
        console.print("no datasets yet: `ddft data kitchen` or `ddft demo` makes some")
        return
    console.print(table)
