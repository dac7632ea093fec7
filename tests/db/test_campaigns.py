"""Rating campaigns in the store: blind items, claims, k raters, skip, undo, resume, many
processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from db import campaigns as c
from db import queries
from db.models import Assignment, Generation, Rating
from db.store import session_scope
from tests.rating_store import EVAL_SET, MODEL_PATHS, VARIANTS, fill_store

GOOD = {"ingredients": 4, "steps": 3, "overall": 4}


def _campaign(db_engine, *, mode="single", k=1, seed=7, name="c1", samples=6) -> int:
    """A campaign over `samples` samples of the two test variants, items built directly."""
    ids = fill_store(db_engine, samples=samples)
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        a, b = ({g.sample_id: g.id for g in queries.list_generations(session, variant_id=ids[v])}
                for v in VARIANTS)
        if mode == "single":
            items = [(s, g, None) for s in sorted(a) for g in (a[s], b[s])]
        else:
            items = [(s, a[s], b[s]) for s in sorted(a)]
        campaign = c.add_campaign(session, name=name, mode=mode, dataset_id=dataset.id,
                                  variant_ids=list(ids.values()), raters_per_item=k, seed=seed,
                                  items=items)
        return campaign.id


def _rater(db_engine, name: str) -> int:
    with session_scope(db_engine) as session:
        return c.get_or_create_rater(session, name=name).id


def _next(db_engine, campaign_id, rater_id):
    with session_scope(db_engine) as session:
        return c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)


def _rate(db_engine, item, **kwargs):
    kwargs.setdefault("seconds", 1.5)
    if item.mode == "single":
        kwargs.setdefault("scores", GOOD)
    else:
        kwargs.setdefault("choice", "left")
    with session_scope(db_engine) as session:
        return c.save_rating(session, assignment_id=item.assignment_id, **kwargs)


def test_rater_names_are_validated_and_reused(ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        for bad in ("", "   ", "a\tb", "x" * 101):
            with pytest.raises(c.CampaignError, match="rater name"):
                c.get_or_create_rater(session, name=bad)
        first = c.get_or_create_rater(session, name=" ana ")
        again = c.get_or_create_rater(session, name="ana")
        assert first.id == again.id and first.name == "ana"
        assert [r.name for r in c.list_raters(session)] == ["ana"]


def test_a_rating_pass_is_blind_resumable_and_never_repeats_an_item(ddft_backend_store):
    campaign_id = _campaign(ddft_backend_store, mode="single")
    rater = _rater(ddft_backend_store, "ana")
    seen = []
    while True:
        item = _next(ddft_backend_store, campaign_id, rater)
        if item is None:
            break
        # A dropped session asks again before rating: it gets the same item back.
        again = _next(ddft_backend_store, campaign_id, rater)
        assert again == item
        assert item.number == len(seen) + 1 and item.total == 12
        shown = " ".join(str(v) for v in vars(item).values())
        for secret in (*VARIANTS, *MODEL_PATHS.values()):
            assert secret not in shown
        _rate(ddft_backend_store, item, seconds=2.25)
        seen.append(item.item_id)
    assert len(seen) == len(set(seen)) == 12
    with session_scope(ddft_backend_store) as session:
        assert c.rater_progress(session, campaign_id=campaign_id, rater_id=rater) == (12, 12)
        ratings = c.campaign_ratings(session, campaign_id=campaign_id)
        assert all(r.scores == GOOD and r.seconds == 2.25 for r in ratings)
        assert c.open_campaigns_for(session, rater_id=rater) == []


def test_order_and_sides_follow_the_seed_and_the_rater(ddft_backend_store):
    campaign_id = _campaign(ddft_backend_store, mode="pairwise", k=2, seed=11, samples=10)
    raters = [_rater(ddft_backend_store, name) for name in ("ana", "bo")]
    orders: dict[int, list[int]] = {r: [] for r in raters}
    with session_scope(ddft_backend_store) as session:
        items = {i.id: i for i in c.campaign_items(session, campaign_id=campaign_id)}
        texts = {g.id: g.text for g in session.exec(select(Generation))}
    for rater in raters:
        while (item := _next(ddft_backend_store, campaign_id, rater)) is not None:
            orders[rater].append(item.item_id)
            stored = items[item.item_id]
            with session_scope(ddft_backend_store) as session:
                swapped = session.get(Assignment, item.assignment_id).swapped
            left, right = ((stored.other_generation_id, stored.generation_id) if swapped
                           else (stored.generation_id, stored.other_generation_id))
            assert item.texts == (texts[left], texts[right])
            assert swapped == c.rater_swaps(11, rater, stored.position)
            rating = _rate(ddft_backend_store, item, choice="right")
            assert (rating.generation_id, rating.other_generation_id) == (left, right)
    positions = {i.id: i.position for i in items.values()}
    for rater in raters:
        assert [positions[i] for i in orders[rater]] == c.rater_order(11, rater, range(10))
    assert orders[raters[0]] != orders[raters[1]]
    assert c.rater_order(11, raters[0], range(10)) != c.rater_order(12, raters[0], range(10))
    with session_scope(ddft_backend_store) as session:
        sides = [a.swapped for a in c.campaign_assignments(session, campaign_id=campaign_id)]
    assert any(sides) and not all(sides)


def test_k_raters_per_item_and_none_when_nothing_is_left(ddft_backend_store):
    campaign_id = _campaign(ddft_backend_store, mode="pairwise", k=1, samples=6)
    ana, bo = _rater(ddft_backend_store, "ana"), _rater(ddft_backend_store, "bo")
    got = {ana: [], bo: []}
    turn = [ana, bo]
    while turn:
        rater = turn.pop(0)
        item = _next(ddft_backend_store, campaign_id, rater)
        if item is not None:
            got[rater].append(item.item_id)
            _rate(ddft_backend_store, item)
            turn.append(rater)
    assert len(got[ana]) + len(got[bo]) == 6
    assert not set(got[ana]) & set(got[bo])
    with session_scope(ddft_backend_store) as session:
        assert c.rater_progress(session, campaign_id=campaign_id, rater_id=ana) == (3, 3)
        assert c.next_item(session, campaign_id=campaign_id, rater_id=ana) is None


def test_a_vanished_raters_claim_expires(ddft_backend_store):
    campaign_id = _campaign(ddft_backend_store, mode="pairwise", k=1, samples=1)
    ana, bo = _rater(ddft_backend_store, "ana"), _rater(ddft_backend_store, "bo")
    held = _next(ddft_backend_store, campaign_id, ana)
    assert _next(ddft_backend_store, campaign_id, bo) is None
    with session_scope(ddft_backend_store) as session:
        assignment = session.get(Assignment, held.assignment_id)
        assignment.updated_at = assignment.updated_at - c.CLAIM_TIMEOUT - timedelta(seconds=1)
        session.add(assignment)
    taken = _next(ddft_backend_store, campaign_id, bo)
    assert taken is not None and taken.item_id == held.item_id
    # The one who vanished still gets their own open item back when they return.
    assert _next(ddft_backend_store, campaign_id, ana).assignment_id == held.assignment_id


def test_a_skip_hands_the_item_on_and_undo_brings_back_the_last(ddft_backend_store):
    campaign_id = _campaign(ddft_backend_store, mode="pairwise", k=1, samples=2)
    ana, bo = _rater(ddft_backend_store, "ana"), _rater(ddft_backend_store, "bo")
    first = _next(ddft_backend_store, campaign_id, ana)
    with session_scope(ddft_backend_store) as session:
        c.skip_item(session, assignment_id=first.assignment_id)
        with pytest.raises(c.CampaignError, match="only an open item"):
            c.skip_item(session, assignment_id=first.assignment_id)
    second = _next(ddft_backend_store, campaign_id, ana)
    assert second.item_id != first.item_id and second.number == 2
    _rate(ddft_backend_store, second, choice="tie")
    assert _next(ddft_backend_store, campaign_id, ana) is None
    assert _next(ddft_backend_store, campaign_id, bo).item_id == first.item_id
    with session_scope(ddft_backend_store) as session:
        assert c.undo_last(session, campaign_id=campaign_id, rater_id=ana) == second.item_id
        assert c.campaign_ratings(session, campaign_id=campaign_id) == []
    back = _next(ddft_backend_store, campaign_id, ana)
    assert back.item_id == second.item_id and back.number == 2
    _rate(ddft_backend_store, back, choice="both-bad")
    with session_scope(ddft_backend_store) as session:
        choices = [r.choice for r in c.campaign_ratings(session, campaign_id=campaign_id)]
        assert choices == ["both-bad"]
        assert c.undo_last(session, campaign_id=campaign_id, rater_id=ana) == second.item_id
        # Bo holds the item ana skipped (k=1): taking the skip back would give it two raters.
        with pytest.raises(c.CampaignError, match="gone to other raters"):
            c.undo_last(session, campaign_id=campaign_id, rater_id=ana)
    with session_scope(ddft_backend_store) as session:
        held = c.next_item(session, campaign_id=campaign_id, rater_id=bo)
        c.skip_item(session, assignment_id=held.assignment_id)  # bo lets it go as well
    with session_scope(ddft_backend_store) as session:
        assert c.undo_last(session, campaign_id=campaign_id, rater_id=ana) == first.item_id
        assert c.undo_last(session, campaign_id=campaign_id, rater_id=ana) is None
        states = sorted(a.state for a in c.campaign_assignments(session, campaign_id=campaign_id)
                        if a.rater_id == ana)
        assert states == ["open", "open"]


def test_bad_ratings_store_nothing_and_a_second_save_is_refused(ddft_backend_store):
    single = _campaign(ddft_backend_store, mode="single", name="s")
    rater = _rater(ddft_backend_store, "ana")
    item = _next(ddft_backend_store, single, rater)
    bad_scores = [None, {"ingredients": 4, "steps": 3}, {**GOOD, "overall": 6},
                  {**GOOD, "steps": 2.5}, {**GOOD, "taste": 3}, {**GOOD, "overall": True}]
    for scores in bad_scores:
        with pytest.raises(c.CampaignError, match="scores"):
            _rate(ddft_backend_store, item, scores=scores)
    with pytest.raises(c.CampaignError, match="seconds"):
        _rate(ddft_backend_store, item, seconds=-1)
    _rate(ddft_backend_store, item)
    with pytest.raises(c.CampaignError, match="already rated"):
        _rate(ddft_backend_store, item, scores={**GOOD, "overall": 1})
    with session_scope(ddft_backend_store) as session:
        ratings = list(session.exec(select(Rating)))
    assert len(ratings) == 1 and ratings[0].scores == GOOD


def test_pairwise_choices_are_checked(ddft_backend_store):
    campaign_id = _campaign(ddft_backend_store, mode="pairwise")
    item = _next(ddft_backend_store, campaign_id, _rater(ddft_backend_store, "ana"))
    assert len(item.texts) == 2 and item.reference.startswith("Dish")
    for choice in (None, "LEFT", "middle"):
        with pytest.raises(c.CampaignError, match="left, right, tie, both-bad"):
            _rate(ddft_backend_store, item, choice=choice)
    with pytest.raises(c.CampaignError, match="no assignment"):
        with session_scope(ddft_backend_store) as session:
            c.save_rating(session, assignment_id=999, choice="left", seconds=1)


def test_campaign_rows_are_validated(ddft_backend_store):
    _campaign(ddft_backend_store, name="taken")
    with session_scope(ddft_backend_store) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        cases = [({"name": "taken"}, "exists already"), ({"mode": "triple"}, "mode must be"),
                 ({"raters_per_item": 0}, "at least 1"), ({"variant_ids": [1, 1]}, "two variants")]
        for change, message in cases:
            fields = dict(name="new", mode="single", dataset_id=dataset.id, variant_ids=[1, 2],
                          raters_per_item=1, seed=0, items=[])
            with pytest.raises(c.CampaignError, match=message):
                c.add_campaign(session, **{**fields, **change})


WORKER = textwrap.dedent("""
    import json, os, sys, time
    from db.store import open_store, session_scope
    from db import campaigns as c
    url, campaign_id, name, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    engine = open_store(url=url)
    while not os.path.exists(go):
        time.sleep(0.01)
    with session_scope(engine) as session:
        rater = c.get_or_create_rater(session, name=name).id
    saved, skipped, shown = {}, [], 0
    while True:
        with session_scope(engine) as session:
            item = c.next_item(session, campaign_id=campaign_id, rater_id=rater)
        if item is None:
            break
        shown += 1
        if shown % 5 == 0:  # now and then a rater skips
            with session_scope(engine) as session:
                c.skip_item(session, assignment_id=item.assignment_id)
            skipped.append(item.item_id)
            continue
        choice = ("left", "right", "tie", "both-bad")[(item.item_id + len(name)) % 4]
        with session_scope(engine) as session:
            c.save_rating(session, assignment_id=item.assignment_id, choice=choice, seconds=0.1)
        saved[item.item_id] = choice
        if shown % 7 == 0:  # ... or takes a rating back and gives it again
            with session_scope(engine) as session:
                assert c.undo_last(session, campaign_id=campaign_id, rater_id=rater) == item.item_id
            del saved[item.item_id]
            with session_scope(engine) as session:
                again = c.next_item(session, campaign_id=campaign_id, rater_id=rater)
                assert again.item_id == item.item_id
                c.save_rating(session, assignment_id=again.assignment_id, choice="tie",
                              seconds=0.2)
            saved[item.item_id] = "tie"
    print(json.dumps({"saved": saved, "skipped": skipped}))
