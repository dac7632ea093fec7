"""The first screen of the rating app served to a browser: the rater types their name once."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

PROMPT = ("Your name as a rater. Use the same name every time (here or in `ddft rate`): "
          "you resume where you stopped and never get an item twice.")


class RaterNameScreen(Screen[str]):
    """Asks for the rater's name and returns it, cleaned by the store's one rule for names."""

    TITLE = "ddft · blind rating"
    SUB_TITLE = "Who is rating?"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "app.quit", "Quit", id="rater_name.quit"),
    ]

    DEFAULT_CSS = """
    RaterNameScreen { align: center middle; }
    RaterNameScreen > Vertical {
        width: 100%; max-width: 72; height: auto; padding: 1 2;
        border: round $accent;
    }
    RaterNameScreen #rater-name-problem { color: $error; height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static(PROMPT, id="rater-name-prompt", markup=False)
            yield Input(placeholder="your name", id="rater-name", max_length=100)
            yield Static("", id="rater-name-problem", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#rater-name", Input).focus()

    @on(Input.Submitted, "#rater-name")
    def _submitted(self, event: Input.Submitted) -> None:
        # db.campaigns imports SQLModel; the store is already open when this screen shows.
        from db.campaigns import CampaignError, validate_rater_name

        try:
            name = validate_rater_name(event.value)
        except CampaignError as exc:
            self.query_one("#rater-name-problem", Static).update(str(exc))
            return
        self.dismiss(name)
