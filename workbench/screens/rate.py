"""The blind rating screen: a rater scores anonymized recipes against the reference, one item at a time.

What a rater sees comes from db.campaigns' `RatingItem`, which carries no variant, run or model
identity; this screen adds none (no variant names, ids or paths in text, widget ids, tooltips,
titles or notices). Every rating is written the moment it is given, so a dropped connection
loses nothing, and opening the screen again shows the item the rater was on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import (
    ContentSwitcher,
    Footer,
    Header,
    OptionList,
    ProgressBar,
    Static,
)
from textual.widgets.option_list import Option

from workbench.screens.base import WorkbenchScreen
from workbench.screens.help import HelpScreen
from workbench.widgets.hanging import HangingLines, recipe_lines
from workbench.widgets.rating import (
    CHOICE_LABELS,
    PAIRWISE_CHOICES,
    SCALE_ANCHORS,
    PairChoice,
    RecipePane,
    ScoreScales,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from db.campaigns import RatingItem

RATING_NOTES = (
    "How to rate\n\n"
    "Single: read the reference recipe on the left and the recipe to rate beside it, then give "
    "three scores from 1 to 5 — ingredients (with their measurements), steps, and overall "
    f"({SCALE_ANCHORS}). A digit scores the highlighted scale and moves to the next; ↑ and ↓ "
    "move between the scales to change a score. Enter saves once all three are scored.\n\n"
    "Pairwise: which of the two recipes, A (left) or B (right), is closer to the reference? "
    "1 A, 2 B, 3 a tie, 4 both bad; Enter saves.\n\n"
    "Each rating is saved the moment you press Enter, with the time you spent on the item. "
    "If the connection drops, run the same `ddft rate` command again: you continue where you "
    "stopped. u takes back the last rating or skip and shows that item again; s skips an item "
    "(it is not shown again unless you undo the skip).\n\n"
    "Item n of N: N counts the items you have done and those still open to you. Each item is "
    "meant for a set number of raters, so N can shrink while other people rate.\n\n"
    "Tab moves the focus between the rating controls and the text panes; arrows, PageUp/PageDown "
    "and Home/End scroll a focused pane. With the rating controls focused, j/k and "
    "PageUp/PageDown scroll the recipe(s) being rated.\n\n"
    "The recipes are shown without saying which model wrote them, in an order and on sides "
    "chosen at random for you: rate what you read."
)
NOTHING_LEFT = ("Nothing in campaign {campaign} is left for you, {rater}: every item has as many "
                "raters as it is meant for.\n\nPress q to quit.")
COMPLETE = ("Campaign {campaign} is complete — thank you, {rater}.\n\n"
            "You went through all {done} items: {rated} rated, {skipped} skipped. "
            "Every rating is saved.\n\n"
            "Press q to quit, or u to take back your last rating or skip and see that item again.")
NO_CAMPAIGN = ("There is no open rating campaign for {rater}.\n\n"
               "Every campaign is either finished for you or has all the ratings it needs. "
               "Ask whoever runs the rating for a campaign name. Press q to quit.")
UNKNOWN_CAMPAIGN = "There is no rating campaign called {campaign!r}.\n\n{others}Press q to quit."
CHOOSE = "Several campaigns are open for {rater}: choose one with ↑/↓ and Enter."
# The digit keys 2–5 are listed once, as "1–5".
HELP_SKIPS = {"rate.digit_2", "rate.digit_3", "rate.digit_4", "rate.digit_5"}
# Store errors other than a campaign's own are shown by type and first line only: the SQL and
# parameters that follow could name the generations being rated.
ERROR_LINE_CHARS = 160


@dataclass(frozen=True)
class RaterPlace:
    """Where a rater stands in one campaign: the item to show and how far they are."""

    rater_id: int
    rater: str
    campaign_id: int
    campaign: str
    mode: str
    item: RatingItem | None  # None: nothing left for this rater
    done: int  # rated or skipped
    total: int
    rated: int  # of `done`, how many were rated (not skipped); counted once nothing is left


@dataclass(frozen=True)
class CampaignChoice:
    """An open campaign offered to a rater who did not name one."""

    name: str
    mode: str
    done: int
    total: int


Opening = RaterPlace | tuple[CampaignChoice, ...] | str  # a place, a choice, or a note


def describe_error(error: BaseException) -> str:
    """One line for a rater: a campaign's own message in full, a store that stayed locked as
    "the store is busy, try again" (the answer stays on screen, nothing is lost), any other store
    error by its type and first line."""
    from db.campaigns import CampaignError
    from db.store import StoreBusy, is_store_busy

    if isinstance(error, CampaignError):
        return str(error)
    if is_store_busy(error):
        return str(StoreBusy())
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:ERROR_LINE_CHARS]}".rstrip(": ")


def _place(session: Session, place: RaterPlace) -> RaterPlace:
    """`place` with the rater's next item (their open one first) and fresh counts."""
    from db.campaigns import campaign_ratings, next_item, rater_progress

    item = next_item(session, campaign_id=place.campaign_id, rater_id=place.rater_id)
    done, total = rater_progress(session, campaign_id=place.campaign_id, rater_id=place.rater_id)
    rated = 0
    if item is None:  # only the complete view tells rated from skipped
        rated = sum(1 for r in campaign_ratings(session, campaign_id=place.campaign_id)
                    if r.rater_id == place.rater_id)
    return replace(place, item=item, done=done, total=total, rated=rated)


