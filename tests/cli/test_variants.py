"""`ddft variants`: a variant of a run's best checkpoint, and listings as JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.main import app

runner = CliRunner()


def invoke(workspace, *args):
    return runner.invoke(app, [*args, "--workspace", str(workspace)])


def _run_with_checkpoints(db_engine, tmp_path, losses: dict[int, float | None]) -> int:
    """A finished train job whose checkpoint folders record these validation losses."""
    with session_scope(db_engine) as session:
        job = queries.create_job(session, kind="train", title="train v",
                                 params={"variant": "v", "base": "/models/[/]tiny"})
        for step, loss in losses.items():
            folder = tmp_path / "runs" / f"step-{step:06d}"
            folder.mkdir(parents=True)
            record = {"step": step} if loss is None else {"step": step, "val_loss": loss}
            (folder / "train_config.json").write_text(json.dumps(record))
            queries.add_checkpoint(session, job_id=job.id, step=step, path=str(folder))
            if loss is not None:
                queries.add_metrics(session, job_id=job.id, step=step, values={"val_loss": loss})
        return job.id


def test_best_takes_the_checkpoint_with_the_lowest_validation_loss(ddft_store, ddft_workspace,
                                                                   tmp_path):
    job_id = _run_with_checkpoints(ddft_store, tmp_path, {100: 1.25, 200: 0.75, 300: 0.875})
    result = invoke(ddft_workspace, "variants", "from-checkpoint", str(job_id), "--name",
                    "best-[/]", "--best")
    assert result.exit_code == 0, result.output
    assert f"added variant best-[/] (job {job_id}, step 200, validation loss 0.7500, the " \
           "lowest)" in " ".join(result.output.split())
    with session_scope(ddft_store) as session:
        variant = queries.get_variant(session, name="best-[/]")
        assert variant.adapter_path == str(tmp_path / "runs" / "step-000200")
        assert variant.base_model == "/models/[/]tiny" and variant.job_id == job_id

    both = invoke(ddft_workspace, "variants", "from-checkpoint", str(job_id), "--name", "x",
                  "--best", "--step", "100")
    assert both.exit_code == 1 and "--best and --step: expected one of them, found both" in \
        both.output

    bare = _run_with_checkpoints(ddft_store, tmp_path / "bare", {50: None})
    result = invoke(ddft_workspace, "variants", "from-checkpoint", str(bare), "--name", "y",
                    "--best")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"job {bare}: no checkpoint has a validation loss" in " ".join(result.output.split())
    with session_scope(ddft_store) as session:
        assert queries.get_variant(session, name="y") is None


def test_list_as_json_has_stable_keys_and_literal_text(ddft_store, ddft_workspace):
    assert json.loads(invoke(ddft_workspace, "variants", "list", "--json").output) == []
    with session_scope(ddft_store) as session:
        queries.create_variant(session, name="base [bold]x[/]", base_model="/m/[/]tiny")
        queries.create_variant(session, name="tuned", base_model="/m/[/]tiny",
                               adapter_path="/runs/1/final", description="LoRA on qa")
    result = invoke(ddft_workspace, "variants", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    keys = ["id", "name", "base_model", "adapter_path", "job_id", "checkpoint_id", "description"]
    assert [list(row) for row in rows] == [keys, keys]
    assert [(r["name"], r["base_model"], r["adapter_path"]) for r in rows] == [
        ("base [bold]x[/]", "/m/[/]tiny", None), ("tuned", "/m/[/]tiny", "/runs/1/final")]
