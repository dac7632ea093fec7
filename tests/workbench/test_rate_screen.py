"""The blind rating screen: whole rating passes in both modes, undo and skip, resume after a
dropped session, and blinding (no variant identity anywhere a rater could see it)."""

from __future__ import annotations

import html
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlmodel import select
from textual.notifications import Notification
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from db import queries
from db.campaigns import save_rating
from db.models import (
    PAIRWISE_CHOICES,
    RATING_FIELDS,
    Assignment,
    Campaign,
    CampaignItem,
    Generation,
    Job,
    ModelVariant,
    Rating,
)
from db.store import open_store, session_scope
from workbench.app import DdftApp, build_app
from workbench.screens.help import HelpScreen
from workbench.screens.rate import RateScreen
from workbench.widgets import rating as rating_widgets

from .conftest import settle

RATER = "ada"
# Everything that says which model wrote a recipe; none of it may reach the rater's screen.
TUNED_NAME, BASE_NAME = "SECRETVARIANT-tuned", "SECRETVARIANT-base"
ADAPTER, BASE_MODEL, JOB_TITLE = "/secret/adapter/path", "/secret/base/model", "SECRETJOB-lora"
# Ids chosen so that they cannot turn up by accident in a screen about three recipes.
TUNED_ID, BASE_ID, JOB_ID = 424241, 424242, 313131
GENERATION_IDS = {TUNED_NAME: 900100, BASE_NAME: 900200}  # + sample index
REFERENCE = "Dish: Tomato omelette {i}\nIngredients:\n- 2 eggs\n- 1 tomato\nSteps:\n1. Beat the eggs."
PROMPT = "Can you give me a recipe from the provided videos?"
# Recognisable texts: the test reads which recipe is on screen from them.
TEXTS = {TUNED_NAME: "Dish: Tomato omelette\nIngredients:\n- 3 eggs\nSteps:\n1. Beat eggs. [tuned {i}]",
         BASE_NAME: "Dish: Soup\nIngredients:\n- water\nSteps:\n1. Boil. [base {i}]"}
N_SAMPLES = 3
# The scores given in the single pass: the tuned recipe better than the base one.
SCORES = {TUNED_NAME: (4, 5, 4), BASE_NAME: (2, 1, 2)}
SIZE = (100, 40)


@dataclass
class RatingStore:
    url: str
    db_engine: object
    generation_variant: dict[int, str] = field(default_factory=dict)  # generation id → name

    def session(self):
        return session_scope(self.db_engine)


def _build(tmp_path: Path) -> RatingStore:
    url = f"sqlite:///{tmp_path}/ddft.db"
    db_engine = open_store(url=url)
    store = RatingStore(url=url, db_engine=db_engine)
    with session_scope(db_engine) as session:
        evalset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="video",
                                                purpose="eval", source="synthetic")
        queries.add_samples(session, dataset_id=evalset.id, samples=[
            {"external_id": f"eval-{i:02d}", "modality": "video", "split": "test",
             "media_path": f"/data/eval-{i:02d}.mp4", "prompt": PROMPT,
             "answer": REFERENCE.format(i=i), "group": "omelette"}
            for i in range(N_SAMPLES)
        ])
        sample_ids = [s.id for s in queries.list_samples(session, dataset_id=evalset.id)]
        session.add(Job(id=JOB_ID, kind="train", status="succeeded", title=JOB_TITLE))
        session.add(ModelVariant(id=TUNED_ID, name=TUNED_NAME, base_model=BASE_MODEL,
                                 adapter_path=ADAPTER, job_id=JOB_ID))
        session.add(ModelVariant(id=BASE_ID, name=BASE_NAME, base_model=BASE_MODEL))
        session.flush()
        for name, variant_id in ((TUNED_NAME, TUNED_ID), (BASE_NAME, BASE_ID)):
            for index, sample_id in enumerate(sample_ids):
                generation_id = GENERATION_IDS[name] + index
                session.add(Generation(id=generation_id, variant_id=variant_id,
                                       sample_id=sample_id, job_id=JOB_ID, prompt=PROMPT,
                                       text=TEXTS[name].format(i=index), params_key="greedy"))
                store.generation_variant[generation_id] = name
        session.flush()
        single = Campaign(name="omelette-single", mode="single", dataset_id=evalset.id,
                          variant_ids=[TUNED_ID, BASE_ID], seed=11)
        pairwise = Campaign(name="omelette-pairs", mode="pairwise", dataset_id=evalset.id,
                            variant_ids=[TUNED_ID, BASE_ID], seed=11)
        session.add_all([single, pairwise])
        session.flush()
        position = 0
        for index, sample_id in enumerate(sample_ids):
            for name in (TUNED_NAME, BASE_NAME):
                session.add(CampaignItem(campaign_id=single.id, position=position,
                                         sample_id=sample_id,
                                         generation_id=GENERATION_IDS[name] + index))
                position += 1
            session.add(CampaignItem(campaign_id=pairwise.id, position=index, sample_id=sample_id,
                                     generation_id=GENERATION_IDS[TUNED_NAME] + index,
                                     other_generation_id=GENERATION_IDS[BASE_NAME] + index))
    return store