def open_campaign(db_engine: Engine, *, rater: str, campaign: str | None) -> Opening:
    """The rater's place in `campaign`, or, without one, in their only open campaign; the open
    campaigns to choose from when there are several; a note for the rater when there is none.

    Raises db.campaigns.CampaignError for an invalid rater name."""
    from db.campaigns import (
        get_campaign,
        get_or_create_rater,
        open_campaigns_for,
        rater_progress,
    )
    from db.store import session_scope

    with session_scope(db_engine) as session:
        person = get_or_create_rater(session, name=rater)
        rater_id, name = person.id, person.name
        chosen = get_campaign(session, name=campaign) if campaign is not None else None
        if chosen is None:
            open_ = open_campaigns_for(session, rater_id=rater_id)
            if campaign is not None:
                others = (f"Campaigns open for you: {', '.join(c.name for c in open_)}.\n\n"
                          if open_ else "")
                return UNKNOWN_CAMPAIGN.format(campaign=campaign, others=others)
            if not open_:
                return NO_CAMPAIGN.format(rater=name)
            if len(open_) > 1:
                return tuple(CampaignChoice(c.name, c.mode, *rater_progress(
                    session, campaign_id=c.id, rater_id=rater_id)) for c in open_)
            chosen = open_[0]
        start = RaterPlace(rater_id=rater_id, rater=name, campaign_id=chosen.id,
                           campaign=chosen.name, mode=chosen.mode, item=None, done=0, total=0,
                           rated=0)
        return _place(session, start)


def reload_place(db_engine: Engine, place: RaterPlace) -> RaterPlace:
    from db.store import session_scope

    with session_scope(db_engine) as session:
        return _place(session, place)


