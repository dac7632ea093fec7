"""The ddft workbench app and `build_app`, the one factory the CLI and the tests use."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from db.workspace import display_url, resolve_workspace

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


# Each screen's module is imported when its mode is first shown, so that the first frame waits
# only for the Samples screen.
def _samples_screen() -> Screen:
    from workbench.screens.samples import SamplesScreen

    return SamplesScreen()


def _jobs_screen() -> Screen:
    from workbench.screens.jobs import JobsScreen

    return JobsScreen()


def _compare_screen() -> Screen:
    from workbench.screens.compare import CompareScreen

    return CompareScreen()


def _report_screen() -> Screen:
    from workbench.screens.report import ReportScreen

    return ReportScreen()


def _runs_screen() -> Screen:
    from workbench.screens.runs import RunsScreen

    return RunsScreen()


def _grid_screen() -> Screen:
    from workbench.screens.grid import GridScreen

    return GridScreen()


class DdftApp(App[None]):
    """Curate samples, watch jobs and training runs, compare recipes and read Table 1, over one store.

    With `rater` set it is the blind rating app instead: the rating screen only, with no way to
    the screens that name variants.
    """

    CSS_PATH = "app.tcss"
    TITLE = "ddft"
    MODES: ClassVar[dict[str, Callable[[], Screen]]] = {
        "samples": _samples_screen,
        "jobs": _jobs_screen,
        "compare": _compare_screen,
        "report": _report_screen,
        "runs": _runs_screen,
        "grid": _grid_screen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('samples')", "Samples", id="app.samples",
                tooltip="Training and eval samples: filter, search, include/exclude"),
        Binding("2", "switch_mode('jobs')", "Jobs", id="app.jobs",
                tooltip="Background jobs: progress, loss, log, cancel"),
        Binding("3", "switch_mode('compare')", "Compare", id="app.compare",
                tooltip="Reference recipe beside every variant's generation, with filters"),
        Binding("4", "switch_mode('report')", "Report", id="app.report",
                tooltip="Table 1: Yes, No, Accuracy, Average Score per variant"),
        Binding("5", "switch_mode('runs')", "Runs", id="app.runs",
                tooltip="Training runs: progress, ETA, curves, log; start, cancel, resume"),
        Binding("6", "switch_mode('grid')", "Grid", id="app.grid",
                tooltip="Ablation grids: cells × status, then the comparison table"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Show every key"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        db_engine: Engine | None,
        *,
        location: str,
        workspace: Path | None = None,
        open_store: Callable[[], Engine] | None = None,
        rater: str | None = None,
        campaign: str | None = None,
        ask_rater: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`db_engine` is the open store, or None with `open_store` to open it after the first frame.
        With `ask_rater` (the rating app served to a browser) it is the rating app, and its first
        screen asks for the rater's name. `clock` gives "now" (aware, UTC) for the ages and
        heartbeats the job screens draw; the system clock by default."""
        # The blind rating app: the rating screen only, never a screen with variant names.
        self.rating_app = bool(rater) or ask_rater
        if self.rating_app:
            # No command palette for a rater (its commands are the workbench's); set before
            # App.__init__, which reads it.
            self.ENABLE_COMMAND_PALETTE = False
        super().__init__()
        if db_engine is None and open_store is None:
            raise ValueError("DdftApp needs an engine or a way to open one")
        self.db_engine = db_engine
        self._open_store = open_store
        self.location = location
        # Where started runs put their checkpoints and logs; None: runs cannot be started here.
        self.workspace = workspace
        self.rater = rater
        self.campaign = campaign
        self.store_error: str | None = None
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self._pending_mode: str | None = None
        self.title = f"ddft — rating as {rater}" if rater else f"ddft — {location}"

    def get_driver_class(self):  # noqa: ANN201 — Textual's signature
        """Textual's driver, except that on Linux and macOS the screen is sized by the terminal
        it is drawn on (workbench.terminal), so `ddft tui | tee log` fills its pane."""
        driver = super().get_driver_class()
        # Compared by name: the Linux driver's module imports termios, which Windows lacks.
        if (driver.__module__, driver.__name__) == ("textual.drivers.linux_driver",
                                                    "LinuxDriver"):
            from workbench.terminal import DrawnTerminalDriver

            return DrawnTerminalDriver
        return driver

    @property
    def store_ready(self) -> bool:
        return self.db_engine is not None

    def on_mount(self) -> None:
        if not self.rating_app:
            self.switch_mode("samples")
        if self.store_ready:
            self._start()
        else:
            # SQLAlchemy costs about half a second to import: open the store once the first
            # frame is on the screen, in a thread, and let the screens read it when it is ready.
            self.call_after_refresh(self._open_store_in_background)

    def _open_store_in_background(self) -> None:
        self.run_worker(self._open_store_worker, thread=True, group="open-store",
                        exit_on_error=False)

    def _open_store_worker(self) -> None:
        try:
            db_engine = self._open_store()  # type: ignore[misc]
        except Exception as exc:  # StoreError, or a driver's own error for a bad URL
            self.call_from_thread(self._store_failed, str(exc))
            return
        self.call_from_thread(self._store_opened, db_engine)

    def _store_failed(self, message: str) -> None:
        self.store_error = message
        self.exit(return_code=1)

    def _store_opened(self, db_engine: Engine) -> None:
        self.db_engine = db_engine
        self._start()
        if self._pending_mode:
            mode, self._pending_mode = self._pending_mode, None
            self.switch_mode(mode)
        from workbench.screens.base import WorkbenchScreen

        for screen in self.screen_stack:
            if isinstance(screen, WorkbenchScreen):
                screen.store_opened()

    def _start(self) -> None:
        if self.rater:
            from workbench.screens.rate import RateScreen

            self.push_screen(RateScreen(rater=self.rater, campaign=self.campaign))
        elif self.rating_app:
            from workbench.screens.rater_name import RaterNameScreen

            self.push_screen(RaterNameScreen(), self._rater_named)
        else:
            # Jobs left queued by a reboot start when the workbench opens (the Jobs and Runs
            # screens keep doing it each second while shown).
            self.run_worker(self._start_queue, thread=True, group="start-queue",
                            exit_on_error=False)

    def _start_queue(self) -> None:
        from workbench.data.jobs import start_queue

        start_queue(self.db_engine)  # type: ignore[arg-type]

    def _rater_named(self, name: str | None) -> None:
        if not name:
            return
        self.rater = name
        self.title = f"ddft — rating as {name}"
        from workbench.screens.rate import RateScreen

        self.push_screen(RateScreen(rater=name, campaign=self.campaign))

    async def action_switch_mode(self, mode: str) -> None:
        if self.rating_app:
            return
        if not self.store_ready:
            # A key pressed while the store opens: show that screen as soon as it can read.
            self._pending_mode = mode
            return
        await super().action_switch_mode(mode)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A rater never reaches the screens that show variant names.
        if self.rating_app and action == "switch_mode":
            return False
        return True

    def action_help(self) -> None:
        from workbench.screens.help import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        app_bindings = [b for b in self.BINDINGS
                        if not (self.rating_app and isinstance(b, Binding) and b.action.startswith("switch_mode"))]
        sections = [(screen.SUB_TITLE or "This screen", list(screen.BINDINGS)),
                    ("Everywhere", app_bindings)]
        self.push_screen(HelpScreen(sections))


