"""The base of the workbench's screens: the store engine and one place that reports failed workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class WorkbenchScreen(Screen):
    """A screen of the workbench; its thread workers read the store and post messages back."""

    @property
    def db_engine(self) -> Engine:
        return self.app.db_engine  # type: ignore[attr-defined]

    @property
    def store_ready(self) -> bool:
        """False only on the first screen of `ddft tui` while the store is still opening."""
        return getattr(self.app, "db_engine", None) is not None

    def store_opened(self) -> None:
        """Called by the app when the store it opened after the first frame is ready."""

    @on(Worker.StateChanged)
    def _report_failed_worker(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False: a store hiccup becomes a notice, not a crash.
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(
                f"{event.worker.group}: {type(error).__name__}: {error}",
                title="Something failed",
                severity="error",
                timeout=10,
                markup=False,  # error text names files and rows: shown as it is
            )
