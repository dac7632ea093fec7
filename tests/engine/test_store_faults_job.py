"""A training job under store and disk faults: a store deleted or moved under a running job
stops it with a line in its log, keeps its checkpoints and is never made again; a full disk while
saving a checkpoint is one line naming the folder and the space a checkpoint needs."""

from __future__ import annotations

import errno
import os
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from tests.waiting import wait_for
import torch

from engine.jobs.train_settings import TrainError
from engine.train import checkpoint_bytes, save_checkpoint

Usage = namedtuple("Usage", "total used free")


class _Adapter(torch.nn.Module):
    """Stands in for a peft model: trainable tensors and save_pretrained."""

    def __init__(self) -> None:
        super().__init__()
        self.lora = torch.nn.Linear(64, 64)

    def save_pretrained(self, folder: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(folder) / "adapter_model.bin")


def _state(model) -> dict:
    return {"optimizer": {"exp_avg": [torch.zeros(64, 64)]}, "step": 3}


def test_too_little_free_space_refuses_the_checkpoint_before_writing(tmp_path, monkeypatch):
    model = _Adapter()
    needed = checkpoint_bytes(model, _state(model))
    monkeypatch.setattr("engine.train.shutil.disk_usage", lambda _p: Usage(10**9, 0, 100_000))
    with pytest.raises(TrainError) as caught:
        save_checkpoint(model, tmp_path / "run" / "step-000003", {"step": 3}, _state(model))
    assert str(caught.value) == (
        f"no space left in {tmp_path / 'run'}: a checkpoint needs about "
        f"{needed / 2**20:.0f} MB and 0 MB are free; free some space and resume the run (its "
        f"earlier checkpoints are kept)")
    assert list((tmp_path / "run").iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("failure", ["enospc", "torch"])
def test_a_disk_filling_up_while_saving_is_one_line_and_the_partial_copy_goes(
        tmp_path, monkeypatch, failure):
    model = _Adapter()
    run = tmp_path / "run"
    save_checkpoint(model, run / "step-000002", {"step": 2}, _state(model))  # an earlier one
    free = iter([Usage(10**12, 0, 10**9), Usage(10**12, 0, 1000), Usage(10**12, 0, 1000)])
    monkeypatch.setattr("engine.train.shutil.disk_usage", lambda _p: next(free))
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if Path(path).name == "trainer_state.pt":
            if failure == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device")
            # What torch says when the disk fills under its zip writer.
            raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos "
                               "885056 vs 884944")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(TrainError, match=rf"^no space left in {run}: a checkpoint needs about "
                                         r"\d+ MB and 0 MB are free"):
        save_checkpoint(model, run / "step-000004", {"step": 4}, _state(model))
    assert sorted(p.name for p in run.iterdir()) == ["step-000002"]  # kept; no partial copy


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().split(b")")[-1].split()[0] == b"Z"
    except OSError:
        return True


@pytest.mark.parametrize("how", ["delete", "move"])
def test_a_job_whose_store_vanishes_stops_with_a_line_and_keeps_its_checkpoints(
        engine_tiny_model, ddft_workspace, ddft_store, monkeypatch, how):
    from typer.testing import CliRunner

    from db import queries
    from db.store import session_scope
    from engine.cli.main import app
    from engine.jobs import create_job, job_log_path, spawn_job
    from engine.jobs.requests import TrainRequest

    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"q{i}", "modality": "text", "prompt": f"Question {i}?",
             "answer": f"Answer number {i}."} for i in range(4)])
    request = TrainRequest(variant="lost", base=str(engine_tiny_model), datasets={"qa": 1},
                           overrides={"max_steps": "100000", "batch_size": "1",
                                      "save_every": "2"})
    job_id = create_job(ddft_store, kind="train", params=request.params(), title="train lost")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path.cwd()), *sys.path]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pid = spawn_job(ddft_store, job_id, workspace=ddft_workspace)
    run_dir = ddft_workspace / "runs" / f"train-{job_id:05d}"
    try:
        def checkpointed():
            with session_scope(ddft_store) as session:
                return queries.list_checkpoints(session, job_id=job_id)

        wait_for(checkpointed, "the first checkpoint", timeout=180)
        path = ddft_workspace / "ddft.db"
        if how == "delete":
            path.unlink()
        else:
            path.rename(ddft_workspace / "moved.db")
            # A read meanwhile neither makes a new store nor touches the job's write-ahead log.
            result = CliRunner().invoke(app, ["jobs", "list", "--workspace", str(ddft_workspace)])
            assert result.exit_code == 1 and "no store at" in result.output
        wait_for(lambda: _gone(pid), "the job to stop", timeout=60)
    finally:
        if not _gone(pid):
            os.kill(pid, 9)
    log = job_log_path(ddft_workspace, job_id).read_text()
    assert f"job {job_id} stops: the store at {path} is gone" in log or \
        f"the store at {path} is gone" in log, log
    assert "Traceback" not in log, log
    assert not path.exists()  # never made again, empty, beside the job
    assert [p.name for p in run_dir.glob("step-*")], "its checkpoints are kept"
    if how == "move":
        (ddft_workspace / "moved.db").rename(path)
        from db.store import open_store

        moved_back = open_store(ddft_workspace, create=False)
        with session_scope(moved_back) as session:
            assert queries.get_job(session, job_id=job_id) is not None
            assert queries.list_checkpoints(session, job_id=job_id)
        moved_back.dispose()
