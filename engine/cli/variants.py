"""`ddft variants`: model variants (a base model, or a base plus a LoRA adapter), from runs and
checkpoints, and their export as a peft adapter or a merged model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from engine.cli.console import WorkspaceOption, console, fail, friendly, open_workspace

app = typer.Typer(help="Model variants: base models and trained adapters.", no_args_is_help=True)


@app.command("list")
@friendly
def list_variants(workspace: WorkspaceOption = None) -> None:
    """Model variants that can generate."""
    from db import queries
    from db.store import session_scope

    _, engine = open_workspace(workspace)
    with session_scope(engine) as session:
        variants = queries.list_variants(session)
    if not variants:
        console.print("no model variants yet: `ddft demo` or `ddft train` makes them")
        return
    table = Table("id", "name", "base model", "adapter", "job")
    for v in variants:
        table.add_row(str(v.id), v.name, v.base_model, v.adapter_path or "—",
                      str(v.job_id or "—"))
    console.print(table)


@app.command("add")
@friendly
def add_variant(
    name: str,
    base: Annotated[str, typer.Option(help="Hub id or local model directory.")],
    adapter: Annotated[Optional[Path], typer.Option(help="LoRA adapter directory.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Register a base model (and optionally an adapter) as a variant."""
    from db import queries
    from db.store import session_scope

    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        fail(f"{adapter}: not a LoRA adapter folder (adapter_config.json missing)")
    _, engine = open_workspace(workspace)
    with session_scope(engine) as session:
        if queries.get_variant(session, name=name):
            fail(f"a model variant named {name!r} exists already")
        queries.create_variant(session, name=name, base_model=base,
                               adapter_path=str(adapter.resolve()) if adapter else None)
    console.print(f"added variant {name}")