""")


def test_four_processes_rate_one_store_and_every_rating_is_kept_exactly_once(ddft_backend_store,
                                                                             tmp_path):
    k, samples = 2, 16
    campaign_id = _campaign(ddft_backend_store, mode="pairwise", k=k, samples=samples)
    url = str(ddft_backend_store.url)
    go = tmp_path / "go"
    names = ["ana", "bo", "cy", "di"]
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(campaign_id), name,
                                   str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for name in names]
    time.sleep(0.5)
    go.write_text("go")
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    reported = {name: json.loads(out) for name, (out, _) in zip(names, outputs)}
    with session_scope(ddft_backend_store) as session:
        raters = {r.id: r.name for r in c.list_raters(session)}
        ratings = c.campaign_ratings(session, campaign_id=campaign_id)
        assignments = c.campaign_assignments(session, campaign_id=campaign_id)
    stored = sorted((raters[r.rater_id], r.item_id, r.choice) for r in ratings)
    said = sorted((name, int(item), choice) for name, report in reported.items()
                  for item, choice in report["saved"].items())
    assert stored == said  # nothing lost, nothing invented, the last choice kept
    assert len({(name, item) for name, item, _ in stored}) == len(stored)  # once per rater
    skips: dict[int, int] = {}
    for report in reported.values():
        for item in report["skipped"]:
            skips[item] = skips.get(item, 0) + 1
    per_item: dict[int, int] = {}
    for _, item, _ in stored:
        per_item[item] = per_item.get(item, 0) + 1
    items = {a.item_id for a in assignments}
    assert len(items) == samples
    for item in items:
        got = per_item.get(item, 0)
        assert got <= k, item  # never more than k raters
        if not skips.get(item):
            # Nobody let it go: its k claims all ended in ratings.
            assert got == k, item
        # A skip hands an item on only to raters still rating; one who already finished does not
        # come back for it, so a skipped item may end with fewer than k ratings.
    assert {a.state for a in assignments} <= {"rated", "skipped"}
    assert sum(skips.values()) > 0


def test_a_long_lived_session_sees_what_other_raters_did_since(ddft_backend_store):
    from sqlmodel import Session

    campaign_id = _campaign(ddft_backend_store, mode="pairwise", k=1, samples=1)
    ana, bo = _rater(ddft_backend_store, "ana"), _rater(ddft_backend_store, "bo")
    held = _next(ddft_backend_store, campaign_id, bo)
    # The way a screen might keep one session open, its rows never expired by a commit.
    with Session(ddft_backend_store, expire_on_commit=False) as session:
        assert c.next_item(session, campaign_id=campaign_id, rater_id=ana) is None
        kept = session.get(Assignment, held.assignment_id)  # a row the screen holds on to
        assert kept.state == "open"
        with session_scope(ddft_backend_store) as other:
            c.skip_item(other, assignment_id=held.assignment_id)
        handed_on = c.next_item(session, campaign_id=campaign_id, rater_id=ana)
        assert handed_on is not None and handed_on.item_id == held.item_id


def test_a_save_never_waits_for_another_raters_claim_on_postgres(monkeypatch):
    """A claim locks the one item it takes; a rating saved meanwhile (here for that very item)
    goes through at once. A claim that locked the campaign's row held every save behind it."""
    import threading

    from sqlalchemy import text

    from db.store import open_store
    from tests.conftest import fresh_postgres_schema

    with fresh_postgres_schema("claim") as url:
        db_engine = open_store(url=url)
        campaign_id = _campaign(db_engine, mode="pairwise", k=2, samples=1)
        ana, bo = _rater(db_engine, "ana"), _rater(db_engine, "bo")
        held = _next(db_engine, campaign_id, bo)
        claiming, release = threading.Event(), threading.Event()
        shown = c._rating_item

        def paused_after_claiming(*args):  # the claim is written and locked, not committed
            claiming.set()
            release.wait(60)
            return shown(*args)

        monkeypatch.setattr(c, "_rating_item", paused_after_claiming)
        claims = []
        claimer = threading.Thread(target=lambda: claims.append(_next(db_engine, campaign_id, ana)))
        claimer.start()
        try:
            assert claiming.wait(60)
            with session_scope(db_engine) as session:
                # A safety net, not a timing: a save stuck behind the claim fails here.
                session.execute(text("SET LOCAL lock_timeout = '10s'"))
                c.save_rating(session, assignment_id=held.assignment_id, choice="tie",
                              seconds=1.0)
            assert claimer.is_alive()  # the claim was still open while the save went through
        finally:
            release.set()
            claimer.join(60)
        assert claims[0].item_id == held.item_id  # k=2: ana got the item bo rated
        with session_scope(db_engine) as session:
            assert len(c.campaign_ratings(session, campaign_id=campaign_id)) == 1
        db_engine.dispose()
