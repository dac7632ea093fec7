"""The Samples screen: page through training and eval samples, filter, search, include or exclude."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Select, Static
from textual.worker import get_current_worker

from workbench.data.samples import (
    PAGE_SIZE,
    FilterChoices,
    SampleFilters,
    SamplePage,
    SampleRow,
    load_filter_choices,
    load_page,
    set_included,
)
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.sample_detail import SampleDetailPane

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

COLUMNS = (("id", "id"), ("dataset", "dataset"), ("modality", "modality"), ("split", "split"),
           ("included", "incl"), ("preview", "prompt → answer"))
NO_SAMPLES = ("No samples yet.\n\nBuild and import the synthetic kitchen with `ddft data kitchen`, "
              "or make a complete demo workspace with `ddft demo`.")
NO_MATCH = "No samples match these filters. Clear the search (/) or the filters (f)."


def included_mark(included: bool) -> Text:
    return Text("✓", style="bold green") if included else Text("✗", style="bold red")


class SamplesScreen(WorkbenchScreen):
    """A paged table of samples with filters, a search box and the highlighted sample's detail."""

    SUB_TITLE = "Samples"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "page(1)", "Next page", id="samples.next_page", tooltip="Show the next 50 samples"),
        Binding("p", "page(-1)", "Prev page", id="samples.prev_page", tooltip="Show the previous 50 samples"),
        Binding("x,space", "toggle_included", "Include ✓/✗", id="samples.toggle",
                tooltip="Include the highlighted sample in training, or exclude it"),
        Binding("slash", "focus_search", "Search", id="samples.search"),
        Binding("f", "focus_filters", "Filters", id="samples.filters"),
        Binding("r", "reload", "Reload", id="samples.reload"),
        Binding("escape", "focus_table", "Back to table", show=False, id="samples.table"),
    ]

    @dataclass
    class PageLoaded(Message):
        page: SamplePage
        choices: FilterChoices | None

    @dataclass
    class IncludedStored(Message):
        sample_id: int
        included: bool

    def __init__(self) -> None:
        super().__init__()
        self.filters = SampleFilters()
        self.page: SamplePage | None = None
        self._rows: dict[int, SampleRow] = {}
        self._choices: FilterChoices | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="sample-filters"):
            yield Select([], prompt="all datasets", id="filter-dataset")
            yield Select([], prompt="all modalities", id="filter-modality")
            yield Select([], prompt="all splits", id="filter-split")
            yield Input(placeholder="search prompt, answer or id  ( / )", id="sample-search")
        with Horizontal(id="samples-body"):
            with Vertical(id="samples-list"):
                yield DataTable(id="samples-table", cursor_type="row", zebra_stripes=True)
                yield Static("loading…", id="samples-page-label")
            with VerticalScroll(id="sample-detail-scroll"):
                yield SampleDetailPane(id="sample-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#samples-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        table.focus()

    def on_screen_resume(self) -> None:
        # Jobs and the CLI change the store while this screen is away; read it again on return.
        self.load(with_choices=True)

    # ------------------------------------------------------------------ loading

    def load(self, *, offset: int | None = None, with_choices: bool = False) -> None:
        current = self.page.offset if self.page else 0
        self._load_page(self.engine, self.filters, current if offset is None else offset, with_choices)

    @work(thread=True, exclusive=True, exit_on_error=False, group="samples-load")
    def _load_page(self, engine: Engine, filters: SampleFilters, offset: int, with_choices: bool) -> None:
        page = load_page(engine, filters, offset)
        choices = load_filter_choices(engine) if with_choices else None
        if not get_current_worker().is_cancelled:
            self.post_message(self.PageLoaded(page, choices))

    @work(thread=True, exit_on_error=False, group="samples-write")
    def _store_included(self, engine: Engine, sample_id: int, included: bool) -> None:
        stored = set_included(engine, sample_id, included)
        self.post_message(self.IncludedStored(sample_id, stored))

    @on(PageLoaded)
    def _page_loaded(self, message: PageLoaded) -> None:
        if message.choices is not None:
            self._apply_choices(message.choices)
            filters = self._filters_from_widgets()
            if filters != self.filters:  # a chosen dataset or split is gone from the store
                self.filters = filters
                self.load(offset=0)
                return
        if message.page.filters != self.filters:
            return  # the filters changed while this page was read; a newer load is under way
        self._show_page(message.page)

    def _apply_choices(self, choices: FilterChoices) -> None:
        if choices == self._choices:
            return
        self._choices = choices
        wanted = {
            "#filter-dataset": [(Text(name), dataset_id) for dataset_id, name in choices.datasets],
            "#filter-modality": [(m, m) for m in choices.modalities],
            "#filter-split": [(s, s) for s in choices.splits],
        }
        # Setting options resets a Select; keep the user's choice when it still exists.
        with self.prevent(Select.Changed):
            for selector, options in wanted.items():
                select = self.query_one(selector, Select)
                kept = select.value
                select.set_options(options)
                if kept in {value for _, value in options}:
                    select.value = kept

    def _show_page(self, page: SamplePage) -> None:
        table = self.query_one("#samples-table", DataTable)
        highlighted = self.highlighted
        same_page = self.page is not None and self.page.offset == page.offset
        self.page = page
        self._rows = {row.id: row for row in page.rows}
        table.clear()
        for row in page.rows:
            table.add_row(str(row.id), row.dataset, row.modality, row.split,
                          included_mark(row.included), row.preview, key=str(row.id))
        if same_page and highlighted is not None and highlighted.id in self._rows:
            table.move_cursor(row=table.get_row_index(str(highlighted.id)), scroll=True)
        self.query_one("#samples-page-label", Static).update(page.label)
        self._show_detail()

    def _show_detail(self) -> None:
        empty = NO_MATCH if self.filters.active else NO_SAMPLES
        self.query_one("#sample-detail", SampleDetailPane).show(self.highlighted, empty=empty)

    @property
    def highlighted(self) -> SampleRow | None:
        table = self.query_one("#samples-table", DataTable)
        if not self._rows or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._rows.get(int(key)) if key is not None else None

    # ------------------------------------------------------------------ events

    @on(DataTable.RowHighlighted, "#samples-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    def _filters_from_widgets(self) -> SampleFilters:
        return SampleFilters(
            dataset_id=self.query_one("#filter-dataset", Select).selection,
            modality=self.query_one("#filter-modality", Select).selection,
            split=self.query_one("#filter-split", Select).selection,
            search=self.query_one("#sample-search", Input).value,
        )

    @on(Select.Changed)
    @on(Input.Changed, "#sample-search")
    def _filters_changed(self) -> None:
        filters = self._filters_from_widgets()
        if filters != self.filters:
            self.filters = filters
            self.load(offset=0)

    @on(Input.Submitted, "#sample-search")
    def _search_submitted(self) -> None:
        self.action_focus_table()

    @on(IncludedStored)
    def _included_stored(self, message: IncludedStored) -> None:
        row = self._rows.get(message.sample_id)
        if row is None:
            return  # the page moved on; the next load shows the stored value
        self._rows[row.id] = replace(row, included=message.included)
        table = self.query_one("#samples-table", DataTable)
        table.update_cell(str(row.id), "included", included_mark(message.included))
        self._show_detail()

    # ------------------------------------------------------------------ actions

    def action_page(self, delta: int) -> None:
        page = self.page
        if page is None or (delta > 0 and not page.has_next) or (delta < 0 and not page.has_prev):
            self.app.bell()
            return
        self.load(offset=max(0, page.offset + delta * PAGE_SIZE))

    def action_toggle_included(self) -> None:
        row = self.highlighted
        if row is None:
            self.app.bell()
            return
        self._store_included(self.engine, row.id, not row.included)

    def action_focus_search(self) -> None:
        self.query_one("#sample-search", Input).focus()

    def action_focus_filters(self) -> None:
        self.query_one("#filter-dataset", Select).focus()

    def action_focus_table(self) -> None:
        self.query_one("#samples-table", DataTable).focus()

    def action_reload(self) -> None:
        self.load(with_choices=True)
