"""Every screen of the workbench and the blind rating app over a store whose names, ids, paths,
prompts, recipes and errors hold Rich markup: nothing raises, and the text is drawn as typed."""

from __future__ import annotations

import html

import pytest

from tests.hostile_store import (
    BASE,
    CAMPAIGN,
    EVAL_SET,
    FAILED_REASON,
    JOB_ERROR,
    JOB_TITLE,
    LOG_LINE,
    PROMPT,
    RATER,
    RECIPE_MARK,
    SAMPLE_ID,
    TRAIN_SET,
    TUNED,
    build_hostile_store,
)
from workbench.app import build_app

from .conftest import SIZE, running, settle


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    store = build_hostile_store(tmp_path / "ws [/]")
    yield store
    store.db_engine.dispose()


def frame(app) -> str:
    """The screen as drawn, as text, and every notice shown so far."""
    notices = " ".join(str(n.message) for n in app._notifications)
    return html.unescape(app.export_screenshot()).replace("\xa0", " ") + notices


def assert_shown(app, *texts: str) -> None:
    drawn = frame(app)
    missing = [text for text in texts if text not in drawn]
    assert not missing, (missing, type(app.screen).__name__)


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot, rounds=2)


async def test_the_samples_screen_shows_ids_prompts_paths_and_reasons_as_typed(hostile):
    async with running(hostile.url) as (app, pilot):
        assert type(app.screen).__name__ == "SamplesScreen"
        assert_shown(app, SAMPLE_ID, EVAL_SET, PROMPT)
        await press(pilot, "down", "down")  # the failed image of the training set
        assert_shown(app, TRAIN_SET, FAILED_REASON)


async def test_jobs_runs_compare_and_report_show_names_as_typed(hostile):
    async with running(hostile.url) as (app, pilot):
        await press(pilot, "2")
        assert_shown(app, JOB_TITLE, f"generate {BASE}", JOB_ERROR)  # the failed job, newest
        await press(pilot, "5")
        assert_shown(app, JOB_TITLE, LOG_LINE)
        await press(pilot, "3")
        assert_shown(app, EVAL_SET, SAMPLE_ID, BASE, TUNED, RECIPE_MARK)
        await press(pilot, "4")
        assert_shown(app, EVAL_SET, BASE, TUNED)
        await press(pilot, "1")
        assert type(app.screen).__name__ == "SamplesScreen"


async def test_the_rating_app_shows_the_rater_and_campaign_as_typed(hostile):
    app = build_app(url=hostile.url, rater=RATER, campaign=CAMPAIGN)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert_shown(app, RATER, CAMPAIGN, RECIPE_MARK)
        await press(pilot, "1")  # rate the next pair; the screen goes on drawing as typed
        assert_shown(app, RATER)


async def test_an_unknown_campaign_is_named_as_typed(hostile):
    app = build_app(url=hostile.url, rater=RATER, campaign="[/]nope")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert_shown(app, "[/]nope", CAMPAIGN)


async def test_the_new_run_form_lists_datasets_as_typed_and_refuses_a_bad_name(hostile):
    from textual.widgets import Input

    from workbench.dialogs.new_run import NewRunDialog

    async with running(hostile.url) as (app, pilot):
        await press(pilot, "5", "n")
        form = app.screen
        assert isinstance(form, NewRunDialog)
        assert_shown(app, TRAIN_SET)
        form.query_one("#run-variant", Input).value = "x" * 101  # one over the limit
        await pilot.pause()
        await press(pilot, "ctrl+s")
        assert app.screen is form
        problems = str(form.query_one("#run-problems").content)
        assert "variant name" in problems and "at most 100 characters" in problems, problems