@pytest.fixture
def rating_store(tmp_path: Path) -> RatingStore:
    return _build(tmp_path)


@dataclass
class Session:
    app: DdftApp
    pilot: object
    notices: list[str]

    @property
    def screen(self) -> RateScreen:
        screen = self.app.screen
        assert isinstance(screen, RateScreen), type(screen).__name__
        return screen

    def text(self, selector: str) -> str:
        widget = self.screen.query_one(selector)
        return str(widget.content if isinstance(widget, Static) else widget.render())

    def pane(self, selector: str) -> str:
        return self.screen.query_one(selector).text

    @property
    def position(self) -> str:
        return self.text("#rate-position")

    def shown(self) -> str:
        """Which variant wrote the recipe on screen (single) or on the left (pairwise)."""
        return _writer(self.pane("#rate-recipe-a"))

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)
        await settle(self.pilot)


def _writer(text: str) -> str:
    return TUNED_NAME if "[tuned" in text else BASE_NAME if "[base" in text else f"?{text!r}"


@asynccontextmanager
async def rating(url: str, campaign: str | None, *, rater: str = RATER):
    """The rating app for `rater`, as `ddft rate` builds it, settled; fails the test when a
    worker failed."""
    failures: list[str] = []
    notices: list[str] = []

    def record(message) -> None:
        if isinstance(message, Worker.StateChanged) and message.state == WorkerState.ERROR:
            failures.append(f"{message.worker.group}: {message.worker.error!r}")
        notification = getattr(message, "notification", None)
        if isinstance(notification, Notification):
            notices.append(f"{notification.title} {notification.message}")

    app = build_app(url=url, rater=rater, campaign=campaign)
    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        await settle(pilot)
        yield Session(app, pilot, notices)
        await settle(pilot)
    assert not failures, failures


def _ratings(store: RatingStore, campaign: str) -> list[Rating]:
    with store.session() as session:
        campaign_id = session.exec(select(Campaign.id).where(Campaign.name == campaign)).one()
        return list(session.exec(select(Rating).where(Rating.campaign_id == campaign_id)
                                 .order_by(Rating.id)))


def _states(store: RatingStore, campaign: str) -> list[str]:
    with store.session() as session:
        campaign_id = session.exec(select(Campaign.id).where(Campaign.name == campaign)).one()
        return sorted(a.state for a in session.exec(
            select(Assignment).where(Assignment.campaign_id == campaign_id)))


def test_the_screen_names_the_stores_scales_and_choices():
    assert rating_widgets.RATING_FIELDS == RATING_FIELDS
    assert rating_widgets.PAIRWISE_CHOICES == PAIRWISE_CHOICES


