"""Waiting on another process: poll what it writes (the store, /proc) in short steps until a
condition holds. The timeout is a safety net for a stuck process, never a timing: a tiny CPU run
takes seconds, but the 2 cores may be shared."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str, *, timeout: float = 240.0) -> T:
    """The first truthy value of `predicate()`; raises AssertionError naming `what` when it has
    not come after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
