"""CSV cells that a spreadsheet would run as formulas are neutralised; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from engine.evaluation.spreadsheet import csv_writer, spreadsheet_cell


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0",
                                  "-2+3", "@SUM(A1:A2)", "\tlooks blank", "\rcarriage",
                                  "-", "=", "-inf", "-nan", "- 1"])
def test_text_that_starts_like_a_formula_gets_a_quote(text):
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-0.5, -3, 0, 2.5, None, True, "-0.5", "-0.1234", "+3",
                                   "-1e-05", "ana", "a=b", "", "'=already quoted"])
def test_numbers_and_plain_text_are_kept(value):
    assert spreadsheet_cell(value) == value


def test_the_writer_neutralises_every_cell_and_reads_back():
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(["rater", "score"])
    writer.writerows([["=1+1", -0.5], ["bob", "-0.2500"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["rater", "score"], ["'=1+1", "-0.5"], ["bob", "-0.2500"]]
    assert out.getvalue().endswith("\n") and "\r" not in out.getvalue()
