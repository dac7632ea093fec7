"""Jobs under faults, with real processes: SIGTERM and Ctrl-C stop a run at a checkpoint, two
processes racing to take one job never both win, a dead job reads the same everywhere, the demo
resumes its own stopped run, one metric row per step, and no hidden checkpoint folder stays."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.waiting import wait_for

from db import queries
from db.store import session_scope

# Every wait on another process is a bounded loop of short sleeps polling the store (a safety
# net, never a fixed delay): a tiny CPU run loads in seconds, but 2 cores are shared.
TIMEOUT_S = 240


def _job(db_engine, job_id: int):
    with session_scope(db_engine) as session:
        return queries.get_job(session, job_id=job_id)


def _alive(pid: int) -> bool:
    from engine.jobs.runner import _process_alive

    return _process_alive(pid)


@pytest.fixture
def processes():
    """Pids a test started; whatever is still running at its end is killed."""
    started: list[int] = []
    yield started
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def job_env(monkeypatch):
    """What a job process started by a test needs: this checkout on its path, and one OpenMP
    thread (two crawl when the test process competes for the same cores, and one thread
    everywhere keeps the losses of two processes bit-identical)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path.cwd()), *sys.path]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _questions(db_engine, name: str = "qa", n: int = 4) -> None:
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=name, modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"{name}{i}", "modality": "text", "prompt": f"Question {i}?",
             "answer": f"Answer number {i}."} for i in range(n)])


# save_every 0, as the tiny preset has: before the fix a signal lost the whole run.
RUN = {"max_steps": "80", "batch_size": "1", "save_every": "0", "seed": "1"}


def _train_job(db_engine, model: Path, variant: str) -> int:
    from engine.jobs import create_job
    from engine.jobs.requests import TrainRequest

    request = TrainRequest(variant=variant, base=str(model), datasets={"qa": 1}, overrides=RUN)
    return create_job(db_engine, kind="train", params=request.params(), title=f"train {variant}")


def _losses(db_engine, job_id: int) -> list[tuple[int, float]]:
    with session_scope(db_engine) as session:
        return queries.metric_series(session, job_id=job_id, name="loss")


def test_sigterm_stops_a_detached_run_at_a_checkpoint_and_resume_ends_as_an_uninterrupted_run(
    engine_tiny_model, ddft_workspace, ddft_store, job_env, processes
):
    from engine.jobs import resume_job, spawn_job
    from engine.train import last_checkpoint

    _questions(ddft_store)
    whole = _train_job(ddft_store, engine_tiny_model, "whole")
    stopped = _train_job(ddft_store, engine_tiny_model, "stopped")
    processes.append(spawn_job(ddft_store, whole, workspace=ddft_workspace))
    pid = spawn_job(ddft_store, stopped, workspace=ddft_workspace)
    processes.append(pid)

    past = 3
    wait_for(lambda: _job(ddft_store, stopped).step >= past, f"step {past}")
    os.kill(pid, signal.SIGTERM)
    job = wait_for(lambda: (j := _job(ddft_store, stopped)).status != "running" and j,
                    "the job to write its status")
    wait_for(lambda: not _alive(pid), "the process to end")
    assert job.status == "interrupted", (job.status, job.error)
    assert "SIGTERM" in job.message and job.error is None
    assert past <= job.step < 80
    run_dir = ddft_workspace / "runs" / f"train-{stopped:05d}"
    saved = last_checkpoint(run_dir)
    assert saved is not None and int(saved.name[5:]) == job.step
    with session_scope(ddft_store) as session:
        assert [c.step for c in queries.list_checkpoints(session, job_id=stopped)] == [job.step]
    log = Path(job.log_path).read_text()
    assert "Traceback" not in log and f"job {stopped} stopped by SIGTERM" in log

    # A kill inside save_checkpoint's renames leaves hidden folders; the resume clears them.
    (run_dir / f".{saved.name}.old-4242").mkdir()
    (run_dir / ".final.tmp-4242").mkdir()
    resume_job(ddft_store, stopped, workspace=ddft_workspace)
    processes.append(_job(ddft_store, stopped).pid)
    done = {"succeeded", "failed", "interrupted"}
    resumed = wait_for(lambda: (j := _job(ddft_store, stopped)).status in done and j,
                        "the resumed run")
    reference = wait_for(lambda: (j := _job(ddft_store, whole)).status in done and j,
                          "the uninterrupted run")
    assert (resumed.status, reference.status) == ("succeeded", "succeeded"), (
        resumed.error, reference.error)
    assert resumed.result["resumed_from_step"] == job.step
    assert resumed.result["final_loss"] == reference.result["final_loss"]
    # The whole curve, one row per step, equal to the uninterrupted run's.
    assert _losses(ddft_store, stopped) == _losses(ddft_store, whole)
    assert [s for s, _ in _losses(ddft_store, stopped)] == list(range(1, 81))
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []


