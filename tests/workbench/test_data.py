"""The workbench's pure pieces: ingredient marks, log tails, the loss sparkline, labels, formats."""

from __future__ import annotations

from workbench.data.compare import mark_ingredients
from workbench.data.jobs import format_age, loss_sparkline, tail_lines
from workbench.data.report import format_accuracy, format_score
from workbench.data.samples import SampleFilters, SamplePage

from .conftest import BASE_TEXT, REFERENCE, TUNED_TEXT


def test_ingredient_marks_follow_engine_metrics_matching():
    reference = REFERENCE.format(i=0)  # lines 2..5: eggs, tomato, olive oil, salt
    tuned = mark_ingredients(reference, TUNED_TEXT)
    assert (sorted(tuned.matched), sorted(tuned.missing), sorted(tuned.extra)) == ([2, 3, 4], [5], [])
    base = mark_ingredients(reference, BASE_TEXT)  # BASE_TEXT line 2 is "- water", line 3 "- salt"
    assert (sorted(base.matched), sorted(base.missing), sorted(base.extra)) == ([5], [2, 3, 4], [2])
    assert mark_ingredients("no recipe here", TUNED_TEXT).matched == frozenset()


def test_tail_lines_reads_only_the_end_of_a_long_log(tmp_path):
    log = tmp_path / "long.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail_lines(log, 3) == ("line 99997", "line 99998", "line 99999")
    short = tmp_path / "short.log"
    short.write_text("only\n")
    assert tail_lines(short) == ("only",)


def test_loss_sparkline_falls_from_high_to_low_blocks():
    line = loss_sparkline([(step, 3.0 / step) for step in range(1, 201)], 20)
    assert len(line) == 20 and line[0] == "█" and line[-1] == "▁"
    assert loss_sparkline([(1, 2.0)], 20) == ""


def test_labels_and_formats():
    page = SamplePage(filters=SampleFilters(), offset=50, total=120, rows=tuple(range(50)))  # type: ignore[arg-type]
    assert page.label == "rows 51–100 of 120 · page 2/3" and page.has_next and page.has_prev
    assert SamplePage(filters=SampleFilters(), offset=0, total=0, rows=()).label == "rows 0 of 0"
    assert format_accuracy(100 * 22 / 47) == "46.81%" and format_accuracy(None) == "—"
    assert format_score(2.666) == "2.67" and format_score(None) == "—"
    assert format_age(5) == "5s ago" and format_age(125) == "2m ago" and format_age(7300) == "2h ago"
