"""How the report writes its numbers: intervals as `[low, high]`, so a negative bound never reads
as a dash, and one convention in CSV: every share a fraction from 0 to 1."""

from __future__ import annotations

import csv
import io

from db.queries import JudgedRow
from engine.evaluation.report import format_interval, render_csv, render_markdown, report_from_rows


def _rows(variant, scores, verdicts):
    return [JudgedRow(variant, i, f"recipe{i}", score, verdict, "gpt-4o", "paper", "v1", {})
            for i, (score, verdict) in enumerate(zip(scores, verdicts))]


def _report():
    # "worse" scores 1.5 below "base" on every sample, so the difference and its interval are
    # negative: [-1.500, -1.500].
    base = _rows("base", [4.0, 3.0, 4.0, 5.0], ["yes", "no", "yes", "yes"])
    worse = _rows("worse", [2.5, 1.5, 2.5, 3.5], ["no", "no", "no", "yes"])
    return report_from_rows(base + worse, eval_set="e", n_boot=200)


def test_intervals_are_bracketed_so_negative_bounds_read_plainly():
    assert format_interval(-1.672, -0.47, "{:.3f}") == "[-1.672, -0.470]"
    assert format_interval(4.7, 44.8, "{:.2f}%") == "[4.70%, 44.80%]"
    assert format_interval(None, 1.0) == "—"
    markdown = render_markdown(_report())
    assert "| [-1.500, -1.500] |" in markdown  # Δ Score CI of worse against base
    assert "| base | 3 | 1 | 75.00% | 4.00 | 4 | 0 | 0 | [30.06%, 95.44%] |" in markdown
    assert "–-" not in markdown


def test_every_share_in_the_csv_is_a_fraction():
    report = _report()
    rows = {row["variant"]: row for row in csv.DictReader(io.StringIO(render_csv(report)))}
    base, worse = rows["base"], rows["worse"]
    assert (base["accuracy"], base["accuracy_ci_low"], base["accuracy_ci_high"]) == (
        "0.7500", "0.3006", "0.9544")
    assert worse["accuracy"] == "0.2500" and worse["score_diff_low"] == "-1.5000"
    # The markdown and JSON keep percent, the paper's unit.
    assert report.rows[0].accuracy == 75.0
