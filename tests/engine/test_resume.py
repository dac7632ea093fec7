"""Checkpoints that resume: an interrupted-and-resumed run repeats the uninterrupted loss curve
exactly; cancel leaves a checkpoint that reloads; kill -9 of a detached run, then resume."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_for

from engine.train import (
    STATE_FILE,
    TrainConfig,
    TrainError,
    TrainExample,
    last_checkpoint,
    train_lora,
)

from .test_train import Recorder


def mixed_examples(media: Path) -> list[TrainExample]:
    """Two of each modality; small, so each CPU step takes a fraction of a second."""
    return [
        TrainExample("video", "What is the recipe?", "Dish: Tomato Soup", str(media / "red0.mp4"), 1),
        TrainExample("video", "What is the recipe?", "Dish: Green Salad", str(media / "green0.mp4"), 2),
        TrainExample("image", "What is the dish in this image?", "Tomato Soup", str(media / "red.png"), 3),
        TrainExample("image", "What is the dish in this image?", "Green Salad", str(media / "green.png"), 4),
        TrainExample("text", "How long should I rest a steak?", "About 5 to 10 minutes.", None, 5),
        TrainExample("text", "What is the dish?", "Tomato Soup with salt.", None, 6),
    ]


# Dropout on, so the resumed run must restore the RNG as well as the weights and the optimizer.
CONFIG = {"learning_rate": 3e-3, "projector_learning_rate": 3e-3, "lora_dropout": 0.1, "batch_size": 2,
              "grad_accum": 1, "max_steps": 4, "warmup_ratio": 0.25, "seed": 3}


def test_an_interrupted_and_resumed_run_repeats_the_uninterrupted_loss_curve_exactly(
    engine_tiny_model, engine_media_dir, tmp_path
):
    import torch
    from safetensors.torch import load_file

    from engine.model.loading import load_variant

    examples = mixed_examples(engine_media_dir)
    whole = Recorder()
    train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "whole",
               config=TrainConfig(**CONFIG), callbacks=whole, device="cpu")

    first = Recorder(stop_after=2)
    stopped = train_lora(base=str(engine_tiny_model), examples=examples,
                         out_dir=tmp_path / "split", config=TrainConfig(**CONFIG),
                         callbacks=first, device="cpu")
    assert stopped.stopped and stopped.steps == 2
    assert last_checkpoint(tmp_path / "split") == tmp_path / "split" / "step-000002"

    # The cancel checkpoint is a usable adapter on its own.
    saved = load_file(str(stopped.adapter_dir / "adapter_model.safetensors"))
    from peft.utils import get_peft_model_state_dict

    variant = load_variant(str(engine_tiny_model), str(stopped.adapter_dir), device="cpu")
    reloaded = get_peft_model_state_dict(variant.model)
    assert set(reloaded) == set(saved)
    assert all(torch.equal(reloaded[k], t) for k, t in saved.items())

    second = Recorder()
    resumed = train_lora(base=str(engine_tiny_model), examples=examples,
                         out_dir=tmp_path / "split", config=TrainConfig(**CONFIG),
                         callbacks=second, device="cpu", resume_from=tmp_path / "split")
    assert (resumed.resumed_from, resumed.steps, second.start) == (2, 4, 2)
    assert [s for s, _ in second.logs] == [3, 4]

    def curve(recorders, key):
        return torch.tensor([v[key] for r in recorders for _, v in r.logs], dtype=torch.float64)

    assert torch.equal(curve([first, second], "loss"), curve([whole], "loss"))
    assert torch.equal(curve([first, second], "lr"), curve([whole], "lr"))
    a = load_file(str(tmp_path / "whole" / "final" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "split" / "final" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_made_with_other_data(
    engine_tiny_model, engine_media_dir, tmp_path
):
    examples = mixed_examples(engine_media_dir)[4:]
    config = TrainConfig(**{**CONFIG, "max_steps": 2})
    train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "run",
               config=config, callbacks=Recorder(stop_after=1), device="cpu")
    with pytest.raises(TrainError, match="other data or settings"):
        train_lora(base=str(engine_tiny_model), examples=examples[:1], out_dir=tmp_path / "run",
                   config=config, device="cpu", resume_from=tmp_path / "run")
    # A half-written checkpoint (no trainer state yet) never counts.
    (tmp_path / "run" / "step-000009").mkdir()
    assert last_checkpoint(tmp_path / "run").name == "step-000001"
    assert (last_checkpoint(tmp_path / "run") / STATE_FILE).is_file()


def test_kill_9_of_a_detached_run_shows_interrupted_and_resume_finishes_from_the_checkpoint(
    engine_tiny_model, ddft_workspace, ddft_store, monkeypatch
):
    from typer.testing import CliRunner

    from db import queries
    from db.store import session_scope
    from engine.cli.main import app
    from engine.jobs import create_job, refresh_job_states, spawn_job
    from engine.jobs.requests import TrainRequest

    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"q{i}", "modality": "text", "prompt": f"Question {i}?",
             "answer": f"Answer number {i}."} for i in range(4)])
    request = TrainRequest(variant="killed", base=str(engine_tiny_model), datasets={"qa": 1},
                           overrides={"max_steps": "20", "batch_size": "1", "save_every": "2"})
    job_id = create_job(ddft_store, kind="train", params=request.params(), title="train killed")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path.cwd()), *sys.path]))
    # One thread: two OpenMP threads crawl when the test process competes for the same cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pid = spawn_job(ddft_store, job_id, workspace=ddft_workspace)

    def checkpointed():
        with session_scope(ddft_store) as session:
            return queries.list_checkpoints(session, job_id=job_id)

    wait_for(checkpointed, "the first checkpoint", timeout=120)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: refresh_job_states(ddft_store) == [job_id], "the job to look dead", timeout=60)
    with session_scope(ddft_store) as session:
        job = queries.get_job(session, job_id=job_id)
        assert job.status == "interrupted" and 0 < job.step < 20, (job.status, job.step)
    # From the folder, not the rows: a kill between a checkpoint's rename and its row is fine.
    killed_at = int(last_checkpoint(ddft_workspace / "runs" / f"train-{job_id:05d}").name[5:])

    result = CliRunner().invoke(app, ["jobs", "resume", str(job_id), "--foreground",
                                      "--workspace", str(ddft_workspace)])
    assert result.exit_code == 0, result.output
    with session_scope(ddft_store) as session:
        job = queries.get_job(session, job_id=job_id)
        assert job.status == "succeeded", (job.status, job.error)
        assert job.result["resumed_from_step"] == killed_at and job.result["steps"] == 20
        assert queries.get_variant(session, name="killed").job_id == job_id
        steps = [s for s, _ in queries.metric_series(session, job_id=job_id, name="loss")]
        rows = queries.recent_metrics(session, job_ids=[job_id], names=["loss", "lr"],
                                      per_name=100)
    # Steps after the checkpoint ran twice (before the kill and after resume); the store keeps
    # one row per step and name, none missing, none twice.
    assert steps == list(range(1, 21))
    assert [len(rows[(job_id, name)]) for name in ("loss", "lr")] == [20, 20]
