"""One rank of a data-parallel training job: `python -m engine.jobs.train_worker --job ID
--workspace DIR`, what engine.jobs.handlers.distributed_command launches on each GPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

from db import queries
from db.store import session_scope
from engine.jobs.handlers import ranks_dir, train_here, train_run_dir
from engine.jobs.requests import JobError
from engine.jobs.runner import JobContext, stop_on_signals


def train_worker(job_id: int, workspace: Path) -> None:
    """Train this rank's share of job `job_id`. Only rank 0 writes progress, metrics,
    checkpoints and result.json; the job's status and heartbeat stay with the process that
    launched the ranks. Raises JobError for an unknown job."""
    # accelerate (and with it torch) loads here, inside the rank's own process.
    from accelerate import PartialState

    from db.store import open_store

    db_engine = open_store(workspace, create=False)  # a job never makes a store
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
        if job is None:
            raise JobError(f"no job with id {job_id}")
    ctx = JobContext(db_engine, job, Path(workspace))
    import torch

    # Without CUDA the ranks meet over gloo (MULTI_CPU): accelerate chooses that only when told
    # the run is on the CPU, and the training's own Accelerator reuses this state.
    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process
    # Each rank says it started and how it ended, so the launching process can tell a rank
    # killed from outside (interrupted: it never ends) from one that raised (failed).
    ranks = ranks_dir(train_run_dir(ctx))
    ranks.mkdir(parents=True, exist_ok=True)
    name = f"rank-{state.process_index}"
    (ranks / f"{name}.started").write_text(f"{os.getpid()}\n")
    try:
        # A signal to the whole run (Ctrl-C, a scheduler stopping it) stops it at the next
        # step, which rank 0 tells every rank, after one checkpoint.
        with stop_on_signals(ctx):
            values = train_here(ctx, is_main=main)
    except BaseException as exc:
        (ranks / f"{name}.ended").write_text(f"{type(exc).__name__}: {exc}"[:2000] + "\n")
        raise
    (ranks / f"{name}.ended").write_text("ok\n")
    if main:
        path = train_run_dir(ctx) / "result.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m engine.jobs.train_worker")
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    args = parser.parse_args(argv)
    train_worker(args.job, args.workspace)


if __name__ == "__main__":
    main()
