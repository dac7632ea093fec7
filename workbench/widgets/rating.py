"""The pieces of the blind rating screen: recipe panes, three 1–5 scales, and a choice between two recipes."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from workbench.widgets.hanging import HangingLines

# As db.models.RATING_FIELDS and PAIRWISE_CHOICES; repeated so that importing the workbench
# does not import the store (a test checks that they agree).
RATING_FIELDS = ("ingredients", "steps", "overall")
PAIRWISE_CHOICES = ("left", "right", "tie", "both-bad")
SCORES = (1, 2, 3, 4, 5)
SCALE_LABELS = {"ingredients": "Ingredients & measurements", "steps": "Steps", "overall": "Overall"}
CHOICE_LABELS = {"left": "A is closer", "right": "B is closer", "tie": "Tie", "both-bad": "Both bad"}
# The GPT judge's scale (engine/judge/prompts.py), so that people and the judge rate alike.
SCALE_ANCHORS = "1 = does not match the reference at all · 5 = matches it completely"
LABEL_WIDTH = max(len(label) for label in SCALE_LABELS.values()) + 2


class RecipePane(VerticalScroll):
    """A titled pane that wraps and scrolls one text: the reference, or a recipe to rate."""

    DEFAULT_CSS = """
    RecipePane {
        width: 1fr;
        height: 1fr;
        border: round $primary-background;
        padding: 0 1;
    }
    RecipePane:focus {
        border: round $accent;
    }
    RecipePane > Static {
        width: 1fr;
    }
    """

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(Static("", markup=False), id=id)
        self.border_title = title

    @property
    def text(self) -> str:
        return str(self.query_one(Static).content)

    def show(self, text: Text | HangingLines) -> None:
        """Show `text` from its first line."""
        self.query_one(Static).update(text)
        self.scroll_home(animate=False)


class ScoreScales(Widget, can_focus=True):
    """Ingredients, steps and overall, each 1 to 5; a digit scores the current scale and moves on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Previous scale", show=False, id="rate.scale_up",
                tooltip="Single mode: move to the scale above (to change a score)"),
        Binding("down", "move(1)", "Next scale", show=False, id="rate.scale_down",
                tooltip="Single mode: move to the scale below"),
    ]

    DEFAULT_CSS = """
    ScoreScales {
        height: auto;
        padding: 0 1;
        border-top: solid $primary-background;
    }
    ScoreScales:focus {
        background: $boost;
    }
    """

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.scores: dict[str, int] = {}
        self.current = 0

    def reset(self) -> None:
        self.scores = {}
        self.current = 0
        self.refresh(layout=True)

    def score(self, value: int) -> bool:
        """Score the current scale and move to the next; False when `value` is not 1 to 5."""
        if value not in SCORES:
            return False
        self.scores[RATING_FIELDS[self.current]] = value
        self.current = min(self.current + 1, len(RATING_FIELDS) - 1)
        self.refresh()
        return True

    def action_move(self, step: int) -> None:
        self.current = (self.current + step) % len(RATING_FIELDS)
        self.refresh()

    @property
    def missing(self) -> list[str]:
        """The scales not scored yet, by their labels, in screen order."""
        return [SCALE_LABELS[field] for field in RATING_FIELDS if field not in self.scores]

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, field in enumerate(RATING_FIELDS):
            here = index == self.current
            text.append("▶ " if here else "  ", style="bold" if here else "")
            text.append(f"{SCALE_LABELS[field]:<{LABEL_WIDTH}}", style="bold" if here else "")
            chosen = self.scores.get(field)
            for value in SCORES:
                if value == chosen:
                    text.append(f"[{value}]", style="bold reverse")
                else:
                    text.append(f" {value} ", style="dim")
            text.append("   not scored\n" if chosen is None else "\n",
                        style="yellow" if here else "dim")
        text.append(SCALE_ANCHORS, style="dim italic")
        return text


class PairChoice(Widget, can_focus=True):
    """Which of two recipes is closer to the reference: A (left), B (right), a tie, or both bad."""

    DEFAULT_CSS = """
    PairChoice {
        height: auto;
        padding: 0 1;
        border-top: solid $primary-background;
    }
    PairChoice:focus {
        background: $boost;
    }
    """

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.choice: str | None = None

    def reset(self) -> None:
        self.choice = None
        self.refresh()

    def choose(self, key: int) -> bool:
        """Choose by key (1 A, 2 B, 3 tie, 4 both bad); False for any other key."""
        if not 1 <= key <= len(PAIRWISE_CHOICES):
            return False
        self.choice = PAIRWISE_CHOICES[key - 1]
        self.refresh()
        return True

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Which recipe is closer to the reference?\n", style="bold")
        for key, choice in enumerate(PAIRWISE_CHOICES, start=1):
            chosen = choice == self.choice
            label = f"{key} {CHOICE_LABELS[choice]}"
            text.append(f"[{label}]" if chosen else f" {label} ",
                        style="bold reverse" if chosen else "")
            text.append("  ")
        text.append("\n")
        if self.choice is None:
            text.append("press 1–4", style="yellow")
        else:
            text.append(f"chosen: {CHOICE_LABELS[self.choice]} — Enter saves", style="dim")
        return text