def test_ctrl_c_in_a_foreground_training_run_is_one_line_and_leaves_a_checkpoint(
    engine_tiny_model, ddft_workspace, ddft_store, job_env, processes
):
    from engine.train import last_checkpoint

    _questions(ddft_store)
    command = [sys.executable, "-m", "engine.cli.main", "train", "--variant", "fg",
               "--base", str(engine_tiny_model), "--dataset", "qa", "--steps", "150",
               "--batch-size", "1", "--workspace", str(ddft_workspace)]
    # Its own process group, as a terminal's foreground job: Ctrl-C signals the whole group.
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True, text=True)
    processes.append(process.pid)

    def started():
        with session_scope(ddft_store) as session:
            jobs = queries.list_jobs(session, kind="train")
        return jobs and jobs[0].step >= 3 and jobs[0]

    job = wait_for(started, "step 3")
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    said = [line for line in output.splitlines() if "interrupt" in line or "SIGINT" in line]
    assert said == [f"job {job.id} interrupted: stopped by SIGINT; "
                    f"`ddft jobs resume {job.id}` continues it"], output
    assert process.returncode == 130
    job = _job(ddft_store, job.id)
    assert job.status == "interrupted" and 3 <= job.step < 150
    saved = last_checkpoint(ddft_workspace / "runs" / f"train-{job.id:05d}")
    assert saved is not None and int(saved.name[5:]) == job.step


# A job of another kind, in a process of its own: it stores one row per item and checks for a
# stop between items, as the generate, judge, ground and check handlers do.
ITEMS_JOB = textwrap.dedent("""
    import sys
    from pathlib import Path

    from db.store import open_store
    from engine.jobs import runner

    def store_items(ctx):
        stored = 0
        for item in range(100_000):
            ctx.metrics(item, {"item": float(item)})
            stored += 1
            ctx.progress(stored, 100_000)
            if ctx.should_stop():
                break
        return {"stored": stored}

    runner._load_handler = lambda kind: store_items
    workspace = Path(sys.argv[2])
    job = runner.run_job(open_store(workspace), int(sys.argv[1]), workspace=workspace)
    print(f"job {job.id} {job.status}")
""")


