"""The report's one selection rule: defaults from what the store holds, stated in the report,
and a table under exactly one judge, protocol and prompt version."""

from __future__ import annotations

import json

import pytest

from db import queries
from db.store import session_scope
from engine.evaluation.rating import create_campaign
from engine.evaluation.report import (
    ReportError,
    ReportSelection,
    build_report,
    render_json,
    render_markdown,
    resolve_selection,
)

# (judge, protocol, prompt version, score) judgments of each of three samples of one variant.
SETTINGS = [("gpt-4o", "paper", "p1", 4.0), ("gpt-4o", "paper", "p2", 2.0),
            ("gpt-4o", "two-stage", "t1", 3.0), ("offline", "offline", "v1", 5.0)]


def _store(db_engine, settings=SETTINGS, *, eval_sets=("kitchen-eval",), extra_offline=0):
    with session_scope(db_engine) as session:
        for name in eval_sets:
            dataset = queries.get_or_create_dataset(session, name=name, modality="video",
                                                    purpose="eval")
            queries.add_samples(session, dataset_id=dataset.id, samples=[
                {"external_id": f"{name}-{i}", "modality": "video", "prompt": "p",
                 "answer": "Dish: Soup", "group": f"g{i}"} for i in range(3)])
        first = queries.get_dataset(session, name=eval_sets[0])
        for v, variant_name in enumerate(("base", "tuned")):
            variant = queries.create_variant(session, name=variant_name, base_model="/m")
            for i, sample in enumerate(queries.list_samples(session, dataset_id=first.id,
                                                            limit=None)):
                generation = queries.add_generation(session, variant_id=variant.id,
                                                    sample_id=sample.id, prompt="p",
                                                    text="Dish: Soup", params_key="k")
                offline = [("offline", "offline", "v1", 5.0)] if i < extra_offline else []
                for judge, protocol, version, score in list(settings) + offline:
                    queries.add_judgment(session, generation_id=generation.id, judge=judge,
                                         protocol=protocol, prompt_version=version,
                                         score=score + v * 0.5, raw="",
                                         verdict="yes" if score >= 3.5 else "no")


def test_defaults_are_the_most_used_setting_narrowed_judge_then_protocol_then_version(
        ddft_backend_store):
    _store(ddft_backend_store)
    with session_scope(ddft_backend_store) as session:
        chosen = resolve_selection(session, ReportSelection())
        # gpt-4o has 18 judgments, offline 6; of gpt-4o's, paper 12 and two-stage 6; paper's
        # p1 and p2 tie at 6 and the name decides.
        assert (chosen.eval_set, chosen.judge, chosen.protocol, chosen.prompt_version,
                chosen.baseline) == ("kitchen-eval", "gpt-4o", "paper", "p1", "base")
        assert chosen.defaults == ("eval_set", "judge", "protocol", "prompt_version",
                                   "baseline", "campaign")
        assert chosen.protocols == ("paper", "two-stage") and chosen.prompt_versions == ("p1",
                                                                                         "p2")
        asked = resolve_selection(session, ReportSelection(judge="gpt-4o", protocol="two-stage"))
        assert (asked.prompt_version, asked.defaults) == ("t1", ("eval_set", "prompt_version",
                                                                 "baseline", "campaign"))
        report = build_report(session, ReportSelection(prompt_version="p2"), n_boot=100)
    assert [(r.variant, r.n, r.average_score) for r in report.rows] == [("base", 3, 2.0),
                                                                        ("tuned", 3, 2.5)]
    assert "## Table 1 on kitchen-eval · judge gpt-4o · protocol paper · prompt version p2" \
        in render_markdown(report)
    assert json.loads(render_json(report))["selection"]["prompt_version"] == "p2"


def test_more_judgments_under_one_judge_win_over_the_name(ddft_backend_store):
    _store(ddft_backend_store,
           settings=[("a-judge", "paper", "p1", 4.0), ("z-judge", "paper", "p1", 4.0)],
           extra_offline=0)
    with session_scope(ddft_backend_store) as session:
        queries.add_judgment(session, generation_id=queries.list_generations(session)[0].id,
                             judge="z-judge", protocol="paper", prompt_version="p9", score=1.0,
                             verdict="no", raw="")
        assert resolve_selection(session, ReportSelection()).judge == "z-judge"


def test_strict_names_what_is_missing_and_the_screen_falls_back(ddft_backend_store):
    _store(ddft_backend_store, eval_sets=("kitchen-eval", "youcook2-val"))
    create_campaign(ddft_backend_store, name="blind", eval_set="kitchen-eval",
                    variants=["base", "tuned"], seed=0)
    with session_scope(ddft_backend_store) as session:
        for asked, message in [
            (ReportSelection(eval_set="nope"), "no eval set named 'nope'"),
            (ReportSelection(protocol="pairwise"), "no judgments by gpt-4o on kitchen-eval with "
                                                   "protocol 'pairwise'; there: paper, two-stage"),
            (ReportSelection(eval_set="youcook2-val", campaign="blind"),
             "campaign 'blind' rates another eval set, not youcook2-val"),
        ]:
            with pytest.raises(ReportError, match=message):
                build_report(session, asked)
            fallback = build_report(session, asked, strict=False, n_boot=50)
            assert fallback.rows or fallback.eval_set == "youcook2-val"
        # Another eval set holds no judgments: an empty table that says so, no guess.
        empty = build_report(session, ReportSelection(eval_set="youcook2-val"), n_boot=50)
    assert empty.rows == [] and empty.selection.judge is None
    assert empty.agreement == []  # the campaign rates kitchen-eval
    assert "Nothing judged on youcook2-val yet" in render_markdown(empty)


def test_without_an_eval_set_the_cli_is_told_and_the_screen_gets_an_empty_report(
        ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        with pytest.raises(ReportError, match="no eval set yet"):
            build_report(session, ReportSelection())
        empty = build_report(session, ReportSelection(), strict=False)
    assert empty.selection.eval_sets == () and empty.rows == []
