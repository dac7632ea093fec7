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

from workbench.widgets.hanging import HangingLines

NOTES = (
    "Tab and Shift+Tab move between the table, filters and panes; arrow keys move in a table.\n"
    "In a search box the keys type text: press Esc or Enter to go back to the table.\n"
    "The workbench reads the store and goes through engine.jobs to start, cancel and resume work: "
    "a training run starts from the Runs screen (5, then n) or with `ddft train`; generation and "
    "judging with `ddft generate` and `ddft judge`. Every one runs as a job that survives the session."
)


class HelpScreen(ModalScreen[None]):
    """Keys grouped by where they work; Esc, q or ? closes it. At most 90 columns wide and
    never wider than the terminal: a description wraps in its own column, and the box scrolls
    (arrows, PageUp/PageDown) when it is taller than the terminal."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 100%; max-width: 90; max-height: 100%; height: auto; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    """
    NOTES = NOTES

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def _key_table(self) -> HangingLines:
        # A description that wraps goes on under itself, not under the keys, on 80 columns too.
        rows = []
        for title, bindings in self.sections:
            keys = [(" / ".join(self.app.get_key_display(replace(binding, key=key.strip()))
                                for key in binding.key.split(",")),
                     binding.tooltip or binding.description) for binding in bindings]
            rows.append((title, keys))
        width = max((Text(k).cell_len for _, keys in rows for k, _ in keys), default=0)
        lines = HangingLines()
        for number, (title, keys) in enumerate(rows):
            if number:
                lines.add("")
            lines.add(Text(f" {title} ", style="reverse"))
            for key, description in keys:
                lines.add(Text(description), Text(f"  {key:<{width}}  ", style="bold"))
        return lines

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._key_table(), id="help-keys")
            yield Static("\n" + self.NOTES, id="help-notes", markup=False)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