def test_sigterm_stops_other_job_kinds_between_samples_keeping_what_they_stored(
    ddft_workspace, ddft_backend_store, job_env, processes
):
    from engine.jobs import create_job

    ddft_store = ddft_backend_store  # the job process finds it through DDFT_DB_URL

    job_id = create_job(ddft_store, kind="judge", params={})
    process = subprocess.Popen([sys.executable, "-c", ITEMS_JOB, str(job_id), str(ddft_workspace)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    processes.append(process.pid)
    wait_for(lambda: _job(ddft_store, job_id).step >= 5, "five items stored")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0 and output.splitlines()[-1] == f"job {job_id} interrupted", output
    job = _job(ddft_store, job_id)
    assert job.status == "interrupted" and "SIGTERM" in job.message
    stored = job.result["stored"]
    assert 5 <= stored < 100_000
    with session_scope(ddft_store) as session:
        assert len(queries.metric_series(session, job_id=job_id, name="item")) == stored


# ---------------------------------------------------------------- one job, one process


ROUNDS = 24
RACERS = 3


def _race(url: str, workspace: str, job_id: int, barrier, results) -> None:
    """One racing process: each round, take the job when the barrier opens, report how it went
    and wait for the round to close. Even rounds race `resume_job`, odd rounds `run_job`."""
    from db.store import open_store
    from engine.jobs import runner

    runner._load_handler = lambda kind: (lambda ctx: {"ran_by": os.getpid()})
    db_engine = open_store(url=url)
    for round_ in range(ROUNDS):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:  # the parent gave up on a failed round
            return
        try:
            if round_ % 2 == 0:
                runner.resume_job(db_engine, job_id, workspace=Path(workspace), detach=False)
            else:
                job = runner.run_job(db_engine, job_id, workspace=Path(workspace))
                assert job.status == "succeeded", job.status
            outcome = "won"
        except runner.JobError as exc:
            outcome = str(exc)
        except Exception as exc:  # a locked store or a wrong status: the parent shows it
            outcome = f"crashed: {type(exc).__name__}: {exc}"
        results.put((round_, outcome))
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return


def test_processes_racing_to_resume_or_run_one_job_have_exactly_one_winner(
    ddft_workspace, ddft_store_url, ddft_backend_store
):
    from engine.jobs import create_job

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db_engine = ddft_backend_store
    job_id = create_job(db_engine, kind="judge", params={})
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS + 1)
    results = context.Queue()
    racers = [context.Process(target=_race, args=(ddft_store_url, str(ddft_workspace), job_id,
                                                  barrier, results))
              for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    try:
        for round_ in range(ROUNDS):
            with session_scope(db_engine) as session:
                # Resume rounds start from a run that died; run rounds from a queued job.
                queries.update_job(session, job_id=job_id,
                                   status="interrupted" if round_ % 2 == 0 else "queued",
                                   pid=dead.pid, host="")
            barrier.wait(timeout=TIMEOUT_S)
            outcomes = sorted(results.get(timeout=TIMEOUT_S)[1] for _ in range(RACERS))
            barrier.wait(timeout=TIMEOUT_S)
            assert outcomes.count("won") == 1, (round_, outcomes)
            for outcome in outcomes:
                assert outcome == "won" or (
                    "\n" not in outcome and outcome.startswith(f"job {job_id} ")
                    and ("by another process" in outcome or "another process took it" in outcome
                         or "it cannot be resumed" in outcome or "can run" in outcome)
                ), (round_, outcome)
    finally:
        barrier.abort()  # a failed round must not leave the racers waiting for the next one
        for racer in racers:
            racer.join(timeout=TIMEOUT_S)
            if racer.is_alive():
                racer.kill()
    assert [racer.exitcode for racer in racers] == [0] * RACERS


def test_a_second_process_cannot_run_a_running_job(ddft_workspace, ddft_store):
    from engine.jobs import JobError, create_job, run_job

    job_id = create_job(ddft_store, kind="judge", params={})
    with session_scope(ddft_store) as session:
        assert queries.claim_job(session, job_id=job_id, from_statuses=("queued",),
                                 status="running", owner=(os.getpid(), "elsewhere"))
        assert not queries.claim_job(session, job_id=job_id, from_statuses=("queued",),
                                     status="running", owner=(1, "elsewhere"))
    with pytest.raises(JobError, match=f"job {job_id} is running already .* another process"):
        run_job(ddft_store, job_id, workspace=ddft_workspace)


# ---------------------------------------------------------------- liveness


def test_a_dead_job_reads_interrupted_in_the_cli_and_the_jobs_screen_without_a_write(
    ddft_workspace, ddft_store
):
    import socket

    from typer.testing import CliRunner

    from engine.cli.main import app
    from engine.jobs import effective_status, refresh_job_states
    from workbench.data.jobs import load_jobs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from engine.jobs import create_job

    job_id = create_job(ddft_store, kind="judge", params={}, title="judge it")
    with session_scope(ddft_store) as session:
        queries.update_job(session, job_id=job_id, status="running", pid=dead.pid,
                           host=socket.gethostname())
    listed = CliRunner().invoke(app, ["jobs", "list", "--workspace", str(ddft_workspace)])
    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id), "--workspace",
                                     str(ddft_workspace)])
    assert listed.exit_code == shown.exit_code == 0, listed.output + shown.output
    assert "interrupted" in listed.output and "running" not in listed.output
    assert "judge it · interrupted" in shown.output
    (row,) = load_jobs(ddft_store)
    assert (row.status, row.resumable) == ("interrupted", True)
    job = _job(ddft_store, job_id)
    assert job.status == "running" and effective_status(job) == "interrupted"  # nothing written

    # The writing reading takes the job from the process it found dead only: one resumed
    # meanwhile (another pid on the row) is left alone.
    with session_scope(ddft_store) as session:
        queries.update_job(session, job_id=job_id, pid=os.getpid())
        assert not queries.claim_job(session, job_id=job_id, from_statuses=("running",),
                                     status="interrupted", held_by=dead.pid)
        queries.update_job(session, job_id=job_id, pid=dead.pid)
    assert refresh_job_states(ddft_store) == [job_id]
    assert _job(ddft_store, job_id).status == "interrupted"


