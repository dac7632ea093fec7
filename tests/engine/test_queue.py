"""The device queue: device jobs wait their turn in order, others never wait for the device, a
job waits for the jobs it follows; starting is atomic across processes; a queued job survives
the processes that asked for it (the next command starts it); a dead running job frees its
slot; cancel works on a queued job."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from db import queries
from db.store import session_scope
from engine.jobs import runner
from engine.jobs.queue import QueuePlace, plan_starts, queue_places, readiness
from tests.waiting import wait_for

HOST = socket.gethostname()


def _row(job_id, *, devices=1, after=(), status="queued"):
    return SimpleNamespace(id=job_id, devices=devices, after=list(after), status=status,
                           queue=HOST)


def test_device_jobs_start_in_order_while_they_fit_and_others_never_wait():
    queued = [_row(1), _row(2, devices=0), _row(3), _row(4, devices=0, after=[9])]
    deps = {9: _row(9, status="running")}
    # One slot: the first device job, and the judge that needs none; job 4 waits for job 9.
    assert [j.id for j in plan_starts(queued, [], deps, slots=1)] == [1, 2]
    # The device is busy: no device job starts, the judge does.
    assert [j.id for j in plan_starts(queued, [_row(7)], deps, slots=1)] == [2]
    assert [j.id for j in plan_starts(queued, [], deps, slots=2)] == [1, 2, 3]
    # A run on 2 GPUs at the head waits for both; nothing behind it overtakes it.
    wide = [_row(5, devices=2), _row(6)]
    assert [j.id for j in plan_starts(wide, [_row(7)], {}, slots=2)] == []
    assert [j.id for j in plan_starts(wide, [], {}, slots=2)] == [5]
    # More than the host has: alone, once the device is idle.
    assert [j.id for j in plan_starts([_row(8, devices=4)], [], {}, slots=1)] == [8]


def test_a_job_after_a_stopped_job_is_blocked_and_passed_over():
    deps = {1: _row(1, status="failed"), 2: _row(2, status="succeeded")}
    assert readiness(_row(3, after=[1]), deps) == "blocked"
    assert readiness(_row(3, after=[2]), deps) == "ready"
    assert readiness(_row(3, after=[5]), deps) == "blocked"  # gone from the store
    queued = [_row(3, after=[1]), _row(4)]
    assert [j.id for j in plan_starts(queued, [], deps, slots=1)] == [4]


# ---------------------------------------------------------------- real processes

WAITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    from db.store import open_store
    from engine.jobs import runner

    def hold_until_released(ctx):
        ctx.progress(0, 1, "holding the device")
        release = Path(ctx.params["release"])
        while not release.exists():
            time.sleep(0.02)
        return {"held": True}

    runner._load_handler = lambda kind: hold_until_released
    workspace = Path(sys.argv[2])
    job = runner.run_job(open_store(workspace), int(sys.argv[1]), workspace=workspace,
                         waiting=lambda line: print("waiting:", line, flush=True))
    print(f"job {job.id} {job.status}", flush=True)
""")


@pytest.fixture
def job_env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path.cwd()), *sys.path]))


def _job(db_engine, job_id):
    with session_scope(db_engine) as session:
        return queries.get_job(session, job_id=job_id)


