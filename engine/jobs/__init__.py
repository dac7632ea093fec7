"""Jobs: typed requests, the runner that executes them as detached processes reporting to the
store, and the handlers that do the work. Import-light: the workbench imports this package to
start, cancel and resume work; handlers import torch only when a job runs."""

from engine.jobs.requests import (  # noqa: F401 (the package's interface)
    KINDS,
    CheckRequest,
    GenerateRequest,
    GroundRequest,
    JobError,
    JudgeRequest,
    TimestampsRequest,
    TrainRequest,
)
from engine.jobs.runner import (  # noqa: F401 (the package's interface)
    HEARTBEAT_S,
    STALE_AFTER_S,
    JobCancelled,
    JobContext,
    create_job,
    job_log_path,
    refresh_job_states,
    request_cancel,
    resume_job,
    run_job,
    spawn_job,
    submit,
)