def test_a_job_of_another_host_is_dead_once_its_heartbeat_is_stale(ddft_store):
    from datetime import timedelta

    from db.models import utcnow
    from engine.jobs import STALE_AFTER_S, create_job, effective_status

    job_id = create_job(ddft_store, kind="judge", params={})
    with session_scope(ddft_store) as session:
        queries.update_job(session, job_id=job_id, status="running", pid=1, host="far-away",
                           heartbeat_at=utcnow() - timedelta(seconds=STALE_AFTER_S / 2))
    assert effective_status(_job(ddft_store, job_id)) == "running"
    with session_scope(ddft_store) as session:
        queries.update_job(session, job_id=job_id,
                           heartbeat_at=utcnow() - timedelta(seconds=STALE_AFTER_S + 1))
    assert effective_status(_job(ddft_store, job_id)) == "interrupted"


# ---------------------------------------------------------------- the demo's own run


def test_a_rerun_demo_resumes_its_interrupted_training_from_the_checkpoint(
    engine_tiny_model, ddft_workspace, ddft_store, monkeypatch
):
    from rich.console import Console

    from engine import demo
    from engine.importers.kitchen import TRAIN_SETS
    from engine.jobs import JobError, run_job

    for name in TRAIN_SETS:
        _questions(ddft_store, name=name, n=2)
    monkeypatch.setattr(demo, "DEMO_TRAINING", {**demo.DEMO_TRAINING, "max_steps": "8",
                                                "batch_size": "1"})
    console = Console(file=open(os.devnull, "w"))

    pressed = []

    def run_until_ctrl_c(db_engine, job_id, *, workspace, description):
        def press_ctrl_c(step, total, message):
            if step >= 3 and not pressed:  # once: a second Ctrl-C stops without a checkpoint
                pressed.append(step)
                os.kill(os.getpid(), signal.SIGINT)
        return run_job(db_engine, job_id, workspace=workspace, progress=press_ctrl_c)

    with pytest.raises(JobError, match="interrupted: stopped by SIGINT"):
        demo.train_tuned_variant(ddft_store, ddft_workspace, engine_tiny_model, console=console,
                                 run=run_until_ctrl_c)
    with session_scope(ddft_store) as session:
        (stopped,) = queries.list_jobs(session, kind="train")
        checkpoints = [c.step for c in queries.list_checkpoints(session, job_id=stopped.id)]
    assert stopped.status == "interrupted" and checkpoints and checkpoints[-1] >= 3

    job = demo.train_tuned_variant(ddft_store, ddft_workspace, engine_tiny_model,
                                   console=console, run=None)
    with session_scope(ddft_store) as session:
        assert [j.id for j in queries.list_jobs(session, kind="train")] == [stopped.id]
        assert queries.get_variant(session, name=demo.TUNED_VARIANT).job_id == stopped.id
    assert job.id == stopped.id and job.status == "succeeded"
    assert job.result["resumed_from_step"] == checkpoints[-1] > 0
    assert [s for s, _ in _losses(ddft_store, stopped.id)] == list(range(1, 9))


# ---------------------------------------------------------------- the store and the run folder


def test_the_store_keeps_one_metric_row_per_step_the_latest(ddft_store):
    from engine.jobs import create_job

    job_id = create_job(ddft_store, kind="train", params={})
    with session_scope(ddft_store) as session:
        for step in (1, 2, 3):
            queries.add_metrics(session, job_id=job_id, step=step, values={"loss": 1.0 * step})
        # A run resumed from its checkpoint at step 1 drops what came after, then reports again.
        assert queries.delete_metrics_after(session, job_id=job_id, step=1) == 2
        queries.add_metrics(session, job_id=job_id, step=2, values={"loss": 0.5})
        queries.add_metrics(session, job_id=job_id, step=2, values={"loss": 0.25})
        assert queries.metric_series(session, job_id=job_id, name="loss") == [(1, 1.0), (2, 0.25)]


def test_hidden_folders_of_an_interrupted_checkpoint_write_are_cleared(tmp_path):
    from engine.train import STATE_FILE, last_checkpoint, tidy_run_dir

    for name in ("step-000002", ".step-000002.old-31", ".step-000004.old-31",
                 ".step-000004.tmp-31", ".final.tmp-77"):
        (tmp_path / name).mkdir()
        (tmp_path / name / STATE_FILE).write_text(name)
    tidy_run_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002", "step-000004"]
    # Killed between the two renames: the old, complete step-000004 is put back.
    assert (tmp_path / "step-000004" / STATE_FILE).read_text() == ".step-000004.old-31"
    assert (tmp_path / "step-000002" / STATE_FILE).read_text() == "step-000002"
    assert last_checkpoint(tmp_path).name == "step-000004"