def test_a_second_device_job_waits_queued_with_its_position_until_the_first_ends(
        ddft_workspace, ddft_backend_store, job_env, tmp_path):
    db_engine = ddft_backend_store
    releases = [tmp_path / "release-1", tmp_path / "release-2"]
    ids = [runner.create_job(db_engine, kind="generate", params={"release": str(path)})
           for path in releases]
    judge = runner.create_job(db_engine, kind="judge", params={"release": str(releases[1])})
    processes = [subprocess.Popen([sys.executable, "-c", WAITER, str(job_id),
                                   str(ddft_workspace)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for job_id in (*ids, judge)]
    try:
        wait_for(lambda: _job(db_engine, ids[0]).status == "running", "the first job to run")
        # The second waits for the device, first in line, held by its own process; the judge
        # needs no device and runs beside the first.
        wait_for(lambda: _job(db_engine, ids[1]).pid == processes[1].pid, "the second to wait")
        wait_for(lambda: _job(db_engine, judge).status == "running", "the judge to run")
        with session_scope(db_engine) as session:
            place = queue_places(session)[ids[1]]
        assert _job(db_engine, ids[1]).status == "queued"
        assert (place.position, place.running) == (1, (ids[0],))
        assert place.describe() == f"queued, position 1; device busy with job {ids[0]}"
        releases[0].write_text("go")
        wait_for(lambda: _job(db_engine, ids[1]).status == "running", "the second to run")
        releases[1].write_text("go")
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    first, second = _job(db_engine, ids[0]), _job(db_engine, ids[1])
    assert [_job(db_engine, i).status for i in (*ids, judge)] == ["succeeded"] * 3, outputs
    assert second.started_at >= first.finished_at
    assert "waiting: queued, position" in outputs[1]


def test_a_queued_job_outlives_its_process_and_the_next_command_starts_it(
        ddft_workspace, ddft_backend_store, job_env):
    """After a reboot no process waits for a queued job: the next `ddft` command that opens
    the store starts the head of the queue."""
    db_engine = ddft_backend_store
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = runner.create_job(db_engine, kind="judge", params={"eval_set": "eval"},
                               workspace=ddft_workspace)
    with session_scope(db_engine) as session:  # its waiting process died with the machine
        queries.update_job(session, job_id=job_id, pid=dead.pid, host=HOST)
    assert _job(db_engine, job_id).status == "queued" and dataset is not None
    listed = subprocess.run([sys.executable, "-m", "engine.cli.launch", "jobs", "list",
                             "--workspace", str(ddft_workspace)], capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    job = wait_for(lambda: (j := _job(db_engine, job_id)).status in ("succeeded", "failed")
                   and j, "the queued job to be started and finish")
    assert job.status == "succeeded", job.error
    assert job.pid not in (dead.pid, os.getpid())


def test_a_dead_running_job_does_not_block_the_queue_and_cancel_takes_a_queued_job(
        ddft_workspace, ddft_backend_store):
    db_engine = ddft_backend_store
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stuck = runner.create_job(db_engine, kind="train", params={})
    with session_scope(db_engine) as session:
        queries.claim_job(session, job_id=stuck, from_statuses=("queued",), status="running",
                          owner=(dead.pid, HOST))
    mine = runner.create_job(db_engine, kind="generate", params={}, held=True)
    cancelled = runner.create_job(db_engine, kind="generate", params={})
    runner.request_cancel(db_engine, cancelled)
    assert _job(db_engine, cancelled).status == "cancelled"
    assert runner.start_queued(db_engine, taking=mine) == [mine]
    assert _job(db_engine, mine).status == "running"


def test_cancel_reaches_a_job_waiting_for_its_turn_in_the_foreground(
        ddft_workspace, ddft_backend_store):
    db_engine = ddft_backend_store
    busy = runner.create_job(db_engine, kind="train", params={})
    with session_scope(db_engine) as session:
        queries.claim_job(session, job_id=busy, from_statuses=("queued",), status="running",
                          owner=(os.getpid(), HOST))
    waiting_id = runner.create_job(db_engine, kind="generate", params={}, held=True)
    lines: list[str] = []
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(runner.run_job(
        db_engine, waiting_id, workspace=ddft_workspace, waiting=lines.append)))
    thread.start()
    wait_for(lambda: lines, "the waiting line")
    runner.request_cancel(db_engine, waiting_id)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert outcome[0].status == "cancelled" and outcome[0].started_at is None
    assert lines[0] == f"queued, position 1; device busy with job {busy}"


def test_more_slots_let_two_device_jobs_run_at_once(ddft_workspace, ddft_backend_store):
    from engine.jobs.queue import SLOTS_SETTING

    db_engine = ddft_backend_store
    busy = runner.create_job(db_engine, kind="generate", params={})
    with session_scope(db_engine) as session:
        queries.claim_job(session, job_id=busy, from_statuses=("queued",), status="running",
                          owner=(os.getpid(), HOST))
    second = runner.create_job(db_engine, kind="generate", params={}, held=True)
    assert runner.start_queued(db_engine, taking=second) == []
    with session_scope(db_engine) as session:
        queries.set_setting(session, name=SLOTS_SETTING, value="2")
    assert runner.start_queued(db_engine, taking=second) == [second]


def _start_racer(url: str, job_id: int, barrier, results) -> None:
    from db.store import open_store
    from engine.jobs import runner as racer

    racer.spawn_job = lambda db_engine, job, *, workspace: 0  # no process: only the claim
    db_engine = open_store(url=url)
    barrier.wait()
    results.put(racer.start_queued(db_engine))


def test_processes_starting_the_queue_at_once_start_its_head_once(
        ddft_workspace, ddft_store_url, ddft_backend_store):
    job_id = runner.create_job(ddft_backend_store, kind="generate", params={},
                               workspace=ddft_workspace)
    runner.create_job(ddft_backend_store, kind="generate", params={}, workspace=ddft_workspace)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    racers = [context.Process(target=_start_racer, args=(ddft_store_url, job_id, barrier,
                                                         results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    started = sorted(results.get(timeout=120) for _ in racers)
    for racer in racers:
        racer.join(timeout=60)
    assert started == [[], [], [], [job_id]]


def test_a_place_says_what_it_waits_for():
    assert QueuePlace(5, 2, (3,), (), (), (1,)).describe() == \
        "queued, position 2; device busy with job 1"
    assert QueuePlace(6, None, (), (4,), (), ()).describe() == "queued; after job 4"
    assert QueuePlace(7, None, (), (4,), (4,), ()).describe().startswith(
        "blocked: job 4 did not succeed")
