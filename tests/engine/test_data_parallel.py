"""Data-parallel training really run: two CPU processes over gloo through `accelerate launch`
(`ddft train --processes 2`, the same path as `--gpus 2`). Only rank 0 writes; the loss curve
equals a one-process run with the same global batch, through a rank killed with SIGKILL (the job
is left interrupted) and a resume from the last checkpoint with both ranks."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest

from tests.waiting import wait_for

from db import queries
from db.store import session_scope

from .test_job_faults import _job, _questions, job_env, processes  # noqa: F401 (fixtures)

# Two samples a step in both shapes: one process with two micro-batches of one sample, or two
# processes with one each. No dropout, so the ranks' random streams cannot matter.
RUN = {"max_steps": "120", "batch_size": "1", "samples_per_step": "2", "grad_accum": "none",
       "save_every": "10",
       "seed": "3", "lora_dropout": "0", "val_fraction": "0"}
DONE = {"succeeded", "failed", "interrupted", "cancelled"}
# One process sums two micro-batches' gradients; two processes average theirs over gloo: the
# same arithmetic in another order, so float32 rounding differs in the last bits and AdamW
# carries that along. Measured: at most 2e-6 relative over 120 steps; the bound leaves room.
RELATIVE_TOLERANCE = 1e-4


def _train_job(db_engine, model: Path, variant: str, processes: int) -> int:
    from engine.jobs import create_job
    from engine.jobs.requests import TrainRequest

    request = TrainRequest(variant=variant, base=str(model), datasets={"qa": 1}, overrides=RUN,
                           processes=processes)
    return create_job(db_engine, kind="train", params=request.params(), title=f"train {variant}")


def _losses(db_engine, job_id: int) -> list[tuple[int, float]]:
    with session_scope(db_engine) as session:
        return queries.metric_series(session, job_id=job_id, name="loss")


def _run(db_engine, job_id: int, workspace: Path, started: list[int]):
    from engine.jobs import spawn_job

    started.append(spawn_job(db_engine, job_id, workspace=workspace))
    return wait_for(lambda: (j := _job(db_engine, job_id)).status in DONE and j,
                    f"job {job_id} to end")


def _ranks(workspace: Path, job_id: int) -> Path:
    return workspace / "runs" / f"train-{job_id:05d}" / "ranks"


def test_two_processes_train_as_one_and_a_killed_rank_resumes_with_both(
    engine_tiny_model, ddft_workspace, ddft_store, job_env, processes  # noqa: F811
):
    from engine.jobs import resume_job, spawn_job
    from engine.train import last_checkpoint

    _questions(ddft_store, n=8)
    single = _train_job(ddft_store, engine_tiny_model, "one-process", 1)
    one = _run(ddft_store, single, ddft_workspace, processes)
    assert one.status == "succeeded", one.error

    # Two processes; rank 1 is killed with SIGKILL once a checkpoint is written.
    job_id = _train_job(ddft_store, engine_tiny_model, "two-processes", 2)
    processes.append(spawn_job(ddft_store, job_id, workspace=ddft_workspace))
    ranks = _ranks(ddft_workspace, job_id)

    def checkpointed():
        with session_scope(ddft_store) as session:
            return queries.list_checkpoints(session, job_id=job_id)

    wait_for(checkpointed, "the first checkpoint")
    wait_for(lambda: (ranks / "rank-1.started").is_file(), "rank 1")
    victim = int((ranks / "rank-1.started").read_text())
    os.kill(victim, signal.SIGKILL)
    job = wait_for(lambda: (j := _job(ddft_store, job_id)).status in DONE and j,
                   "the job to end")
    assert job.status == "interrupted", (job.status, job.error, job.message)
    assert "rank 1 being killed" in job.message and job.error is None
    assert job.step < 120
    saved = int(last_checkpoint(ddft_workspace / "runs" / f"train-{job_id:05d}").name[5:])
    with session_scope(ddft_store) as session:
        assert queries.get_variant(session, name="two-processes") is None

    # Resumed: both ranks again, from the last checkpoint, to the end.
    resume_job(ddft_store, job_id, workspace=ddft_workspace)
    processes.append(_job(ddft_store, job_id).pid)
    two = wait_for(lambda: (j := _job(ddft_store, job_id)).status in DONE and j,
                   "the resumed run")
    assert two.status == "succeeded", (two.error, two.message)
    assert two.result["resumed_from_step"] == saved
    assert sorted(p.name for p in ranks.iterdir()) == [
        "rank-0.ended", "rank-0.started", "rank-1.ended", "rank-1.started"]
    assert {(ranks / f"rank-{r}.ended").read_text() for r in (0, 1)} == {"ok\n"}
    pids = {int((ranks / f"rank-{r}.started").read_text()) for r in (0, 1)}
    assert len(pids) == 2 and victim not in pids and two.pid not in pids

    # One writer: one loss row a step, each checkpoint once, one variant.
    losses = _losses(ddft_store, job_id)
    assert [step for step, _ in losses] == list(range(1, 121))
    with session_scope(ddft_store) as session:
        steps = [c.step for c in queries.list_checkpoints(session, job_id=job_id)]
        assert steps == sorted(set(steps)) and steps[-1] == 120
        assert queries.get_variant(session, name="two-processes").job_id == job_id
    assert two.result["steps"] == 120 and two.result["n_samples"] == 8

    # The same curve as one process with the same two samples a step, through the kill.
    reference = _losses(ddft_store, single)
    worst = max(abs(a - b) / abs(b) for (_, a), (_, b) in zip(losses, reference))
    assert worst < RELATIVE_TOLERANCE, worst
    assert math.isclose(two.result["final_loss"], one.result["final_loss"],
                        rel_tol=RELATIVE_TOLERANCE)


@pytest.mark.parametrize("processes_, gpus, expected", [
    (0, 1, "processes: expected an integer >= 1, found 0"),
    (2, 2, "processes: data-parallel processes run on the CPU; give --processes or --gpus"),
])
def test_bad_process_counts_are_refused_before_any_job(ddft_store, engine_tiny_model,
                                                       processes_, gpus, expected):
    from engine.jobs.requests import TrainRequest

    _questions(ddft_store, n=4)
    request = TrainRequest(variant="v", base=str(engine_tiny_model), datasets={"qa": 1},
                           processes=processes_, gpus=gpus)
    with session_scope(ddft_store) as session:
        problems = request.problems(session)
    assert any(p.startswith(expected) for p in problems), problems
    assert TrainRequest.from_params(request.params()).processes == processes_
    assert ("--processes" in request.command()) == (processes_ != 1)
