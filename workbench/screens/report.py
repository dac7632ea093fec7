"""The Report screen: the paper's Table 1 per model variant with 95% intervals, paired tests
against a baseline variant, score histograms, and how far blind human ratings agree with the
judge."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Select, Static
from textual.worker import get_current_worker

from workbench.data.report import (
    agreement_lines,
    format_accuracy,
    format_p,
    format_range,
    format_score,
    histogram_bars,
    load_report,
    video_lines,
)
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.table_columns import SCROLLBAR, Column, cell_width, fit_columns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from engine.evaluation.report import Report

# Drawn in this order; on a narrow terminal the columns of higher priority number are left out
# first (and named under the table), so the paper's four numbers stay.
COLUMNS = (Column("variant", "Variant", 0), Column("yes", "Yes", 3), Column("no", "No", 4),
           Column("accuracy", "Accuracy", 1), Column("average_score", "Average Score", 2),
           Column("n", "n", 5), Column("unparsable", "Unparsable", 8),
           Column("failed", "Failed", 9), Column("accuracy_ci", "Accuracy 95% CI", 6),
           Column("score_ci", "Score 95% CI", 7), Column("recipes", "Recipes", 10))
COMPARISON_COLUMNS = (Column("variant", "Variant", 0), Column("baseline", "Baseline", 9),
                      Column("pairs", "Pairs", 6), Column("only_variant", "Only variant yes", 7),
                      Column("only_baseline", "Only baseline yes", 8),
                      Column("accuracy_diff", "Δ Accuracy", 1), Column("mcnemar_p", "McNemar p", 2),
                      Column("score_diff", "Δ Score", 3),
                      Column("score_diff_ci", "Δ Score 95% CI", 5),
                      Column("score_p", "Bootstrap p", 4))
# Selector → the selection field it sets, in the order each choice narrows the next.
SELECTORS = {"report-eval-set": "eval_set", "report-judge": "judge",
             "report-protocol": "protocol", "report-version": "prompt_version",
             "report-baseline": "baseline"}
LABELS = {"report-eval-set": "eval set", "report-judge": "judge", "report-protocol": "protocol",
          "report-version": "version", "report-baseline": "baseline"}
NO_EVAL = ("No eval set yet — import the kitchen with `ddft data import kitchen`, or build a complete "
           "demo with `ddft demo`.")


def no_judgments(eval_set: str) -> str:
    generate = shlex.join(["ddft", "generate", "--variant", "NAME", "--eval-set", eval_set])
    judge = shlex.join(["ddft", "judge", "--eval-set", eval_set])
    return f"No judgments for {eval_set} yet — run `{generate}`, then `{judge}`."


def table1_cells(row, stats) -> tuple[str | Text, ...]:
    """Table 1's cells for one variant, then its intervals (`stats`: engine.evaluation.report.VariantStats)."""
    return (
        Text(row.variant, style="bold"),
        Text(str(row.yes), justify="right"),
        Text(str(row.no), justify="right"),
        Text(format_accuracy(row.accuracy), justify="right"),
        Text(format_score(row.average_score), justify="right"),
        Text(str(row.n), justify="right"),
        Text(str(row.unparsable), justify="right"),
        Text(str(row.failed), justify="right"),
        Text(format_range(stats.accuracy_low, stats.accuracy_high, "{:.2f}%") if stats else "—",
             justify="right"),
        Text(format_range(stats.score_low, stats.score_high) if stats else "—", justify="right"),
        Text(str(stats.recipes) if stats else "—", justify="right"),
    )


def comparison_cells(c) -> tuple[str | Text, ...]:
    """One paired comparison (engine.evaluation.report.Comparison) as table cells."""
    def right(value: str) -> Text:
        return Text(value, justify="right")

    return (
        Text(c.variant, style="bold"),
        Text(c.baseline),
        right(str(c.pairs)),
        right(str(c.variant_only_yes)),
        right(str(c.baseline_only_yes)),
        right("—" if c.accuracy_diff is None else f"{c.accuracy_diff:+.2f} pp"),
        right(format_p(c.mcnemar_p)),
        right("—" if c.score_diff is None else f"{c.score_diff:+.3f}"),
        right(format_range(c.score_diff_low, c.score_diff_high, "{:+.3f}")),
        right(format_p(c.score_p)),
    )