def build_app(
    workspace: Path | str | None = None,
    *,
    url: str | None = None,
    rater: str | None = None,
    campaign: str | None = None,
    ask_rater: bool = False,
    lazy_store: bool = False,
) -> DdftApp:
    """The workbench over the store of `workspace` (or the database at `url`); with `rater`, the
    blind rating app for that rater (and `campaign`, else the rater's one open campaign).

    With `lazy_store` the store is opened after the first frame (how `ddft tui` starts), and a
    store that cannot be opened ends the app with `store_error` set and return code 1; otherwise
    the store is opened here and db.store.StoreError is raised when it cannot be.
    """
    folder = resolve_workspace(workspace)
    chosen_url = url or os.environ.get("DDFT_DB_URL")
    location = display_url(chosen_url) if chosen_url else str(folder)

    def open_it() -> Engine:
        # Deferred: SQLAlchemy costs most of a second to import, and `import workbench.app`
        # must stay light.
        from db.store import open_store

        # A read: a missing store is told ("no store at PATH"), never made empty here.
        return open_store(workspace, url=url, create=False)

    if lazy_store:
        return DdftApp(None, location=location, workspace=folder, open_store=open_it,
                       rater=rater, campaign=campaign, ask_rater=ask_rater)
    return DdftApp(open_it(), location=location, workspace=folder, rater=rater,
                   campaign=campaign, ask_rater=ask_rater)