async def test_a_whole_single_pass_stores_every_score_with_its_time(rating_store):
    total = 2 * N_SAMPLES
    async with rating(rating_store.url, "omelette-single") as s:
        assert "omelette-single · rater ada" in s.screen.sub_title
        assert "Reference · eval-0" in s.screen.query_one("#rate-reference").border_title
        shown = []
        for number in range(1, total + 1):
            assert s.position.startswith(f"item {number} of {total}")
            writer = s.shown()
            shown.append(writer)
            reference = s.pane("#rate-reference")
            sample = s.pane("#rate-recipe-a").split("[", 1)[1].split()[1].rstrip("]")
            assert f"Tomato omelette {sample}" in reference  # the item's own reference
            assert PROMPT in reference
            ingredients, steps, overall = SCORES[writer]
            if number == 1:
                # Enter before the scales are scored saves nothing and says what is missing.
                await s.press(str(ingredients), "enter")
                assert "Score Steps and Overall first" in s.notices[-1]
                assert _ratings(rating_store, "omelette-single") == []
                await s.press(str(steps), str(overall), "enter")
            else:
                # A wrong first score is changed by moving back up to its scale.
                await s.press("1", str(steps), str(overall), "up", "up", str(ingredients),
                              "enter")
        assert sorted(shown) == [BASE_NAME] * N_SAMPLES + [TUNED_NAME] * N_SAMPLES
        assert s.screen.phase == "complete"
        note = s.text("#rate-note")
        assert "Campaign omelette-single is complete — thank you, ada." in note
        assert f"all {total} items: {total} rated, 0 skipped" in note
        await s.press("q")
        assert s.app.return_code == 0

    ratings = _ratings(rating_store, "omelette-single")
    assert len(ratings) == total
    for stored in ratings:
        writer = rating_store.generation_variant[stored.generation_id]
        assert stored.scores == dict(zip(RATING_FIELDS, SCORES[writer]))
        assert stored.seconds > 0 and stored.choice == "" and stored.other_generation_id is None
    assert _states(rating_store, "omelette-single") == ["rated"] * total


async def test_a_pairwise_pass_with_undo_and_skip(rating_store):
    async with rating(rating_store.url, "omelette-pairs") as s:
        assert s.screen.query_one("#rate-recipe-a").border_title == "Recipe A"
        assert s.screen.query_one("#rate-recipe-b").border_title == "Recipe B"
        assert s.position.startswith("item 1 of 3")
        await s.press("enter")  # nothing chosen yet
        assert "Choose first" in s.notices[-1]
        await s.press("5")  # not a pairwise key
        assert "1 A is closer" in s.notices[-1]
        assert s.screen.query_one("#rate-choice").choice is None

        # Item 1: the tuned recipe is closer, whichever side it is on.
        first_left = s.shown()
        first_right = _writer(s.pane("#rate-recipe-b"))
        assert {first_left, first_right} == {TUNED_NAME, BASE_NAME}
        await s.press("1" if first_left == TUNED_NAME else "2")
        assert "chosen: " in s.text("#rate-choice")
        await s.press("enter")
        assert s.position.startswith("item 2 of 3")
        # The share done stands on the left: a notice (top right) covers no part of it.
        assert s.position == "item 2 of 3 · 1 done · 33%"
        bar = s.screen.query_one("#rate-progress")
        assert not bar.show_percentage and bar.progress == 1

        # Item 2: "both bad" by mistake, then u brings it back and it is rated a tie.
        second_a, second_b = s.pane("#rate-recipe-a"), s.pane("#rate-recipe-b")
        await s.press("4", "enter")
        assert s.position.startswith("item 3 of 3")
        await s.press("u")
        assert s.position.startswith("item 2 of 3")
        assert (s.pane("#rate-recipe-a"), s.pane("#rate-recipe-b")) == (second_a, second_b)
        assert s.screen.query_one("#rate-choice").choice is None  # a fresh start on the item
        await s.press("3", "enter")

        # Item 3 is skipped.
        assert s.position.startswith("item 3 of 3")
        await s.press("s")
        assert s.screen.phase == "complete"
        assert "all 3 items: 2 rated, 1 skipped" in s.text("#rate-note")

    ratings = _ratings(rating_store, "omelette-pairs")
    assert [r.choice for r in ratings] == ["left" if first_left == TUNED_NAME else "right", "tie"]
    first = ratings[0]
    # The stored sides are the sides the rater saw.
    assert rating_store.generation_variant[first.generation_id] == first_left
    assert rating_store.generation_variant[first.other_generation_id] == first_right
    assert all(r.seconds > 0 and r.scores == {} for r in ratings)
    assert _states(rating_store, "omelette-pairs") == ["rated", "rated", "skipped"]