class RateScreen(WorkbenchScreen):
    """Blind rating of one campaign's items for one rater, keyboard only."""

    TITLE = "ddft · blind rating"
    SUB_TITLE = "Rating"
    BINDINGS: ClassVar[list[BindingType]] = [
        # Hidden in the footer: the scales (1–5) and the pairwise choices (1–4) show their keys.
        Binding("1", "digit(1)", "Rate", key_display="1–5", show=False, id="rate.digit_1",
                tooltip="Single: score the highlighted scale 1–5 and move to the next. "
                        "Pairwise: 1 A is closer, 2 B is closer, 3 tie, 4 both bad"),
        Binding("2", "digit(2)", "Rate 2", show=False, id="rate.digit_2"),
        Binding("3", "digit(3)", "Rate 3", show=False, id="rate.digit_3"),
        Binding("4", "digit(4)", "Rate 4", show=False, id="rate.digit_4"),
        Binding("5", "digit(5)", "Rate 5", show=False, id="rate.digit_5"),
        Binding("enter", "save", "Save", id="rate.save",
                tooltip="Save the rating now (with the time spent on the item) and show the next"),
        Binding("u", "undo", "Undo", id="rate.undo",
                tooltip="Take back the last rating or skip and show that item again"),
        Binding("s", "skip", "Skip", id="rate.skip",
                tooltip="Skip this item: it is not shown again unless you undo the skip"),
        Binding("j", "scroll(1)", "Scroll down", show=False, id="rate.scroll_down",
                tooltip="Scroll the focused pane down a line (the recipes being rated when the "
                        "rating controls are focused)"),
        Binding("k", "scroll(-1)", "Scroll up", show=False, id="rate.scroll_up",
                tooltip="Scroll the focused pane up a line (the recipes being rated when the "
                        "rating controls are focused)"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="rate.page_down",
                tooltip="Scroll the recipes being rated down a page"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="rate.page_up",
                tooltip="Scroll the recipes being rated up a page"),
        Binding("r", "reload", "Reload", show=False, id="rate.reload",
                tooltip="Read your place in the campaign again (after a store error)"),
        Binding("question_mark", "help", "Help", id="rate.help",
                tooltip="Show every key and how to rate"),
        Binding("q", "quit", "Quit", id="rate.quit",
                tooltip="Quit; every saved rating is kept and the next start resumes here"),
    ]

    @dataclass
    class Opened(Message):
        opening: Opening

    @dataclass
    class Moved(Message):
        place: RaterPlace
        notice: str

    @dataclass
    class StoreFailed(Message):
        action: str  # what was being done, for the notice: "save the rating", ...
        error: str
        stored: str = ""  # what was written before reading the next item failed, e.g. "Saved."

    def __init__(self, *, rater: str, campaign: str | None = None) -> None:
        super().__init__()
        self.rater = rater
        self.campaign = campaign
        self.place: RaterPlace | None = None
        self.phase = "loading"  # loading | choose | note | rating | complete
        self.busy = False  # a write is in flight: keys that write wait for it
        self.quit_after_write = False  # q was pressed while a write was in flight
        self._choices: tuple[CampaignChoice, ...] = ()
        self._shown_at = time.monotonic()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="rate-bar"):
            yield Static("", id="rate-position")
            # The share done is in the position text on the left: notices show at the right.
            yield ProgressBar(total=None, show_eta=False, show_percentage=False,
                              id="rate-progress")
        with ContentSwitcher(initial="rate-note-scroll", id="rate-body"):
            with VerticalScroll(id="rate-note-scroll"):
                yield Static(Text("Opening the campaign…"), id="rate-note")
            yield OptionList(id="rate-campaigns")
            with Vertical(id="rate-work"):
                with Horizontal(id="rate-panes"):
                    yield RecipePane("Reference", id="rate-reference")
                    yield RecipePane("Recipe to rate", id="rate-recipe-a")
                    yield RecipePane("Recipe B", id="rate-recipe-b")
                yield ScoreScales(id="rate-scales")
                yield PairChoice(id="rate-choice")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"rater {self.rater}"
        self.query_one("#rate-bar").display = False
        if self.store_ready:
            self._open(self.db_engine, self.rater, self.campaign)

    def store_opened(self) -> None:
        self._open(self.db_engine, self.rater, self.campaign)

    # ------------------------------------------------------------------ store work

    @work(thread=True, exclusive=True, exit_on_error=False, group="rate-open")
    def _open(self, db_engine: Engine, rater: str, campaign: str | None) -> None:
        try:
            opening = open_campaign(db_engine, rater=rater, campaign=campaign)
        except Exception as exc:  # noqa: BLE001 — every failure becomes a notice for the rater
            self.post_message(self.StoreFailed("open the campaign", describe_error(exc)))
            return
        self.post_message(self.Opened(opening))

    @work(thread=True, exit_on_error=False, group="rate-write")
    def _save(self, db_engine: Engine, place: RaterPlace, assignment_id: int,
              scores: dict[str, int] | None, choice: str | None, seconds: float) -> None:
        from db.campaigns import save_rating
        from db.store import session_scope

        try:
            with session_scope(db_engine) as session:
                save_rating(session, assignment_id=assignment_id, scores=scores, choice=choice,
                            seconds=seconds)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.StoreFailed("save the rating", describe_error(exc)))
            return
        self._advance(db_engine, place, "Saved.")

    @work(thread=True, exit_on_error=False, group="rate-write")
    def _skip(self, db_engine: Engine, place: RaterPlace, assignment_id: int) -> None:
        from db.campaigns import skip_item
        from db.store import session_scope

        try:
            with session_scope(db_engine) as session:
                skip_item(session, assignment_id=assignment_id)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.StoreFailed("skip the item", describe_error(exc)))
            return
        self._advance(db_engine, place, "Skipped.")

    @work(thread=True, exit_on_error=False, group="rate-write")
    def _undo(self, db_engine: Engine, place: RaterPlace) -> None:
        from db.campaigns import undo_last
        from db.store import session_scope

        try:
            with session_scope(db_engine) as session:
                undone = undo_last(session, campaign_id=place.campaign_id, rater_id=place.rater_id)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.StoreFailed("undo", describe_error(exc)))
            return
        if undone is None:
            self.post_message(self.StoreFailed("undo", "nothing to undo yet in this campaign"))
            return
        self._advance(db_engine, place, "Taken back: rate this item again.")

    def _advance(self, db_engine: Engine, place: RaterPlace, stored: str) -> None:
        """After a write (in the worker's thread): read the next place and post it."""
        try:
            moved = reload_place(db_engine, place)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.StoreFailed("read the next item", describe_error(exc),
                                               stored=stored))
            return
        self.post_message(self.Moved(moved, stored))

    # ------------------------------------------------------------------ showing

    @on(Opened)
    def _opened(self, message: Opened) -> None:
        self.busy = False
        opening = message.opening
        if isinstance(opening, RaterPlace):
            self._show_place(opening)
        elif isinstance(opening, tuple):
            self._show_choices(opening)
        else:
            self._show_note(opening)

    @on(Moved)
    def _moved(self, message: Moved) -> None:
        self.busy = False
        if self.quit_after_write:
            self.app.exit()
            return
        self._show_place(message.place)
        if message.notice:
            self.notify(message.notice, timeout=2)

    @on(StoreFailed)
    def _store_failed(self, message: StoreFailed) -> None:
        self.busy = False
        if message.stored and self.quit_after_write:
            self.app.exit()  # what was asked for is stored; the next start reads the rest
            return
        self.quit_after_write = False
        if message.stored:
            self._show_note(f"{message.stored} But the next item could not be read:\n"
                            f"{message.error}\n\nPress r to try again, or q to quit (the next "
                            "start resumes here).")
            return
        if message.action == "open the campaign":
            self._show_note(f"The campaign could not be opened:\n{message.error}\n\n"
                            "Press r to try again, or q to quit.")
            return
        unsaved = (" Your answer is NOT saved and is still on screen: press Enter to try again, "
                   "or r to read your place in the campaign again."
                   if message.action == "save the rating" else "")
        self.notify(f"Could not {message.action}: {message.error}.{unsaved}",
                    title="Not done", severity="error" if unsaved else "warning", timeout=8,
                    markup=False)

    def _switch(self, phase: str, body: str) -> None:
        self.phase = phase
        self.query_one("#rate-body", ContentSwitcher).current = body
        self.refresh_bindings()

    def _show_note(self, note: str) -> None:
        self.query_one("#rate-note", Static).update(Text(note))
        self._switch("note", "rate-note-scroll")

    def _show_choices(self, choices: tuple[CampaignChoice, ...]) -> None:
        options = self.query_one("#rate-campaigns", OptionList)
        options.clear_options()
        options.add_options(Option(Text(f"{c.name}  ·  {c.mode}  ·  {c.done} of {c.total} done"),
                                   id=f"campaign-{index}")
                            for index, c in enumerate(choices))
        self._choices = choices
        options.border_title = Text(CHOOSE.format(rater=self.rater))
        self._switch("choose", "rate-campaigns")
        self.sub_title = f"rater {self.rater} · choose a campaign"
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected, "#rate-campaigns")
    def _campaign_chosen(self, event: OptionList.OptionSelected) -> None:
        self.campaign = self._choices[event.option_index].name
        self.query_one("#rate-note", Static).update(Text("Opening the campaign…"))
        self._switch("loading", "rate-note-scroll")
        self._open(self.db_engine, self.rater, self.campaign)

    def _show_place(self, place: RaterPlace) -> None:
        previous = self.place
        self.place = place
        self.campaign = place.campaign
        self.sub_title = f"{place.campaign} · rater {place.rater}"
        bar = self.query_one("#rate-bar")
        bar.display = True
        self.query_one("#rate-progress", ProgressBar).update(total=max(place.total, 1),
                                                             progress=place.done)
        item = place.item
        if item is None:
            self.query_one("#rate-position", Static).update(
                Text(f"complete · {place.done} of {place.total} done", style="bold"))
            note = COMPLETE if place.done else NOTHING_LEFT
            self.query_one("#rate-note", Static).update(Text(note.format(
                campaign=place.campaign, rater=place.rater, done=place.done, rated=place.rated,
                skipped=place.done - place.rated)))
            self._switch("complete", "rate-note-scroll")
            return
        share = f"{place.done / place.total:.0%}" if place.total else "0%"
        self.query_one("#rate-position", Static).update(
            Text.assemble((f"item {item.number} of {item.total}", "bold"),
                          (f" · {place.done} done · {share}", "dim")))
        same = previous is not None and previous.item is not None \
            and previous.item.assignment_id == item.assignment_id and self.phase == "rating"
        if not same:
            self._show_item(item)
        self._switch("rating", "rate-work")

    def _show_item(self, item: RatingItem) -> None:
        """Fill the panes and controls for a new item and start its clock."""
        pairwise = item.mode == "pairwise"
        reference = self.query_one("#rate-reference", RecipePane)
        reference.border_title = Text(f"Reference · {item.sample_external_id}")
        shown = HangingLines()
        shown.add(Text.assemble(("Asked: ", "bold"), (item.prompt, "italic")))
        shown.add("")
        shown.rows += recipe_lines(item.reference).rows
        reference.show(shown)
        first = self.query_one("#rate-recipe-a", RecipePane)
        first.border_title = "Recipe A" if pairwise else "Recipe to rate"
        first.show(recipe_lines(item.texts[0]))
        second = self.query_one("#rate-recipe-b", RecipePane)
        second.display = pairwise
        second.show(recipe_lines(item.texts[1] if pairwise else ""))
        scales = self.query_one("#rate-scales", ScoreScales)
        choice = self.query_one("#rate-choice", PairChoice)
        scales.display, choice.display = not pairwise, pairwise
        scales.reset()
        choice.reset()
        (choice if pairwise else scales).focus()
        self._shown_at = time.monotonic()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Only keys that the app does not bind are switched off here: a refused key goes on to
        # the app's own bindings (digits there switch screens).
        if action in ("save", "skip", "scroll", "page"):
            return self.phase == "rating"
        if action == "reload":
            return self.phase in ("note", "rating", "complete")
        if action == "undo":
            return self.phase in ("rating", "complete")
        return True

    def _ready(self) -> bool:
        if self.phase != "rating" or self.place is None or self.place.item is None:
            return False
        if self.busy:
            self.notify("Still saving the last answer…", timeout=2)
            return False
        return True

    def action_digit(self, value: int) -> None:
        if self.phase != "rating" or self.busy or self.place is None or self.place.item is None:
            return
        if self.place.mode == "pairwise":
            if not self.query_one("#rate-choice", PairChoice).choose(value):
                self.app.bell()
                self.notify("Pairwise: 1 A is closer, 2 B is closer, 3 tie, 4 both bad.",
                            timeout=3)
        else:
            self.query_one("#rate-scales", ScoreScales).score(value)

    def action_save(self) -> None:
        if not self._ready():
            return
        place = self.place
        assert place is not None and place.item is not None
        scores: dict[str, int] | None = None
        choice: str | None = None
        if place.mode == "pairwise":
            choice = self.query_one("#rate-choice", PairChoice).choice
            if choice is None:
                self.app.bell()
                self.notify("Choose first: " + ", ".join(
                    f"{k} {CHOICE_LABELS[c]}" for k, c in enumerate(PAIRWISE_CHOICES, start=1))
                    + " — then Enter.", title="Not saved yet", severity="warning", timeout=3)
                return
        else:
            scales = self.query_one("#rate-scales", ScoreScales)
            if scales.missing:
                self.app.bell()
                self.notify(f"Score {' and '.join(scales.missing)} first (1–5), then Enter.",
                            title="Not saved yet", severity="warning", timeout=3)
                return
            scores = dict(scales.scores)
        seconds = time.monotonic() - self._shown_at
        self.busy = True
        self._save(self.db_engine, place, place.item.assignment_id, scores, choice, seconds)

    def action_skip(self) -> None:
        if not self._ready():
            return
        place = self.place
        assert place is not None and place.item is not None
        self.busy = True
        self._skip(self.db_engine, place, place.item.assignment_id)

    def action_undo(self) -> None:
        if self.place is None or self.phase not in ("rating", "complete"):
            return
        if self.busy:
            self.notify("Still saving the last answer…", timeout=2)
            return
        self.busy = True
        self._undo(self.db_engine, self.place)

    def action_quit(self) -> None:
        if self.busy:
            # Quitting now could end the process before the rating is committed.
            self.quit_after_write = True
            self.notify("Saving your last answer first…", timeout=2)
            return
        self.app.exit()

    def action_reload(self) -> None:
        if self.busy:
            return
        self.busy = True
        self._switch("loading", "rate-note-scroll")
        self.query_one("#rate-note", Static).update(Text("Reading your place in the campaign…"))
        self.place = None
        self._open(self.db_engine, self.rater, self.campaign)

    def _scroll_targets(self) -> list[RecipePane]:
        focused = self.focused
        if isinstance(focused, RecipePane):
            return [focused]
        panes = [self.query_one("#rate-recipe-a", RecipePane)]
        second = self.query_one("#rate-recipe-b", RecipePane)
        return panes + [second] if second.display else panes

    def action_scroll(self, lines: int) -> None:
        for pane in self._scroll_targets():
            pane.scroll_relative(y=lines, animate=False)

    def action_page(self, direction: int) -> None:
        for pane in self._scroll_targets():
            if direction > 0:
                pane.scroll_page_down(animate=False)
            else:
                pane.scroll_page_up(animate=False)

    def action_help(self) -> None:
        keys = [b for b in self.BINDINGS if isinstance(b, Binding) and b.id not in HELP_SKIPS]
        self.app.push_screen(RatingHelpScreen([("Rating", keys + list(ScoreScales.BINDINGS))]))


class RatingHelpScreen(HelpScreen):
    """The rating keys and how to rate; nothing about the rest of the workbench."""

    NOTES = RATING_NOTES