class ReportScreen(WorkbenchScreen):
    """Table 1 for one eval set under one judge, protocol and prompt version."""

    SUB_TITLE = "Report"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "focus_select('#report-eval-set')", "Eval set", id="report.eval_set"),
        Binding("j", "focus_select('#report-judge')", "Judge", id="report.judge"),
        Binding("b", "focus_select('#report-baseline')", "Baseline", id="report.baseline",
                tooltip="Choose the variant every other one is compared with"),
        Binding("r", "reload", "Reload", id="report.reload"),
    ]

    @dataclass
    class ReportLoaded(Message):
        report: Report

    def __init__(self) -> None:
        super().__init__()
        self.report: Report | None = None
        # What the user chose; every other field takes its default (DEFAULT_RULE), exactly as
        # `ddft report` without that option.
        self.asked: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        # Each choice beside its name, one line each: five to a row from 120 columns, three below.
        with Grid(id="report-bar"):
            for selector, label in LABELS.items():
                with Horizontal(classes="report-choice"):
                    yield Static(label, classes="report-label")
                    yield Select([], prompt="—", id=selector, compact=True)
        with VerticalScroll(id="report-body"):
            yield DataTable(id="table1", cursor_type="row", zebra_stripes=True)
            yield Static("", id="table1-left-out")
            yield Static("", id="comparisons-title", classes="report-title")
            yield DataTable(id="comparisons", cursor_type="row", zebra_stripes=True)
            yield Static("", id="comparisons-left-out")
            yield Static("", id="report-histogram")
            yield Static("", id="report-agreement")
            yield Static("", id="report-video")
            yield Static("loading…", id="report-provenance")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#table1", DataTable).focus()

    def on_screen_resume(self) -> None:
        self.load()

    def load(self) -> None:
        self._load(self.db_engine, dict(self.asked))

    @work(thread=True, exclusive=True, exit_on_error=False, group="report-load")
    def _load(self, db_engine: Engine, asked: dict[str, str]) -> None:
        # The bootstrap behind the intervals takes a moment on a large eval set: a thread.
        report = load_report(db_engine, **asked)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ReportLoaded(report))

    @on(ReportLoaded)
    def _report_loaded(self, message: ReportLoaded) -> None:
        report = self.report = message.report
        s = report.selection

        def options(values: tuple[str, ...]) -> list[tuple[Text, str]]:
            return [(Text(value), value) for value in values]

        wanted = {
            "#report-eval-set": (options(s.eval_sets), s.eval_set or None),
            "#report-judge": (options(s.judges), s.judge),
            "#report-protocol": (options(s.protocols), s.protocol),
            "#report-version": (options(s.prompt_versions), s.prompt_version),
            "#report-baseline": (options(s.variants), s.baseline),
        }
        # The builder resolves each choice (falling back to what exists); show what it used.
        with self.prevent(Select.Changed):
            for selector, (options, value) in wanted.items():
                select = self.query_one(selector, Select)
                select.set_options(options)
                if value is not None:
                    select.value = value
        self._show_tables()
        comparisons = self.query_one("#comparisons", DataTable)
        comparisons.display = bool(report.comparisons)
        self.query_one("#comparisons-title", Static).update(
            Text(f"Paired against {report.baseline} (same samples, same judge)", style="bold")
            if report.comparisons else "")
        self.query_one("#report-histogram", Static).update(self._histograms(report))
        self.query_one("#report-agreement", Static).update(self._agreements(report))
        self.query_one("#report-video", Static).update(self._video(report))
        self.query_one("#report-provenance", Static).update(self._provenance(report))

    def _show_tables(self) -> None:
        """Table 1 and the paired table with the columns that fit, by priority; the columns
        left out are named under each."""
        report = self.report
        if report is None:
            return
        stats = {v.variant: v for v in report.stats}
        self._fill("#table1", COLUMNS, [
            (row.variant, table1_cells(row, stats.get(row.variant))) for row in report.rows])
        self._fill("#comparisons", COMPARISON_COLUMNS, [
            (c.variant, comparison_cells(c)) for c in report.comparisons])

    def _fill(self, selector: str, columns: tuple[Column, ...],
              rows: list[tuple[str, tuple[str | Text, ...]]]) -> None:
        table = self.query_one(selector, DataTable)
        widths = {column.key: cell_width(cells[i] for _, cells in rows)
                  for i, column in enumerate(columns)}
        # The screen's width, not the table's: the table may not be laid out yet when the
        # report arrives, and the columns shown must not depend on which comes first.
        width = self.size.width - 4
        fitted = fit_columns(columns, widths, width - SCROLLBAR)
        keys = [column.key for column, _ in fitted]
        table.clear(columns=True)
        for column, _ in fitted:
            table.add_column(column.label, key=column.key)
        shown = [i for i, column in enumerate(columns) if column.key in keys]
        for key, cells in rows:
            table.add_row(*(cells[i] for i in shown), key=key)
        left_out = [column.label for column in columns if column.key not in keys]
        self.query_one(f"{selector}-left-out", Static).update(
            Text(f"Left out at this width: {', '.join(left_out)} (wider terminal, or "
                 "`ddft report`)", style="dim") if left_out and rows else "")

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_tables)

    @staticmethod
    def _histograms(report: Report) -> Text:
        text = Text()
        histograms = histogram_bars(report)
        if histograms:
            text.append("\nScore histogram (scores rounded half up)\n", style="bold")
        for variant, bars in histograms:
            text.append(f"{variant}\n")
            for bar in bars:
                text.append(f"  {bar}\n")
        return text

    @staticmethod
    def _agreements(report: Report) -> Text:
        """People against the judge for each rating campaign on the eval set."""
        text = Text()
        for summary in report.agreement:
            text.append("\n")
            for line, style in agreement_lines(summary):
                text.append(line + "\n", style=style)
        return text

    @staticmethod
    def _video(report: Report) -> Text:
        """Where in the video: timestamp checks, frame coverage, grounding hit rates."""
        text = Text()
        for line, style in video_lines(report.video_parts()):
            if style == "bold":
                text.append("\n")
            text.append(line + "\n", style=style)
        return text

    @staticmethod
    def _provenance(report: Report) -> Text:
        s = report.selection
        if not s.eval_sets:
            return Text(NO_EVAL, style="dim")
        if not report.rows:
            return Text(no_judgments(s.eval_set), style="dim")
        text = Text()
        text.append(f"eval set {s.eval_set} · {report.n_samples} samples judged\n")
        text.append(f"judge {s.judge} · protocol {s.protocol} · prompt version "
                    f"{s.prompt_version}\n")
        defaults = [name.replace("_", " ") for name in s.defaults]
        if defaults:
            text.append(f"defaults: {', '.join(defaults)} (the most used among the eval set's "
                        "judgments, ties by name; baseline: the first variant)\n", style="dim")
        if len(report.decoding) > 1:
            text.append(f"⚠ {len(report.decoding)} decoding settings are mixed in these rows\n",
                        style="yellow")
        text.append("\nAccuracy = Yes / (Yes + No) × 100; Average Score = mean of parsed scores; "
                    "n counts judged generations, unparsable included. Accuracy CI: Wilson; score "
                    f"CI: bootstrap resampling recipes whole ({report.n_boot} resamples, seed "
                    f"{report.seed}). McNemar: exact, on samples both variants got yes/no for; "
                    "Δ Score: paired bootstrap.", style="dim")
        return text

    @on(Select.Changed)
    def _choice_changed(self, event: Select.Changed) -> None:
        name = SELECTORS[event.select.id or ""]
        order = list(SELECTORS.values())
        # A new eval set, judge or protocol narrows the choices after it: those go back to
        # their defaults (the baseline only with a new eval set).
        for later in order[order.index(name) + 1:]:
            if later != "baseline" or name == "eval_set":
                self.asked.pop(later, None)
        if event.value is Select.BLANK:
            self.asked.pop(name, None)
        else:
            self.asked[name] = str(event.value)
        self.load()

    def action_focus_select(self, selector: str) -> None:
        self.query_one(selector, Select).focus()

    def action_reload(self) -> None:
        self.load()
