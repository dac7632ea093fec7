"""Fixtures shared by every room's tests: a fresh store and workspace per test."""

from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

from db.store import database_url, open_store

# pytest-xdist's workers run with COLUMNS=80 and LINES=24 in their environment, which Rich then
# takes as the width of every CLI output the tests read; without them (as in one process) the
# output is the width Rich gives a pipe. The same width in both ways of running the suite.
for _variable in ("COLUMNS", "LINES"):
    os.environ.pop(_variable, None)

# The suite runs one worker per core, and two of them may train at once, each with torch's
# OpenMP threads (one per core): threads that spin while they wait then take the cores from
# each other's work. Measured on 2 cores, the time-aware study's test and the demo's tests
# side by side: 9 min 32 s spinning, 2 min 42 s with threads that sleep. The numbers computed
# are the same either way. Set before anything imports torch (OpenMP reads it once); the jobs
# the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def ddft_workspace(tmp_path, monkeypatch):
    """An empty workspace folder; DDFT_DB_URL is cleared so the store lives inside it."""
    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    monkeypatch.delenv("DDFT_WORKSPACE", raising=False)
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def ddft_store(ddft_workspace):
    """A fresh SQLite store in the test's workspace."""
    db_engine = open_store(ddft_workspace)
    yield db_engine
    db_engine.dispose()


# ------------------------------------------------------------------ one fixture, two backends

PG_URL_VARIABLE = "DDFT_TEST_PG_URL"


def _postgres_skip_reason() -> str:
    return os.environ.get("DDFT_TEST_PG_SKIP") or (
        f"{PG_URL_VARIABLE} is unset: run the tests through scripts/with_postgres.sh "
        f"(make test does) or point it at a PostgreSQL database")


@contextmanager
def fresh_postgres_schema(name: str) -> Iterator[str]:
    """A new, empty schema in the test server's database; yields a URL whose connections use
    it (search_path), so even subprocesses given the URL see only this test's tables."""
    from sqlalchemy import create_engine, text

    base = os.environ.get(PG_URL_VARIABLE)
    if not base:
        pytest.skip(_postgres_skip_reason())
    schema = "t_" + re.sub(r"[^a-z0-9]+", "_", name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        # The schema's name is also each connection's application_name: the clean-up below can
        # tell this test's connections from those of the tests running beside it.
        yield f"{base}{separator}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.connect() as connection:
            # A transaction this test left open (in a killed subprocess) must not block the
            # drop. Only this test's: another worker's test may be between two statements of
            # its own transaction at this moment (a store being created), and killing its
            # connection fails that test.
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = :schema AND state LIKE 'idle in transaction%'"
            ), {"schema": schema})
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ddft_store_url(request, ddft_workspace, monkeypatch):
    """The URL of a fresh, empty store on each backend: the workspace's SQLite file, then a
    new schema on the PostgreSQL server of DDFT_TEST_PG_URL (skipped, with the reason, when
    there is none). On PostgreSQL DDFT_DB_URL is set too, so commands and job processes started
    for the workspace use the same store."""
    if request.param == "sqlite":
        yield database_url(ddft_workspace)
        return
    with fresh_postgres_schema(request.node.name) as url:
        monkeypatch.setenv("DDFT_DB_URL", url)
        yield url


@pytest.fixture
def ddft_backend_store(ddft_store_url):
    """A fresh store on each backend (see `ddft_store_url`), opened."""
    db_engine = open_store(url=ddft_store_url)
    yield db_engine
    db_engine.dispose()
