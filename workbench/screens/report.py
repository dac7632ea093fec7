"""The Report screen: the paper's Table 1 (Yes, No, Accuracy, Average Score) per model variant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Select, Static
from textual.worker import get_current_worker

from workbench.data.report import ReportView, format_accuracy, format_score, load_report
from workbench.screens.base import WorkbenchScreen

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

COLUMNS = (("variant", "Variant"), ("yes", "Yes"), ("no", "No"), ("accuracy", "Accuracy"),
           ("average_score", "Average Score"), ("n", "n"), ("unparsable", "Unparsable"))
NO_EVAL = ("No eval set yet — import the kitchen with `ddft data kitchen`, or build a complete "
           "demo with `ddft demo`.")


def no_judgments(eval_set: str) -> str:
    return (f"No judgments for {eval_set} yet — run `ddft generate --variant NAME --eval-set "
            f"{eval_set}`, then `ddft judge --eval-set {eval_set}`.")


def table1_cells(row) -> tuple[str | Text, ...]:
    return (
        Text(row.variant, style="bold"),
        Text(str(row.yes), justify="right"),
        Text(str(row.no), justify="right"),
        Text(format_accuracy(row.accuracy), justify="right"),
        Text(format_score(row.average_score), justify="right"),
        Text(str(row.n), justify="right"),
        Text(str(row.unparsable), justify="right"),
    )


class ReportScreen(WorkbenchScreen):
    """Table 1 for one eval set under one judge, protocol and prompt version."""

    SUB_TITLE = "Report"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "focus_select('#report-eval-set')", "Eval set", id="report.eval_set"),
        Binding("j", "focus_select('#report-judge')", "Judge", id="report.judge"),
        Binding("r", "reload", "Reload", id="report.reload"),
    ]

    @dataclass
    class ReportLoaded(Message):
        view: ReportView

    def __init__(self) -> None:
        super().__init__()
        self.view: ReportView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="report-bar"):
            yield Select([], prompt="eval set", id="report-eval-set")
            yield Select([], prompt="judge", id="report-judge")
            yield Select([], prompt="protocol", id="report-protocol")
            yield Select([], prompt="prompt version", id="report-version")
        with VerticalScroll(id="report-body"):
            yield DataTable(id="table1", cursor_type="row", zebra_stripes=True)
            yield Static("loading…", id="report-provenance")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#table1", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        table.focus()

    def on_screen_resume(self) -> None:
        self.load()

    def load(self) -> None:
        def chosen(selector: str):
            return self.query_one(selector, Select).selection

        self._load(self.engine, chosen("#report-eval-set"), chosen("#report-judge"),
                   chosen("#report-protocol"), chosen("#report-version"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="report-load")
    def _load(self, engine: Engine, dataset_id: int | None, judge: str | None,
              protocol: str | None, prompt_version: str | None) -> None:
        view = load_report(engine, dataset_id=dataset_id, judge=judge, protocol=protocol,
                           prompt_version=prompt_version)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ReportLoaded(view))

    @on(ReportLoaded)
    def _report_loaded(self, message: ReportLoaded) -> None:
        view = self.view = message.view
        wanted = {
            "#report-eval-set": ([(Text(name), i) for i, name in view.eval_sets], view.dataset_id),
            "#report-judge": ([(Text(j), j) for j in view.judges], view.judge),
            "#report-protocol": ([(Text(p), p) for p in view.protocols], view.protocol),
            "#report-version": ([(Text(v), v) for v in view.prompt_versions], view.prompt_version),
        }
        # The loader resolves each choice (falling back to what exists); show what it used.
        with self.prevent(Select.Changed):
            for selector, (options, value) in wanted.items():
                select = self.query_one(selector, Select)
                select.set_options(options)
                if value is not None:
                    select.value = value
        table = self.query_one("#table1", DataTable)
        table.clear()
        for row in view.rows:
            table.add_row(*table1_cells(row), key=row.variant)
        self.query_one("#report-provenance", Static).update(self._provenance(view))

    @staticmethod
    def _provenance(view: ReportView) -> Text:
        if not view.eval_sets:
            return Text(NO_EVAL, style="dim")
        if not view.rows:
            return Text(no_judgments(view.eval_set), style="dim")
        text = Text()
        text.append(f"eval set {view.eval_set} · {view.n_samples} samples judged\n")
        text.append(f"judge {view.judge} · protocol {view.protocol} · prompt version {view.prompt_version}\n")
        if view.decodings > 1:
            text.append(f"⚠ {view.decodings} decoding settings are mixed in these rows\n", style="yellow")
        text.append("\nAccuracy = Yes / (Yes + No) × 100; Average Score = mean of parsed scores; "
                    "n counts judged generations, unparsable included.", style="dim")
        return text

    @on(Select.Changed)
    def _choice_changed(self) -> None:
        self.load()

    def action_focus_select(self, selector: str) -> None:
        self.query_one(selector, Select).focus()

    def action_reload(self) -> None:
        self.load()
