"""The help screen: every key of the workbench and of the screen it was opened from."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

NOTES = (
    "Tab and Shift+Tab move between the table, filters and panes; arrow keys move in a table.\n"
    "In a search box the keys type text: press Esc or Enter to go back to the table.\n"
    "The workbench reads the store and goes through engine.jobs to start, cancel and resume work: "
    "a training run starts from the Runs screen (5, then n) or with `ddft train`; generation and "
    "judging with `ddft generate` and `ddft judge`. Every one runs as a job that survives the session."
)


class HelpScreen(ModalScreen[None]):
    """Keys grouped by where they work; Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-height: 90%; height: auto; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    """

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def _key_list(self) -> Text:
        text = Text()
        for title, bindings in self.sections:
            text.append(f" {title} \n", style="reverse")
            for binding in bindings:
                keys = " / ".join(
                    self.app.get_key_display(replace(binding, key=key.strip()))
                    for key in binding.key.split(",")
                )
                text.append(f"  {keys:<14}", style="bold")
                text.append(f"{binding.tooltip or binding.description}\n")
            text.append("\n")
        return text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._key_list(), id="help-keys")
            yield Static(NOTES, id="help-notes", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
