"""`ddft report` and the Report screen's loader build one report from one selection: the same
numbers in both, and a table that never mixes prompt versions."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from db import campaigns as c
from db import queries
from db.store import session_scope
from engine.cli.main import app
from engine.evaluation.rating import create_campaign
from engine.evaluation.report import render_json
from workbench.data.report import load_report

runner = CliRunner()
ENV = {"COLUMNS": "200"}
JUDGE, PROTOCOL = "gpt-4o", "paper"
# (prompt version, score, verdict) per variant: every sample is judged twice, once under each
# prompt version, as happens at the first change of the judge's prompt.
JUDGED = {"tuned": (("paper-v1", 5.0, "yes"), ("paper-v2", 1.0, "no")),
          "base": (("paper-v1", 2.0, "no"), ("paper-v2", 4.0, "yes"))}


def _store(db_engine, *, variants=("tuned",), samples: int = 4) -> None:
    """`samples` eval videos with one recipe per variant, each judged by one judge and
    protocol under prompt versions paper-v1 and paper-v2 (JUDGED)."""
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "recipe?",
             "answer": "Dish: Soup\nIngredients:\n- water\nSteps:\n1. Boil.", "group": f"r{i}"}
            for i in range(samples)])
        for name in variants:
            variant = queries.create_variant(session, name=name, base_model="/m")
            for sample in queries.list_samples(session, dataset_id=dataset.id, limit=None):
                generation = queries.add_generation(
                    session, variant_id=variant.id, sample_id=sample.id, prompt="recipe?",
                    text=f"Dish: Soup\nIngredients:\n- water\nSteps:\n1. Boil ({name}).",
                    params_key="k", decoding={"do_sample": False})
                for version, score, verdict in JUDGED[name]:
                    queries.add_judgment(session, generation_id=generation.id, judge=JUDGE,
                                         protocol=PROTOCOL, prompt_version=version,
                                         score=score, verdict=verdict, raw=str(score))


def _report(workspace, *args):
    result = runner.invoke(app, ["report", *args, "--workspace", str(workspace)], env=ENV)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_table_never_mixes_prompt_versions(ddft_backend_store, ddft_workspace):
    _store(ddft_backend_store)
    data = json.loads(_report(ddft_workspace, "--format", "json", "--judge", JUDGE))
    (row,) = data["rows"]
    # Four samples under one prompt version (a tie of 4 and 4, broken by name), not eight
    # under two.
    assert (row["n"], row["yes"], row["no"]) == (4, 4, 0)
    assert row["accuracy"] == 100.0 and row["average_score"] == 5.0
    assert data["selection"]["prompt_version"] == "paper-v1"
    assert data["selection"]["defaults"] == ["eval_set", "protocol", "prompt_version",
                                             "baseline", "campaign"]
    assert data["selection"]["available"]["prompt_versions"] == ["paper-v1", "paper-v2"]
    other = json.loads(_report(ddft_workspace, "--format", "json", "--prompt-version",
                               "paper-v2"))
    assert [(r["n"], r["average_score"]) for r in other["rows"]] == [(4, 1.0)]
    assert "prompt_version" not in other["selection"]["defaults"]


def test_the_cli_and_the_report_screen_give_the_same_report(ddft_backend_store, ddft_workspace):
    _store(ddft_backend_store, variants=("tuned", "base"))
    create_campaign(ddft_backend_store, name="blind", eval_set="kitchen-eval",
                    variants=["tuned", "base"], mode="single", seed=0)
    with session_scope(ddft_backend_store) as session:
        campaign_id = c.get_campaign(session, name="blind").id
        rater_id = c.get_or_create_rater(session, name="ana").id
        item = c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)
        c.save_rating(session, assignment_id=item.assignment_id, seconds=1.0,
                      scores={"ingredients": 4, "steps": 4, "overall": 4})
    printed = _report(ddft_workspace, "--format", "json")
    shown = render_json(load_report(ddft_backend_store))
    assert printed.rstrip("\n") == shown
    data = json.loads(shown)
    assert [(r["variant"], r["n"], r["average_score"]) for r in data["rows"]] == [
        ("tuned", 4, 5.0), ("base", 4, 2.0)]
    assert data["selection"]["judge"] == JUDGE and data["selection"]["baseline"] == "tuned"
    assert [(x["variant"], x["baseline"], x["pairs"]) for x in data["comparisons"]] == [
        ("base", "tuned", 4)]
    assert data["agreement"][0]["campaign"] == "blind"
    # A choice made on the screen is the same choice as the option.
    assert (render_json(load_report(ddft_backend_store, prompt_version="paper-v2", baseline="base"))
            == _report(ddft_workspace, "--format", "json", "--prompt-version", "paper-v2",
                       "--baseline", "base").rstrip("\n"))


def test_markdown_and_csv_name_the_selection_and_its_defaults(ddft_backend_store, ddft_workspace):
    _store(ddft_backend_store)
    markdown = _report(ddft_workspace, "--judge", JUDGE)
    assert (f"## Table 1 on kitchen-eval · judge {JUDGE} · protocol paper · prompt version "
            "paper-v1 · baseline tuned (defaults: eval set, protocol, prompt version, baseline, "
            "campaign)") in markdown
    assert f"Judge: {JUDGE}\n" in markdown and "Prompt version: paper-v1 (default)" in markdown
    assert "| tuned | 4 | 0 | 100.00% | 5.00 | 4 | 0 |" in markdown
    (row,) = csv.DictReader(io.StringIO(_report(ddft_workspace, "--format", "csv")))
    assert (row["n"], row["judge"], row["prompt_version"], row["eval_set"]) == (
        "4", JUDGE, "paper-v1", "kitchen-eval")
    assert row["defaults"] == "eval_set;judge;protocol;prompt_version;baseline;campaign"


def test_a_choice_the_store_lacks_is_one_message_naming_what_there_is(ddft_backend_store,
                                                                     ddft_workspace):
    _store(ddft_backend_store)
    cases = [(("--prompt-version", "paper-v9"), "with prompt version 'paper-v9'; there: "
                                                 "paper-v1, paper-v2"),
             (("--judge", "nobody"), f"by judge 'nobody'; there: {JUDGE}"),
             (("--baseline", "ghost"), "no judged variant named 'ghost' in this table; judged "
                                       "variants: tuned"),
             (("--campaign", "nope"), "no campaign named 'nope'")]
    for args, message in cases:
        result = runner.invoke(app, ["report", *args, "--workspace", str(ddft_workspace)],
                               env=ENV)
        assert result.exit_code == 1, args
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    # The screen's loader falls back to the defaults instead.
    assert load_report(ddft_backend_store, prompt_version="paper-v9").selection.prompt_version == \
        "paper-v1"
