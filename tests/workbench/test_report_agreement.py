"""The Report screen's human-rating section: people against the judge, by hand for the fixture."""

from __future__ import annotations

from db import campaigns as c
from engine.evaluation.rating import create_campaign

from .conftest import TUNED_TEXT, running, settle


async def test_the_report_shows_how_far_people_agree_with_the_judge(demo_store):
    create_campaign(demo_store.db_engine, name="blind-1", eval_set="kitchen-eval",
                    variants=["tuned", "base"], mode="single", seed=1)
    with demo_store.session() as session:
        campaign_id = c.get_campaign(session, name="blind-1").id
        rater_id = c.get_or_create_rater(session, name="ana").id
    while True:
        with demo_store.session() as session:
            item = c.next_item(session, campaign_id=campaign_id, rater_id=rater_id)
            if item is None:
                break
            overall = 4 if item.texts[0] == TUNED_TEXT else 2
            c.save_rating(session, assignment_id=item.assignment_id, seconds=1.0,
                          scores={"ingredients": 3, "steps": 3, "overall": overall})
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        text = str(app.screen.query_one("#report-agreement").content)
    # ana: tuned 4 (yes) ×10, base 2 (no) ×10. Offline judge (conftest), base's unparsable
    # sample left out → 19 pairs: tuned yes/yes 7, yes/no 3; base no/yes 3, no/no 6.
    # p_o = 13/19; p_e = (10·10 + 9·9)/19² = 181/361; kappa = (247 − 181)/(361 − 181) = 0.367
    assert "Human ratings: blind-1 — single, 20 ratings by 1 rater on 20 of 20 items" in text
    assert "judge offline (offline, v1)" in text
    assert "Cohen's kappa (yes/no at 3.5) 0.367 (n=19)" in text
    assert "tuned: human overall 4.00" in text and "base: human overall 2.00" in text
    assert "note: alpha: no item was rated by two people yet" in text