async def test_a_dropped_session_resumes_on_the_item_it_was_on(rating_store):
    async with rating(rating_store.url, "omelette-pairs") as s:
        assert s.position.startswith("item 1 of 3")
        first = (s.pane("#rate-recipe-a"), s.pane("#rate-recipe-b"), s.pane("#rate-reference"))
    # Gone before rating: the same item, on the same sides, comes back.
    async with rating(rating_store.url, "omelette-pairs") as s:
        assert s.position.startswith("item 1 of 3")
        assert (s.pane("#rate-recipe-a"), s.pane("#rate-recipe-b"),
                s.pane("#rate-reference")) == first
        await s.press("3", "enter")
        assert s.position.startswith("item 2 of 3")
    assert len(_ratings(rating_store, "omelette-pairs")) == 1
    # Gone after rating: the next session starts at item 2, not item 1.
    async with rating(rating_store.url, "omelette-pairs") as s:
        assert s.position.startswith("item 2 of 3")
        assert s.pane("#rate-reference") != first[2]
        await s.pilot.press("4", "enter", "q")  # quitting right after Enter keeps the rating
        await s.app.workers.wait_for_complete()
        await s.pilot.pause()
        assert s.app.return_code == 0
    assert [r.choice for r in _ratings(rating_store, "omelette-pairs")] == ["tie", "both-bad"]


async def test_a_refused_save_is_a_notice_and_the_answer_stays(rating_store):
    async with rating(rating_store.url, "omelette-pairs") as s:
        assert s.position.startswith("item 1 of 3")
        # The same rater, in a second session, rated this item a moment ago.
        with rating_store.session() as session:
            save_rating(session, assignment_id=s.screen.place.item.assignment_id, choice="tie",
                        seconds=1.0)
        await s.press("2", "enter")
        assert "Could not save the rating" in s.notices[-1]
        assert "already rated" in s.notices[-1] and "NOT saved" in s.notices[-1]
        assert s.screen.phase == "rating" and s.position.startswith("item 1 of 3")
        assert s.screen.query_one("#rate-choice").choice == "right"  # the answer is kept
        await s.press("r")  # read the place again: the store says item 1 is done
        assert s.position.startswith("item 2 of 3")
    assert [r.choice for r in _ratings(rating_store, "omelette-pairs")] == ["tie"]


async def test_keys_scroll_long_recipes_and_tab_moves_between_panes(rating_store):
    with rating_store.session() as session:
        for generation in session.exec(select(Generation)):
            generation.text = "".join(f"- {n} g flour\n" for n in range(80)) + generation.text
            session.add(generation)
    async with rating(rating_store.url, "omelette-pairs") as s:
        a, b = (s.screen.query_one(f"#rate-recipe-{side}") for side in "ab")
        assert s.app.focused is s.screen.query_one("#rate-choice")
        await s.press("pagedown")  # with the choice focused: both recipes scroll
        assert a.scroll_y > 0 and b.scroll_y > 0
        await s.press("tab", "tab")  # the reference pane, then recipe A
        assert s.app.focused is a
        before_a, before_b = a.scroll_y, b.scroll_y
        await s.press("k")  # only the focused pane
        assert (a.scroll_y, b.scroll_y) == (before_a - 1, before_b)
        await s.press("3", "enter")  # the next item starts at the top, the choice focused
        assert s.position.startswith("item 2 of 3")
        assert (a.scroll_y, b.scroll_y) == (0, 0)
        assert s.app.focused is s.screen.query_one("#rate-choice")


async def test_a_store_without_campaigns_says_so(empty_url):
    async with rating(empty_url, None) as s:
        assert s.screen.phase == "note"
        assert "There is no open rating campaign for ada." in s.text("#rate-note")
        await s.press("q")
        assert s.app.return_code == 0


