"""The Compare screen: an eval sample's reference recipe beside the variants' generations, each
line marked by the offline judge's reading, and every judge's score in parts."""

from __future__ import annotations

import asyncio
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
    SCORE_GAP,
    CompareChoices,
    CompareView,
    EvalSampleChoice,
    VariantChoice,
    VariantSide,
    filter_samples,
    load_choices,
    load_view,
    why_none_left,
)
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.grounding import describe_segments, describe_times
from workbench.widgets.recipe_panes import (
    RecipePane,
    describe_generation,
    describe_reference,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NO_EVAL = ("No evaluation samples yet.\n\nImport the kitchen, whose held-out videos form the eval "
           "set, with `ddft data import kitchen`, or build a complete demo with `ddft demo`.")
EMPTY_EVAL_SET = "This eval set has no samples — press e to choose another."
NO_VARIANTS = ("No model variants yet — train one with `ddft train --variant NAME --base MODEL`, "
               "or run `ddft demo`. Then `ddft generate` makes recipes to compare.")

# The narrowest a recipe column gets when more than one variant is shown: the reference and as
# many variants as fit at this width are shown side by side, the rest one key (v) away.
MIN_COLUMN = 40


class CompareScreen(WorkbenchScreen):
    """Pick an eval set and one of its samples; read the reference beside the variants' recipes:
    as many side by side as fit (one on an 80-column terminal), the others one key (v) away.
    Only variants with a generation for the sample get a column."""

    SUB_TITLE = "Compare"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "focus_eval_set", "Eval set", id="compare.eval_set",
                tooltip="Choose the eval set whose samples are listed"),
        Binding("v", "next_variant", "Variant", id="compare.next_variant",
                tooltip="Show the next variant's generation beside the reference (when not all "
                        "fit side by side)"),
        Binding("d", "toggle_disagree", "Disagree", id="compare.disagree",
                tooltip="Show only samples where judges give one generation different verdicts"),
        Binding("g", "toggle_gap", "Score gap", id="compare.gap",
                tooltip=f"Show only samples where variants' scores differ by more than {SCORE_GAP:g} "
                        "under the chosen judge"),
        Binding("f", "toggle_grounding", "Times", id="compare.grounding",
                tooltip="Show each variant's step times (`ddft timestamps`) on a time bar under "
                        "the annotated steps, and each generated step with the frame it attends "
                        "to most (`ddft ground`)"),
        Binding("w", "toggle_replies", "Replies", id="compare.replies",
                tooltip="Show each judge's reply as stored, below its score and its parts"),
        Binding("j", "focus_judge", "Gap judge", show=False, id="compare.judge",
                tooltip="Choose the judge whose scores the score-gap filter compares"),
        Binding("r", "reload", "Reload", show=False, id="compare.reload"),
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
        self.only_disagreements = False
        self.only_score_gaps = False
        self.show_grounding = False
        self.show_replies = False
        self.shown: tuple[EvalSampleChoice, ...] = ()
        # The variant (id) the first variant column shows; v moves it on to the next.
        self.first_variant: int | None = None
        self.note = ""  # why there is no view to show
        self._drawn_sample: int | None = None
        self._drawing = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-bar"):
            yield Select([], prompt="eval set", id="compare-eval-set", compact=True)
            yield Select([], prompt="gap judge", id="compare-judge", compact=True)
            yield Static("", id="compare-summary")
        with Horizontal(id="compare-body"):
            yield OptionList(id="compare-samples")
            with Horizontal(id="compare-columns"), \
                    VerticalScroll(id="reference-scroll", classes="compare-column"):
                yield RecipePane("loading…", id="reference")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-samples", OptionList).focus()

    def on_screen_resume(self) -> None:
        self._reload_choices()

    # ------------------------------------------------------------------ loading

    def _reload_choices(self) -> None:
        """Read the chosen eval set's samples again (the default one before any is chosen)."""
        chosen = self.query_one("#compare-eval-set", Select).selection
        self._load_choices(self.db_engine, chosen if isinstance(chosen, int) else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-choices")
    def _load_choices(self, db_engine: Engine, dataset_id: int | None) -> None:
        choices = load_choices(db_engine, dataset_id=dataset_id)
        if not get_current_worker().is_cancelled:
            self.post_message(self.ChoicesLoaded(choices))

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-view")
    def _load_view(self, db_engine: Engine, sample: EvalSampleChoice,
                   variants: tuple[VariantChoice, ...]) -> None:
        view = load_view(db_engine, sample=sample, variants=variants,
                         workspace=getattr(self.app, "workspace", None))
        if not get_current_worker().is_cancelled:
            self.post_message(self.ViewLoaded(view))

    @property
    def sample_id(self) -> int | None:
        options = self.query_one("#compare-samples", OptionList)
        if options.highlighted is None or options.option_count == 0:
            return None
        return int(options.get_option_at_index(options.highlighted).id)

    @property
    def gap_setting(self) -> str | None:
        chosen = self.query_one("#compare-judge", Select).selection
        return chosen if self.only_score_gaps and isinstance(chosen, str) else None

    def _generation_panes(self) -> list[RecipePane]:
        return list(self.query(".generation").results(RecipePane))

    @on(ChoicesLoaded)
    async def _choices_loaded(self, message: ChoicesLoaded) -> None:
        choices = message.choices
        if choices != self.choices:
            eval_set = self.query_one("#compare-eval-set", Select)
            with self.prevent(Select.Changed):
                eval_set.set_options([(Text(name), i) for i, name in choices.eval_sets])
                if choices.dataset_id is not None:
                    eval_set.value = choices.dataset_id  # what the loader used, maybe its default
            judge = self.query_one("#compare-judge", Select)
            kept = judge.selection
            with self.prevent(Select.Changed):
                judge.set_options([(Text(s), s) for s in choices.settings])
                if choices.settings:
                    judge.value = kept if kept in choices.settings else choices.settings[0]
            self.choices = choices
            self._show_samples()
        self._request_view()

    def variant_slots(self) -> int:
        """How many variant columns fit beside the reference (at least one)."""
        width = self.query_one("#compare-columns").size.width
        return max(1, width // MIN_COLUMN - 1)

    def drawable(self) -> tuple[VariantSide, ...]:
        """The variants with something to draw: a recipe, or in the time view step times too."""
        view = self.view
        if view is None:
            return ()
        return view.timed_or_generated if self.show_grounding else view.generated

    def shown_sides(self) -> tuple[VariantSide, ...]:
        """The variants drawn beside the reference: as many as fit, from the one v has moved
        to, in variant order (wrapping round)."""
        generated = self.drawable()
        if not generated:
            return ()
        count = min(len(generated), self.variant_slots())
        ids = [side.variant.id for side in generated]
        first = ids.index(self.first_variant) if self.first_variant in ids else 0
        return tuple(generated[(first + i) % len(generated)] for i in range(count))

    async def _ensure_columns(self, count: int) -> list[RecipePane]:
        """Exactly `count` variant columns beside the reference, reusing those there."""
        columns = self.query_one("#compare-columns", Horizontal)
        scrolls = list(columns.query(".generation-scroll"))
        if len(scrolls) > count:
            await columns.remove_children(scrolls[count:])
        elif len(scrolls) < count:
            await columns.mount_all(
                VerticalScroll(RecipePane("", id=f"generation-{index}", classes="generation"),
                               classes="compare-column generation-scroll")
                for index in range(len(scrolls), count))
        return self._generation_panes()

    def on_resize(self) -> None:
        self.call_after_refresh(self._redraw)

    async def _redraw(self) -> None:
        await self._show_view()

    def _show_samples(self) -> None:
        """Fill the sample list with what the filters leave, keeping the highlighted sample."""
        if self.choices is None:
            return
        self.shown = filter_samples(self.choices.samples, disagree=self.only_disagreements,
                                    gap_setting=self.gap_setting)
        options = self.query_one("#compare-samples", OptionList)
        kept_sample = self.sample_id
        with self.prevent(OptionList.OptionHighlighted):
            options.clear_options()
            options.add_options([Option(Text(s.label), id=str(s.id)) for s in self.shown])
            ids = [s.id for s in self.shown]
            if ids:
                options.highlighted = ids.index(kept_sample) if kept_sample in ids else 0
        self.query_one("#compare-summary", Static).update(Text(self._summary()))

    def _summary(self) -> str:
        choices = self.choices
        assert choices is not None
        filters = []
        if self.only_disagreements:
            filters.append("judges disagree")
        if self.gap_setting is not None:
            filters.append(f"scores differ by > {SCORE_GAP:g} ({self.gap_setting})")
        shown = (f"{len(self.shown)} of {len(choices.samples)} eval samples"
                 if filters else f"{len(choices.samples)} eval samples")
        text = f"{shown} · {len(choices.variants)} variants"
        return text + (f" · filter: {', '.join(filters)}" if filters else "")

    def _request_view(self) -> None:
        choices = self.choices
        if choices is None:
            return
        if not choices.samples or not choices.variants or not self.shown:
            self.view = None
            notes = [EMPTY_EVAL_SET if choices.eval_sets else NO_EVAL] if not choices.samples else []
            notes += [NO_VARIANTS] if not choices.variants else []
            self.note = "\n\n".join(notes) or why_none_left(
                choices, disagree=self.only_disagreements, gap_setting=self.gap_setting)
            self.call_later(self._show_view)
            return
        sample = next((s for s in self.shown if s.id == self.sample_id), None)
        if sample is not None:
            self._load_view(self.db_engine, sample, choices.variants)

    @on(ViewLoaded)
    async def _view_loaded(self, message: ViewLoaded) -> None:
        view = message.view
        if view is None:
            self._reload_choices()  # the sample was deleted: read the list again
            return
        if self.choices is None or view.sample_id != self.sample_id:
            return  # the selection moved on while this was read
        if tuple(side.variant for side in view.sides) != self.choices.variants:
            return  # the variants changed while this was read; a fresh read follows
        self.view = view
        await self._show_view()

    async def _show_view(self) -> None:
        """Draw the loaded comparison (recipes, or each step's grounded frame with `f`), or the
        note saying why there is none; a new sample is shown from its top."""
        async with self._drawing:
            reference = self.query_one("#reference", RecipePane)
            view = self.view
            if view is None:
                await self._ensure_columns(0)
                self._drawn_sample = None
                if self.note:  # else nothing is read yet: "loading…" stays
                    reference.show_note(self.note)
                return
            sides = self.shown_sides()
            panes = await self._ensure_columns(len(sides))
            generated = self.drawable()
            cycling = len(sides) < len(generated)
            if self.show_grounding:
                reference.show_text(describe_segments(view))
            else:
                reference.show_text(describe_reference(view, sides))
            for pane, side in zip(panes, sides):
                position = (generated.index(side) + 1, len(generated)) if cycling else None
                if self.show_grounding:
                    pane.show_text(describe_times(view, side, position=position))
                else:
                    pane.show_text(describe_generation(view, side, raw=self.show_replies,
                                                       position=position))
            if view.sample_id != self._drawn_sample:
                self._drawn_sample = view.sample_id
                for column in self.query(".compare-column"):
                    column.scroll_home(animate=False)

    @on(OptionList.OptionHighlighted, "#compare-samples")
    def _sample_changed(self) -> None:
        self._request_view()

    @on(Select.Changed, "#compare-eval-set")
    def _eval_set_changed(self) -> None:
        self._reload_choices()

    @on(Select.Changed, "#compare-judge")
    def _judge_changed(self) -> None:
        if self.only_score_gaps:
            self._show_samples()
            self._request_view()

    # ------------------------------------------------------------------ actions

    def action_toggle_disagree(self) -> None:
        self.only_disagreements = not self.only_disagreements
        self._show_samples()
        self._request_view()

    def action_toggle_gap(self) -> None:
        if self.choices is None or not self.choices.settings:
            self.app.bell()
            self.notify("No judgments yet: the score-gap filter compares a judge's scores.")
            return
        self.only_score_gaps = not self.only_score_gaps
        self._show_samples()
        self._request_view()

    async def action_toggle_grounding(self) -> None:
        self.show_grounding = not self.show_grounding
        await self._show_view()

    async def action_toggle_replies(self) -> None:
        self.show_replies = not self.show_replies
        await self._show_view()

    async def action_next_variant(self) -> None:
        generated = self.drawable()
        if len(generated) <= len(self.shown_sides()):
            self.app.bell()
            self.notify(f"Every variant with a generation for this sample is shown "
                        f"({len(generated)}).", timeout=3)
            return
        ids = [side.variant.id for side in generated]
        first = ids.index(self.first_variant) if self.first_variant in ids else 0
        self.first_variant = ids[(first + 1) % len(ids)]
        await self._show_view()
        for column in self.query(".generation-scroll"):
            column.scroll_home(animate=False)

    def action_focus_judge(self) -> None:
        self.query_one("#compare-judge", Select).focus()

    def action_focus_eval_set(self) -> None:
        self.query_one("#compare-eval-set", Select).focus()

    def action_reload(self) -> None:
        self._reload_choices()
