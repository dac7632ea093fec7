"""`ddft bench compare` at a tiny size: both loaders timed, median and max, with the target."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from engine.cli.main import app

runner = CliRunner()


def test_bench_compare_times_a_page_and_a_view():
    result = runner.invoke(app, ["bench", "compare", "--samples", "6", "--variants", "3",
                                 "--repeats", "3"])
    assert result.exit_code == 0, result.output
    assert "store: 6 eval videos × 3 variants" in result.output
    page = re.search(r"page \(6 videos × 3 variants\): median ([\d.]+) ms, max ([\d.]+) ms "
                     r"over 3 loads · (\d+) SQL statements a load · target ≤ 100 ms: (met|MISSED)",
                     result.output)
    view = re.search(r"one sample's view \(3 variants\): median ([\d.]+) ms, max ([\d.]+) ms "
                     r"over 3 loads · (\d+) SQL statements a load", result.output)
    assert page and view, result.output
    for found in (page, view):
        median, worst, statements = float(found[1]), float(found[2]), int(found[3])
        assert 0 < median <= worst and statements > 0


def test_bench_compare_rejects_a_setting_below_one():
    result = runner.invoke(app, ["bench", "compare", "--samples", "0"])
    # The option declares its range, so typer refuses the value before the command runs.
    assert result.exit_code == 2
    assert "Invalid value for '--samples'" in result.output
    assert "Traceback" not in result.output