async def test_without_a_campaign_name_the_rater_chooses_or_is_told(rating_store):
    async with rating(rating_store.url, None) as s:
        assert s.screen.phase == "choose"
        await s.press("down", "enter")
        assert s.screen.phase == "rating"
        assert "omelette-pairs · rater ada" in s.screen.sub_title
    async with rating(rating_store.url, "no-such-campaign") as s:
        note = s.text("#rate-note")
        assert "There is no rating campaign called 'no-such-campaign'" in note
        assert "omelette-single, omelette-pairs" in note
        await s.press("1", "enter", "s", "u")  # nothing to rate: no error, no change
    assert _ratings(rating_store, "omelette-pairs") == []


def _frame(app) -> str:
    """The screen as drawn, as text (the SVG's non-breaking spaces made plain)."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def _visible_text(s: Session, *, frame: bool = True) -> str:
    """Everything a rater could see or reach on the screen: the rendered frame (when `frame`),
    every widget's content, id, classes, tooltip and border titles, the titles, and every
    notice so far."""
    app = s.app
    parts = [str(app.title), str(app.sub_title), str(app.screen.title), str(app.screen.sub_title),
             *s.notices]
    if frame:
        parts.append(_frame(app))
    for widget in app.screen.walk_children(with_self=True):
        parts += [str(widget.id), " ".join(widget.classes), str(widget.tooltip),
                  str(widget.border_title), str(widget.border_subtitle)]
        parts.append(str(widget.render()))
        if isinstance(widget, Static):  # a renderable that is not plain text shows its text
            parts.append(str(widget.content))
    return "\n".join(parts)


SECRETS = (TUNED_NAME, BASE_NAME, "SECRETVARIANT", ADAPTER, BASE_MODEL, "/secret", JOB_TITLE,
           "SECRETJOB", str(TUNED_ID), str(BASE_ID), str(JOB_ID),
           *(str(GENERATION_IDS[name] + i) for name in GENERATION_IDS for i in range(N_SAMPLES)))


@pytest.mark.parametrize("campaign", ["omelette-single", "omelette-pairs"])
async def test_no_variant_identity_reaches_the_rater(rating_store, campaign):
    async with rating(rating_store.url, campaign) as s:
        # The first item as drawn, and the help screen over it.
        assert "item 1 of" in _frame(s.app) and "Reference · eval-0" in _frame(s.app)
        seen = [_visible_text(s)]
        await s.press("question_mark")
        assert isinstance(s.app.screen, HelpScreen)
        seen.append(_visible_text(s))
        await s.press("escape")
        # Every item's widgets, then the complete view as drawn.
        while s.screen.phase == "rating":
            screen = _visible_text(s, frame=False)
            assert "[tuned" in screen or "[base" in screen  # the walk does see the recipes
            seen.append(screen)
            await s.press("3", "3", "3", "enter")
        assert s.screen.phase == "complete"
        await s.press("u", "s")
        seen.append(_visible_text(s))
    items = 2 * N_SAMPLES if campaign == "omelette-single" else N_SAMPLES
    assert len(seen) == items + 3
    everything = "\n".join(seen)
    assert "Save the rating now" in everything  # the help screen's text was walked
    assert "is complete — thank you" in everything
    for secret in SECRETS:
        assert secret not in everything, secret


async def test_a_store_locked_past_the_write_budget_is_a_busy_notice_and_nothing_is_lost(
        rating_store, monkeypatch):
    import sqlite3

    import db.store

    monkeypatch.setattr(db.store, "WRITE_BUDGET_S", 0.3)
    path = rating_store.url.split("///", 1)[1]
    async with rating(rating_store.url, "omelette-pairs") as s:
        assert s.position.startswith("item 1 of 3")
        # Another process (a job, another rater) holds the write lock all the while.
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            await s.press("2", "enter")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert "the store is busy, try again" in s.notices[-1]
        assert "database is locked" not in " ".join(s.notices)
        assert "NOT saved" in s.notices[-1]
        assert s.screen.phase == "rating" and s.position.startswith("item 1 of 3")
        assert s.screen.query_one("#rate-choice").choice == "right"  # the answer is kept
        assert _ratings(rating_store, "omelette-pairs") == []
        await s.press("enter")  # the lock is gone: the same answer is saved
        assert s.position.startswith("item 2 of 3")
    assert [r.choice for r in _ratings(rating_store, "omelette-pairs")] == ["right"]
