"""Making rating campaigns from stored generations, their agreement rows, the export with the
blinding key, and the agreement section of the report."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlmodel import select

from db import campaigns as c
from db import queries
from db.models import Campaign, CampaignItem, Generation
from db.store import session_scope
from engine.evaluation.rating import (
    agreement_rows,
    campaign_agreement,
    campaign_progress,
    create_campaign,
    render_export,
)
from engine.evaluation.report import render_csv, render_json, render_markdown, report_from_rows
from tests.rating_store import EVAL_SET, VARIANTS, fill_store

A, B = VARIANTS


def test_pairwise_campaign_pairs_the_newest_recipes_and_counts_samples_left_out(ddft_store):
    ids = fill_store(ddft_store, samples=5, variants=(A, B, "third"), missing={"third": [4]})
    with session_scope(ddft_store) as session:
        sample = queries.list_samples(session, limit=1)[0]
        # A newer recipe of sample 0 by A, and a timestamps answer that is never rated.
        newer = queries.add_generation(session, variant_id=ids[A], sample_id=sample.id,
                                       prompt="p", text="newer", params_key="sampled")
        queries.add_generation(session, variant_id=ids[B], sample_id=sample.id, prompt="p",
                               text="steps with times", params_key="ts", task="timestamps")
        excluded = queries.list_samples(session)[3]
        queries.set_sample_included(session, sample_id=excluded.id, included=False)
    created = create_campaign(ddft_store, name="p3", eval_set=EVAL_SET, variants=[A, B, "third"],
                              mode="pairwise", raters_per_item=2, seed=5)
    # Included samples 0, 1, 2, 4; sample 4 lacks "third" → 3 samples × 3 pairs.
    assert (created.items, created.samples, created.left_out, created.seed) == (9, 3, 1, 5)
    assert "1 sample left out" in created.message
    with session_scope(ddft_store) as session:
        campaign = c.get_campaign(session, name="p3")
        assert (campaign.mode, campaign.raters_per_item, campaign.seed) == ("pairwise", 2, 5)
        assert campaign.variant_ids == [ids[A], ids[B], ids["third"]]
        items = c.campaign_items(session, campaign_id=campaign.id)
        generations = {g.id: g for g in session.exec(select(Generation))}
        first = [i for i in items if i.sample_id == sample.id]
        pairs = {(generations[i.generation_id].variant_id,
                  generations[i.other_generation_id].variant_id) for i in first}
        assert pairs == {(ids[A], ids[B]), (ids[A], ids["third"]), (ids[B], ids["third"])}
        assert newer.id in {i.generation_id for i in first}
        assert all(generations[g].task == "recipe" for i in items
                   for g in (i.generation_id, i.other_generation_id))
        assert excluded.id not in {i.sample_id for i in items}


def test_single_campaign_has_one_item_per_sample_and_variant_and_a_random_stored_seed(ddft_store):
    fill_store(ddft_store, samples=4)
    created = create_campaign(ddft_store, name="s", eval_set=EVAL_SET, variants=[A, B],
                              mode="single")
    assert (created.items, created.samples, created.left_out) == (8, 4, 0)
    with session_scope(ddft_store) as session:
        campaign = c.get_campaign(session, name="s")
        assert campaign.seed == created.seed
        items = c.campaign_items(session, campaign_id=campaign.id)
    assert all(i.other_generation_id is None for i in items)
    assert len({i.generation_id for i in items}) == 8


@pytest.mark.parametrize("change, message", [
    ({"eval_set": "nope"}, "no eval set named 'nope'"),
    ({"variants": [A, "ghost"]}, "no variant named 'ghost' (variants: zeta-base-7b, omega"),
    ({"variants": [A, A]}, f"at least two different variants, got {A}, {A}"),
    ({"mode": "triple"}, "mode must be one of single, pairwise"),
    ({"raters_per_item": 0}, "at least 1, got 0"),
    ({"name": "  "}, "needs a name"),
    ({"name": "taken"}, "'taken' exists already"),
])
def test_bad_campaigns_are_refused_with_one_message_and_nothing_written(ddft_store, change,
                                                                         message):
    fill_store(ddft_store, samples=2)
    create_campaign(ddft_store, name="taken", eval_set=EVAL_SET, variants=[A, B])
    fields = dict(name="new", eval_set=EVAL_SET, variants=[A, B], mode="single")
    with pytest.raises(c.CampaignError, match="cannot make the campaign") as error:
        create_campaign(ddft_store, **{**fields, **change})
    assert message in str(error.value)
    with session_scope(ddft_store) as session:
        assert [x.name for x in session.exec(select(Campaign))] == ["taken"]


def test_nothing_to_rate_writes_nothing(ddft_store):
    fill_store(ddft_store, samples=3, missing={B: [0, 1, 2]})
    with pytest.raises(c.CampaignError, match="nothing to rate"):
        create_campaign(ddft_store, name="empty", eval_set=EVAL_SET, variants=[A, B])
    with session_scope(ddft_store) as session:
        assert list(session.exec(select(Campaign))) == []
        assert list(session.exec(select(CampaignItem))) == []


def _rate_all(db_engine, campaign_name, rater_name, choose):
    with session_scope(db_engine) as session:
        campaign_id = c.get_campaign(session, name=campaign_name).id
        rater_id = c.get_or_create_rater(session, name=rater_name).id
    while True:
        with session_scope(db_engine) as session:
            item = c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)
            if item is None:
                return
            c.save_rating(session, assignment_id=item.assignment_id, seconds=3.0,
                          **choose(item))


def test_export_carries_the_blinding_key(ddft_store):
    fill_store(ddft_store, samples=4)
    create_campaign(ddft_store, name="p", eval_set=EVAL_SET, variants=[A, B], mode="pairwise",
                    seed=3)
    _rate_all(ddft_store, "p", "ana", lambda item: {"choice": "left"})
    with session_scope(ddft_store) as session:
        campaign = c.get_campaign(session, name="p")
        texts = {g.id: g for g in session.exec(select(Generation))}
        variants = {v.id: v.name for v in queries.list_variants(session)}
        rows = list(csv.DictReader(io.StringIO(render_export(session, campaign, "csv"))))
        data = json.loads(render_export(session, campaign, "json"))
        with pytest.raises(c.CampaignError, match="csv, json"):
            render_export(session, campaign, "xml")
    assert len(rows) == 4 and {r["rater"] for r in rows} == {"ana"}
    for row in rows:
        assert row["variant"] == variants[texts[int(row["generation"])].variant_id]
        assert row["other_variant"] == variants[texts[int(row["other_generation"])].variant_id]
        # The rater always chose the left text: the preferred variant is the one shown left.
        assert row["preferred"] == row["variant"] and row["choice"] == "left"
        assert row["swapped"] == str(row["variant"] == B)
        assert row["sample"].startswith("video-") and float(row["seconds"]) == 3.0
        assert row["created_at"].endswith("+00:00")
    assert {r["swapped"] for r in rows} == {"True", "False"}  # seed 3 shows both sides
    assert data["campaign"]["variants"] == [A, B] and data["campaign"]["seed"] == 3
    assert [r["item"] for r in data["ratings"]] == [int(r["item"]) for r in rows]


def test_agreement_rows_join_the_judge_and_the_key(ddft_store):
    fill_store(ddft_store, samples=3, judge_scores={A: [5.0, 4.0, 1.0], B: [2.0, 2.0, 3.0]})
    create_campaign(ddft_store, name="s", eval_set=EVAL_SET, variants=[A, B], mode="single",
                    raters_per_item=2, seed=1)
    for rater in ("ana", "bo"):
        _rate_all(ddft_store, "s", rater, lambda item: {"scores": {
            "ingredients": 3, "steps": 3, "overall": 5 if "3 cups" in item.texts[0] else 2}})
    with session_scope(ddft_store) as session:
        campaign = c.get_campaign(session, name="s")
        label, rows = agreement_rows(session, campaign)
        summary = campaign_agreement(session, campaign)
        progress = campaign_progress(session, campaign)
    assert label == "offline (offline, v1)" and len(rows) == 12
    judged = {(r.variant, r.sample): r.judge for r in rows}
    assert judged[(A, "video-00")] == 5.0 and judged[(B, "video-02")] == 3.0
    # Both raters gave the same overall to every item: alpha over 6 items with variation = 1.
    assert summary.alpha == pytest.approx(1.0) and summary.alpha_units == 6
    assert summary.kappa_n == 12 and summary.judge == "offline (offline, v1)"
    assert (progress.items, progress.ratings, progress.complete, progress.wanted) == (6, 12, 6, 12)
    assert [(r.rater, r.rated) for r in progress.raters] == [("ana", 6), ("bo", 6)]


def test_agreement_never_pools_two_prompt_versions(ddft_store):
    fill_store(ddft_store, samples=3, judge_scores={A: [5.0, 4.0, 1.0], B: [2.0, 2.0, 3.0]})
    with session_scope(ddft_store) as session:
        # The same generations judged again under a second prompt version, with other scores.
        for judgment in queries.scored_judgments(session, generation_ids=range(1, 100)):
            queries.add_judgment(session, generation_id=judgment.generation_id, judge="offline",
                                 protocol="offline", prompt_version="v2", score=1.0,
                                 verdict="no", raw="")
    create_campaign(ddft_store, name="s", eval_set=EVAL_SET, variants=[A, B], mode="single",
                    raters_per_item=1, seed=1)
    _rate_all(ddft_store, "s", "ana", lambda item: {"scores": {
        "ingredients": 3, "steps": 3, "overall": 4}})
    with session_scope(ddft_store) as session:
        campaign = c.get_campaign(session, name="s")
        first_label, first = agreement_rows(session, campaign, prompt_version="v1")
        second_label, second = agreement_rows(session, campaign, prompt_version="v2")
    assert first_label == "offline (offline, v1)" and second_label == "offline (offline, v2)"
    assert {(r.variant, r.sample): r.judge for r in first}[(A, "video-00")] == 5.0
    assert {r.judge for r in second} == {1.0}


def test_the_report_shows_agreement_only_when_there_is_a_campaign(ddft_store):
    fill_store(ddft_store, samples=3, judge_scores={A: [5.0, 4.0, 1.0], B: [2.0, 2.0, 3.0]})
    create_campaign(ddft_store, name="duel", eval_set=EVAL_SET, variants=[A, B], seed=2,
                    mode="pairwise")
    _rate_all(ddft_store, "duel", "ana", lambda item: {"choice": "right"})
    with session_scope(ddft_store) as session:
        rows = queries.judged_rows(session)
        summary = campaign_agreement(session, c.get_campaign(session, name="duel"))
    plain = report_from_rows(rows, eval_set=EVAL_SET, n_boot=200)
    before = (render_markdown(plain), render_csv(plain), render_json(plain))
    assert "Human ratings" not in before[0] and "agreement" not in before[2]
    plain.agreement = [summary]
    md, table, js = render_markdown(plain), render_csv(plain), render_json(plain)
    assert md.startswith(before[0].split("\n\nEval set")[0])
    assert "## Human ratings: duel" in md and "Human win rate" in md
    header = next(csv.reader(io.StringIO(table)))
    assert "rating_duel_human_win_rate" in header and "rating_duel_alpha" in header
    assert all(len(line) == len(header) for line in csv.reader(io.StringIO(table)))
    assert json.loads(js)["agreement"][0]["campaign"] == "duel"
    shares = {v.variant: v.win for v in summary.variants}
    assert shares[A].wins + shares[B].wins == 3 and shares[A].n == 3
