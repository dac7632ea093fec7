"""The Report screen's "where in the video" section: frame coverage and grounding hit rates
from the store, below the human ratings."""

from __future__ import annotations

from .conftest import running, settle
from .test_compare_grounding import _ground_tuned


async def test_the_report_shows_coverage_and_the_grounding_hit_rate(demo_store):
    _ground_tuned(demo_store, None)  # step 1 inside its segment, step 2 outside
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        text = str(app.screen.query_one("#report-video").content)
    assert "Frame coverage" in text
    assert "Keyframe grounding" in text
    # 1 of 2 steps hit; the chance of a random frame is 3/8 for both segments.
    assert "tuned [layers 16-31 · heads all · top-1]: hit rate 50.0%" in text
    assert "1/2 steps · random frame 37.5% · 1 generation" in text
    assert "Timestamps" not in text  # no timestamp answers stored


async def test_nothing_grounded_or_timed_leaves_the_section_to_coverage(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        text = str(app.screen.query_one("#report-video").content)
    assert "Keyframe grounding" not in text and "Timestamps" not in text
