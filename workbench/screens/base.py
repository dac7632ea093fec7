"""The base of the workbench's screens: the store engine and one place that reports failed workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class WorkbenchScreen(Screen):
    """A screen of the workbench; its thread workers read the store and post messages back.

    Below 120 columns the screen carries the class `-narrow` (120 and up: `-wide`), for the
    layouts that fold away what does not fit an 80-column SSH terminal.
    """

    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"),
                                                                       (120, "-wide")]
    # Help and Quit come first in every screen's footer, so that a narrow terminal, which cuts
    # the footer's end, still shows them (a screen binding the same key replaces them in place).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "app.help", "Help", id="screen.help", tooltip="Show every key"),
        Binding("q", "app.quit", "Quit", id="screen.quit"),
    ]

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
