"""`ddft variants`: model variants (a base model, or a base plus a LoRA adapter), from runs and
checkpoints, and their export as a peft adapter or a merged model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from engine.cli.console import (
    WorkspaceOption,
    checked_name,
    console,
    fail,
    friendly,
    open_workspace,
    print_table,
)

app = typer.Typer(help="Model variants: base models and trained adapters.", no_args_is_help=True)


# The keys of `ddft variants list --json`, in order: a script may rely on them.
VARIANT_KEYS = ("id", "name", "base_model", "adapter_path", "job_id", "checkpoint_id",
                "description")


@app.command("list")
@friendly
def list_variants(
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of objects with "
                                          "the keys " + ", ".join(VARIANT_KEYS) + ".")] = False,
) -> None:
    """Model variants that can generate."""
    import json

    from db import queries
    from db.store import session_scope

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        variants = queries.list_variants(session)
    if as_json:
        rows = [{key: getattr(v, key, None) for key in VARIANT_KEYS} for v in variants]
        # Plain stdout, not the console: no markup, no wrapping, nothing highlighted.
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not variants:
        console.print("no model variants yet: `ddft demo` or `ddft train` makes them")
        return
    table = Table("id", "name", "base model", "adapter", "job")
    for v in variants:
        table.add_row(str(v.id), Text(v.name), Text(v.base_model), Text(v.adapter_path or "—"),
                      str(v.job_id or "—"))
    print_table(table)


@app.command("add")
@friendly
def add_variant(
    name: Annotated[str, typer.Argument(help="Name of the new variant.",
                                        callback=checked_name("variant"))],
    base: Annotated[str, typer.Option(help="Hub id or local model directory.")],
    adapter: Annotated[Optional[Path], typer.Option(help="LoRA adapter directory.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Register a base model (and optionally an adapter) as a variant."""
    from db import queries
    from db.store import session_scope

    from engine.jobs.train_settings import resolve_base

    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        fail(f"{adapter}: not a LoRA adapter folder (adapter_config.json missing)")
    source, local = resolve_base(base)
    if local and not (Path(source) / "config.json").is_file():
        fail(f"base: {base}: expected a model directory with config.json, found none")
    _, db_engine = open_workspace(workspace, create=True)  # adding a variant makes a store
    with session_scope(db_engine) as session:
        if queries.get_variant(session, name=name):
            fail(f"a model variant named {name!r} exists already")
        queries.create_variant(session, name=name, base_model=base,
                               adapter_path=str(adapter.resolve()) if adapter else None)
    console.print(f"added variant {name}", markup=False, highlight=False)


@app.command("from-checkpoint")
@friendly
def from_checkpoint(
    job_id: Annotated[int, typer.Argument(help="The training run (job id).")],
    name: Annotated[str, typer.Option(help="Name of the new variant.",
                                      callback=checked_name("variant"))],
    step: Annotated[Optional[int], typer.Option(min=0, help="Checkpoint step (default: the "
                                                "last).")
                    ] = None,
    best: Annotated[bool, typer.Option("--best", help="The checkpoint with the lowest "
                                       "validation loss (the run must hold samples out: "
                                       "val_fraction > 0).")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Make a variant of any checkpoint of a training run, so generation can use it."""
    from db import queries
    from db.store import session_scope
    from engine.jobs import TrainRequest
    from engine.jobs.train_settings import TrainError, best_checkpoint

    if best and step is not None:
        fail("--best and --step: expected one of them, found both")

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None or job.kind != "train":
            fail(f"no training run with job id {job_id}; `ddft jobs list` shows them")
        checkpoints = queries.list_checkpoints(session, job_id=job_id)
        if not checkpoints:
            fail(f"job {job_id} has no checkpoints yet")
        if best:
            try:
                found = best_checkpoint(session, job_id=job_id)
            except TrainError as exc:
                fail(str(exc))
            step = found.step
        chosen = checkpoints[-1] if step is None else next(
            (c for c in checkpoints if c.step == step), None)
        if chosen is None:
            fail(f"job {job_id} has no checkpoint at step {step}; it has steps "
                 + ", ".join(str(c.step) for c in checkpoints))
        if queries.get_variant(session, name=name):
            fail(f"a model variant named {name!r} exists already")
        base = TrainRequest.from_params(job.params).base
        queries.create_variant(session, name=name, base_model=base,
                               adapter_path=chosen.path, job_id=job_id,
                               checkpoint_id=chosen.id,
                               description=f"checkpoint step {chosen.step} of job {job_id}")
    lowest = f", validation loss {found.val_loss:.4f}, the lowest" if best else ""
    console.print(f"added variant {name} (job {job_id}, step {chosen.step}{lowest})",
                  markup=False, highlight=False)


@app.command("export")
@friendly
def export(
    name: Annotated[str, typer.Argument(help="Variant to export.")],
    out: Annotated[Path, typer.Argument(help="New (or empty) folder to write.")],
    merged: Annotated[bool, typer.Option("--merged", help="Fold the adapter into the base and "
                                         "write a whole model directory.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Export a variant's LoRA adapter (peft format) or, with --merged, a merged model."""
    from db import queries
    from db.store import session_scope
    from engine.export import ExportError, export_adapter, export_merged

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        variant = queries.get_variant(session, name=name)
    if variant is None:
        fail(f"no model variant named {name!r}; `ddft variants list` shows them")
    if not variant.adapter_path:
        fail(f"{name} is a base model without an adapter; nothing to export")
    try:
        if merged:
            with console.status(Text(f"merging {name} into {variant.base_model}")):
                path = export_merged(variant.base_model, variant.adapter_path, out)
        else:
            path = export_adapter(variant.adapter_path, out, base_model=variant.base_model)
    except ExportError as exc:
        fail(str(exc))
        return
    console.print(f"wrote {'merged model' if merged else 'adapter'} of {name} to {path}",
                  markup=False, highlight=False)
