"""Jobs: typed requests, the runner that executes them as detached processes reporting to the
store, and the handlers that do the work. Import-light: the workbench imports this package to
start, cancel and resume work; handlers import torch only when a job runs.

The names below are loaded on first use, so that `engine.jobs.train_settings` (which the
training loop and the GPU benchmark import) does not pull in the store and SQLAlchemy."""

from __future__ import annotations

import importlib
from typing import Any

_INTERFACE = {
    "engine.jobs.requests": ("KINDS", "CheckRequest", "GenerateRequest", "GroundRequest",
                             "JobError", "JudgeRequest", "TimestampsRequest", "TrainRequest"),
    "engine.jobs.runner": ("HEARTBEAT_S", "STALE_AFTER_S", "JobCancelled", "JobContext",
                           "create_job", "effective_status", "job_log_path",
                           "refresh_job_states", "request_cancel", "resume_job", "run_job",
                           "spawn_job", "start_queued", "stop_on_signals", "submit"),
    "engine.jobs.queue": ("QueuePlace", "device_slots", "queue_places"),
}
_WHERE = {name: module for module, names in _INTERFACE.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
