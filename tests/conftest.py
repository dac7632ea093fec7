"""Fixtures shared by every room's tests: a fresh store and workspace per test."""

from __future__ import annotations

import pytest

from db.store import open_store


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
