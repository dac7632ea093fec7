"""The rating app served to a browser asks for the rater's name first, then is the same rating
app as `ddft rate` for that name: blind, resuming, keyboard only."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from workbench.app import build_app
from workbench.screens.rate import RateScreen
from workbench.screens.rater_name import RaterNameScreen

from .conftest import settle
from .test_rate_screen import _build, _ratings


async def test_the_name_is_asked_once_then_the_rater_rates_and_resumes(tmp_path: Path):
    store = _build(tmp_path)
    for given, expected in (("  ada ", 1), ("ada", 2)):
        app = build_app(url=store.url, ask_rater=True, campaign="omelette-single")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, RaterNameScreen)
            # The workbench's screens stay out of reach before the name is given.
            assert app.check_action("switch_mode", ("samples",)) is False
            await pilot.press(*given, "enter")
            await settle(pilot)
            assert isinstance(app.screen, RateScreen)
            assert app.rater == "ada" and "rating as ada" in app.title
            position = str(app.screen.query_one("#rate-position", Static).content)
            assert position.startswith(f"item {expected} of 6"), position
            await pilot.press("4", "5", "4", "enter")
            await settle(pilot)
            await pilot.press("q")
        ratings = _ratings(store, "omelette-single")
        assert len(ratings) == expected
    # Both passes were one rater, as over SSH.
    assert len({r.rater_id for r in ratings}) == 1


async def test_a_bad_name_is_told_on_the_screen_and_nothing_opens(tmp_path: Path):
    store = _build(tmp_path)
    app = build_app(url=store.url, ask_rater=True, campaign="omelette-single")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RaterNameScreen)
        problem = str(app.screen.query_one("#rater-name-problem", Static).content)
        assert "rater" in problem and problem.strip()
        assert app.screen.query_one("#rater-name", Input).value == " "
    assert _ratings(store, "omelette-single") == []
