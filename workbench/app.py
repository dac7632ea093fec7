"""The ddft workbench app and `build_app`, the one factory the CLI and the tests use."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from workbench.screens.compare import CompareScreen
from workbench.screens.help import HelpScreen
from workbench.screens.jobs import JobsScreen
from workbench.screens.report import ReportScreen
from workbench.screens.runs import RunsScreen
from workbench.screens.samples import SamplesScreen

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class DdftApp(App[None]):
    """Curate samples, watch jobs and training runs, compare recipes and read Table 1, over one store."""

    CSS_PATH = "app.tcss"
    TITLE = "ddft"
    MODES: ClassVar[dict[str, Callable[[], Screen]]] = {
        "samples": SamplesScreen,
        "jobs": JobsScreen,
        "compare": CompareScreen,
        "report": ReportScreen,
        "runs": RunsScreen,
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
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Show every key"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, engine: Engine, *, location: str, workspace: Path | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.location = location
        # Where started runs put their checkpoints and logs; None: runs cannot be started here.
        self.workspace = workspace
        self.title = f"ddft — {location}"

    def on_mount(self) -> None:
        self.switch_mode("samples")

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        sections = [(screen.SUB_TITLE or "This screen", list(screen.BINDINGS)),
                    ("Everywhere", list(self.BINDINGS))]
        self.push_screen(HelpScreen(sections))


def build_app(workspace: Path | str | None = None, *, url: str | None = None) -> DdftApp:
    """The workbench over the store of `workspace` (or the database at `url`).

    Raises db.store.StoreError when the store cannot be opened.
    """
    # Deferred: SQLAlchemy costs most of a second to import, and `import workbench.app` must stay light.
    from db.store import open_store, resolve_workspace

    engine = open_store(workspace, url=url)
    folder = resolve_workspace(workspace)
    if url or os.environ.get("DDFT_DB_URL"):
        location = engine.url.render_as_string(hide_password=True)
    else:
        location = str(folder)
    return DdftApp(engine, location=location, workspace=folder)
