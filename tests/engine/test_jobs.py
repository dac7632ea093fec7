"""Jobs: a real detached subprocess reporting to the store, cancel, interruption, resume."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from db import queries
from db.store import session_scope
from engine.jobs import runner as jobs
from engine.jobs.requests import JudgeRequest
from engine.evaluation.recipe import format_recipe

REFERENCE = format_recipe("Tomato Soup", ["2 cups tomatoes", "1 tbsp olive oil"],
                          ["Chop the tomatoes.", "Simmer the tomatoes in olive oil."])


def _one_generation(db_engine):
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "v1", "modality": "video", "prompt": "recipe?", "answer": REFERENCE}])
        sample = queries.list_samples(session)[0]
        variant = queries.create_variant(session, name="tuned", base_model="/m")
        queries.add_generation(session, variant_id=variant.id, sample_id=sample.id, prompt="p",
                               text=REFERENCE, params_key="k")


def _wait_for(db_engine, job_id, statuses, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(db_engine) as session:
            job = queries.get_job(session, job_id=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stayed {job.status}")


def test_a_detached_job_runs_in_its_own_session_and_reports_to_the_store(ddft_backend_store,
                                                                          ddft_workspace):
    _one_generation(ddft_backend_store)
    job_id = jobs.submit(ddft_backend_store, JudgeRequest(eval_set="eval"),
                         workspace=ddft_workspace)
    with session_scope(ddft_backend_store) as session:
        pid = queries.get_job(session, job_id=job_id).pid
    try:
        # Its own session: closing the terminal (or SSH connection) that started it does not
        # send it SIGHUP.
        assert os.getsid(pid) == pid != os.getsid(0)
    except ProcessLookupError:
        pass  # it finished already
    job = _wait_for(ddft_backend_store, job_id, {"succeeded", "failed"})
    assert job.status == "succeeded", job.error
    assert job.result == {"judged": 1, "skipped": 0}
    assert job.step == job.total == 1
    assert job.heartbeat_at is not None and job.finished_at is not None
    log = jobs.job_log_path(ddft_workspace, job_id).read_text()
    assert f"job {job_id} succeeded" in log
    with session_scope(ddft_backend_store) as session:
        (row,) = queries.judged_rows(session)
    assert row.verdict == "yes" and row.score == 5.0


def test_cancel_stops_a_running_job(ddft_backend_store, ddft_workspace, monkeypatch):
    seen = []

    def slow(ctx):
        ctx.progress(0, 1000)
        for step in range(1000):
            if ctx.should_stop():
                seen.append(step)
                return {"stopped_at": step}
            ctx.progress(step)
            time.sleep(0.01)
        return {}

    monkeypatch.setattr(jobs, "_load_handler", lambda kind: slow)
    job_id = jobs.create_job(ddft_backend_store, kind="train", params={})
    runner = threading.Thread(target=jobs.run_job, args=(ddft_backend_store, job_id),
                              kwargs={"workspace": ddft_workspace})
    runner.start()
    _wait_for(ddft_backend_store, job_id, {"running"})
    time.sleep(0.3)
    jobs.request_cancel(ddft_backend_store, job_id)
    runner.join(timeout=20)
    with session_scope(ddft_backend_store) as session:
        job = queries.get_job(session, job_id=job_id)
    assert job.status == "cancelled"
    assert seen and seen[0] < 999
    assert job.result["stopped_at"] == seen[0]


def test_a_failing_handler_marks_the_job_failed_with_its_error(ddft_backend_store, ddft_workspace,
                                                               monkeypatch):
    def broken(ctx):
        raise jobs.JobError("no dataset named 'nope'")

    monkeypatch.setattr(jobs, "_load_handler", lambda kind: broken)
    job_id = jobs.create_job(ddft_backend_store, kind="train", params={})
    with pytest.raises(jobs.JobError):
        jobs.run_job(ddft_backend_store, job_id, workspace=ddft_workspace)
    with session_scope(ddft_backend_store) as session:
        job = queries.get_job(session, job_id=job_id)
    assert job.status == "failed"
    assert "no dataset named 'nope'" in job.error


def test_a_job_whose_process_died_is_interrupted_and_can_resume(ddft_backend_store, ddft_workspace):
    _one_generation(ddft_backend_store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = jobs.create_job(ddft_backend_store, kind="judge", params={"eval_set": "eval"})
    with session_scope(ddft_backend_store) as session:
        import socket

        queries.update_job(session, job_id=job_id, status="running", pid=dead.pid,
                           host=socket.gethostname())
    assert jobs.refresh_job_states(ddft_backend_store) == [job_id]
    with session_scope(ddft_backend_store) as session:
        assert queries.get_job(session, job_id=job_id).status == "interrupted"
    jobs.resume_job(ddft_backend_store, job_id, workspace=ddft_workspace, detach=False)
    job = jobs.run_job(ddft_backend_store, job_id, workspace=ddft_workspace)
    assert job.status == "succeeded"
    with pytest.raises(jobs.JobError, match="already succeeded"):
        jobs.resume_job(ddft_backend_store, job_id, workspace=ddft_workspace)


def test_unknown_kinds_and_ids_are_clear_errors(ddft_backend_store, ddft_workspace):
    with pytest.raises(jobs.JobError, match="unknown job kind 'bake'"):
        jobs.create_job(ddft_backend_store, kind="bake", params={})
    with pytest.raises(jobs.JobError, match="no job with id 42"):
        jobs.request_cancel(ddft_backend_store, 42)
    with pytest.raises(jobs.JobError, match="no job with id 42"):
        jobs.run_job(ddft_backend_store, 42, workspace=ddft_workspace)


def test_cancelling_a_finished_job_is_refused_and_writes_nothing(ddft_backend_store):
    job_id = jobs.create_job(ddft_backend_store, kind="judge", params={})
    with session_scope(ddft_backend_store) as session:
        queries.update_job(session, job_id=job_id, status="succeeded")
    with pytest.raises(jobs.JobError, match=f"job {job_id} already succeeded; there is nothing"):
        jobs.request_cancel(ddft_backend_store, job_id)
    with session_scope(ddft_backend_store) as session:
        assert queries.get_job(session, job_id=job_id).cancel_requested is False


def test_cancelling_a_queued_job_cancels_it_at_once(ddft_backend_store):
    job_id = jobs.create_job(ddft_backend_store, kind="judge", params={})
    jobs.request_cancel(ddft_backend_store, job_id)
    with session_scope(ddft_backend_store) as session:
        assert queries.get_job(session, job_id=job_id).status == "cancelled"


def test_a_user_error_in_a_handler_is_one_log_line_and_fails_the_job(ddft_backend_store,
                                                                     ddft_workspace,
                                                                     monkeypatch, capsys):
    from engine.media import MediaError

    def unreadable(ctx):
        raise MediaError("/data/v1.mp4: expected a video with 8 frames, found 3")

    monkeypatch.setattr(jobs, "_load_handler", lambda kind: unreadable)
    job_id = jobs.create_job(ddft_backend_store, kind="generate", params={})
    capsys.readouterr()
    with pytest.raises(MediaError):
        jobs.run_job(ddft_backend_store, job_id, workspace=ddft_workspace)
    log = capsys.readouterr().out
    # A detached job's log is its stdout: the mistake is one line, never a traceback.
    assert log.splitlines() == ["error: /data/v1.mp4: expected a video with 8 frames, found 3"]
    with session_scope(ddft_backend_store) as session:
        job = queries.get_job(session, job_id=job_id)
    assert job.status == "failed"
    assert job.error == "/data/v1.mp4: expected a video with 8 frames, found 3"


def test_a_bug_in_a_handler_keeps_its_traceback_in_the_log(ddft_backend_store, ddft_workspace,
                                                           monkeypatch, capsys):
    def broken(ctx):
        return {}["missing"]

    monkeypatch.setattr(jobs, "_load_handler", lambda kind: broken)
    job_id = jobs.create_job(ddft_backend_store, kind="generate", params={})
    capsys.readouterr()
    with pytest.raises(KeyError):
        jobs.run_job(ddft_backend_store, job_id, workspace=ddft_workspace)
    assert "Traceback" in capsys.readouterr().out
    with session_scope(ddft_backend_store) as session:
        assert queries.get_job(session, job_id=job_id).error == "KeyError: 'missing'"


def test_submit_refuses_a_bad_request_before_any_job_exists(ddft_backend_store, ddft_workspace,
                                                            monkeypatch):
    from engine.jobs.requests import GenerateRequest, GroundRequest

    spawned = []
    monkeypatch.setattr(jobs, "spawn_job", lambda db_engine, job_id, *, workspace: spawned.append(job_id))
    with pytest.raises(jobs.JobError) as caught:
        jobs.submit(ddft_backend_store,
                    GenerateRequest(variant="ghost", eval_set="nope", batch_size=0),
                    workspace=ddft_workspace)
    message = str(caught.value)
    assert message.startswith("cannot start generate ghost: ") and "\n" not in message
    for part in ("no model variant named 'ghost'", "no eval set named 'nope'",
                 "batch_size: expected an integer >= 1, found 0"):
        assert part in message
    with pytest.raises(jobs.JobError, match="is not a job request"):
        jobs.submit(ddft_backend_store, {"kind": "generate"}, workspace=ddft_workspace)
    with session_scope(ddft_backend_store) as session:
        assert queries.list_jobs(session) == []
    assert spawned == []

    _one_generation(ddft_backend_store)
    queued = jobs.submit(ddft_backend_store, GroundRequest(variant="tuned", eval_set="eval"),
                         workspace=ddft_workspace, detach=False)
    started = jobs.submit(ddft_backend_store, JudgeRequest(eval_set="eval"),
                          workspace=ddft_workspace)
    assert spawned == [started]
    with session_scope(ddft_backend_store) as session:
        job = queries.get_job(session, job_id=queued)
        assert (job.kind, job.status, job.title) == ("ground", "queued", "ground tuned")
        assert job.params == GroundRequest(variant="tuned", eval_set="eval").params()


def test_a_job_run_in_the_foreground_keeps_a_log_the_screens_can_show(ddft_store, ddft_workspace,
                                                                     monkeypatch, capsys):
    def talkative(ctx):
        ctx.log("training on 3 samples (key sk-abcdefghijklmnopqrstuvwx)")
        ctx.progress(1, 1)
        return {"trained": 3}

    monkeypatch.setattr(jobs, "_load_handler", lambda kind: talkative)
    job_id = jobs.create_job(ddft_store, kind="train", params={})
    job = jobs.run_job(ddft_store, job_id, workspace=ddft_workspace, progress=lambda *a: None)
    assert job.status == "succeeded"
    path = jobs.job_log_path(ddft_workspace, job_id)
    assert job.log_path == str(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith(f"job {job_id} (train) run in the foreground by pid {os.getpid()}")
    assert lines[1].startswith("training on 3 samples") and "sk-abcdef" not in lines[1]
    assert lines[-1] == f"job {job_id} succeeded: done"
    # The terminal got the handler's line too, and not the log's last line (the CLI prints its
    # own).
    out = capsys.readouterr().out
    assert "training on 3 samples" in out and "succeeded: done" not in out
