"""The workspace, the store with its -wal and -shm, the judge cache and job logs are for their
owner and group only, whatever the umask lets through."""

from __future__ import annotations

import os
import stat

import pytest

from db import queries
from db.store import open_store, session_scope


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """The usual umask of a shared machine (022), or none at all."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_new_workspace_and_its_store_are_not_world_readable(tmp_path, monkeypatch, umask):
    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    previous = os.umask(umask)
    try:
        workspace = tmp_path / "ws"
        db_engine = open_store(workspace)
        with session_scope(db_engine) as session:
            queries.create_job(session, kind="check", params={})
        with db_engine.connect():  # the -wal and -shm exist while a connection is open
            assert _mode(workspace) == 0o750
            for name in ("ddft.db", "ddft.db-wal", "ddft.db-shm"):
                assert _mode(workspace / name) == 0o640, name
        db_engine.dispose()
    finally:
        os.umask(previous)


def test_an_older_world_readable_store_is_tightened_on_open(tmp_path, monkeypatch, open_umask):
    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    open_store(tmp_path).dispose()
    os.chmod(tmp_path / "ddft.db", 0o664)
    open_store(tmp_path).dispose()
    assert _mode(tmp_path / "ddft.db") == 0o660


def test_the_judge_cache_is_not_world_readable(tmp_path, open_umask):
    from engine.judge.gpt import CACHE_FILE, _Cache

    cache = _Cache(tmp_path / "cache" / CACHE_FILE)
    cache.put("k", model="m", protocol="paper", prompt_version="v", content="{'score': 4}",
              response_model="m", tokens_in=1, tokens_out=1)
    cache.close()
    assert _mode(tmp_path / "cache") == 0o750
    assert _mode(tmp_path / "cache" / CACHE_FILE) == 0o640


def test_a_job_log_is_not_world_readable(ddft_store, ddft_workspace, monkeypatch, open_umask):
    from engine.jobs import runner

    class NoProcess:
        pid = 4242

        def __init__(self, command, *, stdout, **kwargs):
            stdout.write(b"started\n")

        def wait(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", NoProcess)
    job_id = runner.create_job(ddft_store, kind="check", params={})
    runner.spawn_job(ddft_store, job_id, workspace=ddft_workspace)
    log = runner.job_log_path(ddft_workspace, job_id)
    assert log.read_bytes() == b"started\n" and _mode(log) == 0o640
    assert _mode(log.parent) == 0o750
