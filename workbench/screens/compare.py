"""The Compare screen: an eval sample's reference recipe beside a variant's generation and judgments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, OptionList, Select, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from workbench.data.compare import (
    CompareChoices,
    CompareView,
    EvalSampleChoice,
    VariantChoice,
    load_choices,
    load_view,
)
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.recipe_panes import (
    RecipePane,
    describe_generation,
    describe_reference,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NO_EVAL = ("No evaluation samples yet.\n\nImport the kitchen, whose held-out videos form the eval "
           "set, with `ddft data kitchen`, or build a complete demo with `ddft demo`.")
NO_VARIANTS = ("No model variants yet — train one with `ddft train --variant NAME --base MODEL`, "
               "or run `ddft demo`. Then `ddft generate` makes recipes to compare.")


class CompareScreen(WorkbenchScreen):
    """Pick an eval sample on the left and a variant above; read both recipes side by side."""

    SUB_TITLE = "Compare"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "cycle_variant(1)", "Next variant", id="compare.next_variant"),
        Binding("V", "cycle_variant(-1)", "Prev variant", id="compare.prev_variant", show=False),
        Binding("r", "reload", "Reload", id="compare.reload"),
    ]

    @dataclass
    class ChoicesLoaded(Message):
        choices: CompareChoices

    @dataclass
    class ViewLoaded(Message):
        view: CompareView | None

    def __init__(self) -> None:
        super().__init__()
        self.choices: CompareChoices | None = None
        self.view: CompareView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-bar"):
            yield Select([], prompt="variant", id="compare-variant")
            yield Static("", id="compare-summary")
        with Horizontal(id="compare-body"):
            yield OptionList(id="compare-samples")
            with VerticalScroll(id="reference-scroll"):
                yield RecipePane("loading…", id="reference")
            with VerticalScroll(id="generation-scroll"):
                yield RecipePane("", id="generation")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-samples", OptionList).focus()

    def on_screen_resume(self) -> None:
        self._load_choices(self.engine)

    # ------------------------------------------------------------------ loading

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-choices")
    def _load_choices(self, engine: Engine) -> None:
        choices = load_choices(engine)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ChoicesLoaded(choices))

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-view")
    def _load_view(self, engine: Engine, sample: EvalSampleChoice, variant: VariantChoice) -> None:
        view = load_view(engine, sample=sample, variant=variant)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ViewLoaded(view))

    @property
    def sample_id(self) -> int | None:
        options = self.query_one("#compare-samples", OptionList)
        if options.highlighted is None or options.option_count == 0:
            return None
        return int(options.get_option_at_index(options.highlighted).id)

    @property
    def variant(self) -> VariantChoice | None:
        chosen = self.query_one("#compare-variant", Select).selection
        if self.choices is None or chosen is None:
            return None
        return next((v for v in self.choices.variants if v.id == chosen), None)

    @on(ChoicesLoaded)
    def _choices_loaded(self, message: ChoicesLoaded) -> None:
        choices = message.choices
        if choices != self.choices:
            options = self.query_one("#compare-samples", OptionList)
            kept_sample = self.sample_id
            options.clear_options()
            options.add_options([Option(Text(s.label), id=str(s.id)) for s in choices.samples])
            ids = [s.id for s in choices.samples]
            if ids:
                options.highlighted = ids.index(kept_sample) if kept_sample in ids else 0
            select = self.query_one("#compare-variant", Select)
            kept_variant = select.selection
            with self.prevent(Select.Changed):
                select.set_options([(Text(v.name), v.id) for v in choices.variants])
                variant_ids = [v.id for v in choices.variants]
                if variant_ids:
                    select.value = kept_variant if kept_variant in variant_ids else variant_ids[0]
            self.choices = choices
        self._request_view()

    def _request_view(self) -> None:
        reference = self.query_one("#reference", RecipePane)
        generation = self.query_one("#generation", RecipePane)
        summary = self.query_one("#compare-summary", Static)
        choices = self.choices
        if choices is None:
            return
        summary.update(f"{len(choices.samples)} eval samples · {len(choices.variants)} variants")
        if not choices.samples:
            self.view = None
            reference.show_note(NO_EVAL)
            generation.show_note("" if choices.variants else NO_VARIANTS)
            return
        sample_id, variant = self.sample_id, self.variant
        if variant is None:
            self.view = None
            reference.show_note("")
            generation.show_note(NO_VARIANTS)
            return
        sample = next((s for s in choices.samples if s.id == sample_id), None)
        if sample is not None:
            self._load_view(self.engine, sample, variant)

    @on(ViewLoaded)
    def _view_loaded(self, message: ViewLoaded) -> None:
        view = message.view
        if view is None:
            self._load_choices(self.engine)  # the sample was deleted: read the list again
            return
        if view.sample_id != self.sample_id or view.variant != self.variant:
            return  # the selection moved on while this was read
        self.view = view
        self.query_one("#reference", RecipePane).show_text(describe_reference(view))
        self.query_one("#generation", RecipePane).show_text(describe_generation(view))

    @on(OptionList.OptionHighlighted, "#compare-samples")
    @on(Select.Changed, "#compare-variant")
    def _selection_changed(self) -> None:
        self._request_view()

    # ------------------------------------------------------------------ actions

    def action_cycle_variant(self, step: int) -> None:
        if self.choices is None or not self.choices.variants:
            self.app.bell()
            return
        ids = [v.id for v in self.choices.variants]
        current = self.query_one("#compare-variant", Select).selection
        index = ids.index(current) if current in ids else -step
        self.query_one("#compare-variant", Select).value = ids[(index + step) % len(ids)]

    def action_reload(self) -> None:
        self._load_choices(self.engine)
