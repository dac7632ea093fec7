"""The Samples screen: page through samples, filter and search them, mark, include or exclude them."""

from __future__ import annotations

from collections import OrderedDict
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

from workbench.data.frame_strip import (
    DEFAULT_FRAMES,
    FrameStrip,
    FrameStripError,
    load_frame_strip,
)
from workbench.data.samples import (
    CHECK_STATUSES,
    PAGE_SIZE,
    FilterChoices,
    SampleFilters,
    SamplePage,
    SampleRow,
    load_filter_choices,
    load_page,
    set_included,
    set_included_many,
)
from workbench.dialogs.confirm import ConfirmDialog
from workbench.screens.base import WorkbenchScreen
from workbench.widgets.sample_detail import SampleDetailPane
from workbench.widgets.table_columns import SCROLLBAR, Column, cell_width, fit_columns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# In the order drawn; at a narrow width the columns of higher priority number go first, so that
# the check and included marks and the prompt stay on screen (the detail pane names the rest).
COLUMNS = (Column("mark", "m", 0), Column("id", "id", 1), Column("dataset", "dataset", 5),
           Column("modality", "modality", 7), Column("split", "split", 6),
           Column("check", "chk", 2), Column("included", "incl", 3),
           Column("preview", "prompt → answer", 4, min_width=20))
PAGE_KEYS = Binding.Group("Page", compact=True)
MARKED_KEYS = Binding.Group("Incl/Excl", compact=True)
INCLUDED_CHOICES = {"included": True, "excluded": False}
CHECK_MARKS = {"ok": ("✓", "bold green"), "warn": ("!", "bold yellow"), "failed": ("✗", "bold red")}
MARKED = Text("●", style="bold magenta")
# Decoded strips kept in memory, so moving the cursor back and forth does not read files again.
STRIP_CACHE_SIZE = 64
NO_SAMPLES = ("No samples yet.\n\nBuild and import the synthetic kitchen with `ddft data import kitchen`, "
              "or make a complete demo workspace with `ddft demo`.")
NO_MATCH = "No samples match these filters. Clear the search (/) or the filters (f)."


def included_mark(included: bool) -> Text:
    return Text("✓", style="bold green") if included else Text("✗", style="bold red")


def check_mark(status: str) -> Text:
    glyph, style = CHECK_MARKS.get(status, ("·", "dim"))
    return Text(glyph, style=style)


class SamplesScreen(WorkbenchScreen):
    """A paged table of samples with filters, a search box and the highlighted sample's detail."""

    SUB_TITLE = "Samples"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x,space", "toggle_included", "Incl ✓/✗", id="samples.toggle",
                tooltip="Include the highlighted sample in training, or exclude it"),
        Binding("m", "toggle_mark", "Mark", id="samples.mark",
                tooltip="Mark or unmark the highlighted sample (marks last across pages)"),
        Binding("i", "set_included(True)", "Include", id="samples.include", group=MARKED_KEYS,
                tooltip="Include the marked samples, or when none is marked every sample the filters select"),
        Binding("e", "set_included(False)", "Exclude", id="samples.exclude", group=MARKED_KEYS,
                tooltip="Exclude the marked samples, or when none is marked every sample the filters select"),
        Binding("slash", "focus_search", "Search", id="samples.search"),
        Binding("f", "toggle_filters", "Filters", id="samples.filters",
                tooltip="Go to the filters (on a narrow terminal: show or hide them)"),
        Binding("n", "page(1)", "Next page", id="samples.next_page", group=PAGE_KEYS,
                tooltip="Show the next 50 samples"),
        Binding("p", "page(-1)", "Prev page", id="samples.prev_page", group=PAGE_KEYS,
                tooltip="Show the previous 50 samples"),
        Binding("u", "clear_marks", "Unmark all", show=False, id="samples.unmark",
                tooltip="Clear every mark"),
        Binding("r", "reload", "Reload", show=False, id="samples.reload"),
        Binding("escape", "focus_table", "Back to table", show=False, id="samples.table"),
    ]

    @dataclass
    class PageLoaded(Message):
        page: SamplePage
        choices: FilterChoices | None

    @dataclass
    class IncludedStored(Message):
        sample_ids: frozenset[int]
        included: bool
        changed: int | None = None  # None: one row toggled, no notice needed

    @dataclass
    class StripLoaded(Message):
        path: str
        strip: FrameStrip | None
        error: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.filters = SampleFilters()
        self.page: SamplePage | None = None
        self.marked: set[int] = set()
        self._rows: dict[int, SampleRow] = {}
        self._choices: FilterChoices | None = None
        self._strips: OrderedDict[str, FrameStrip | str] = OrderedDict()  # path → strip or error
        self._strip_pending: str | None = None
        self._columns: tuple[str, ...] = ()  # the keys of the columns the table has now
        self._layout: tuple[tuple[str, int | None], ...] = ()  # and their widths

    def compose(self) -> ComposeResult:
        yield Header()
        # One line at 120 columns and up; below, the search line, with the filters one key (f)
        # away on a line of their own.
        with Vertical(id="sample-filters"):
            with Horizontal(id="filter-selects"):
                yield Select([], prompt="all datasets", id="filter-dataset", compact=True)
                yield Select([], prompt="all modalities", id="filter-modality", compact=True)
                yield Select([], prompt="all splits", id="filter-split", compact=True)
                yield Select([(s, s) for s in CHECK_STATUSES], prompt="all checks",
                             id="filter-check", compact=True)
                yield Select([(k, k) for k in INCLUDED_CHOICES], prompt="incl. & excl.",
                             id="filter-included", compact=True)
            with Horizontal(id="search-row"):
                yield Input(placeholder="search words  ( / )", id="sample-search", compact=True)
                yield Static("", id="filter-summary")
                yield Static("", id="samples-count")
        with Horizontal(id="samples-body"):
            with Vertical(id="samples-list"):
                yield DataTable(id="samples-table", cursor_type="row", zebra_stripes=True)
                yield Static("loading…", id="samples-page-label")
            with VerticalScroll(id="sample-detail-scroll"):
                yield SampleDetailPane(id="sample-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#samples-table", DataTable).focus()
        self._show_filter_summary()

    def on_screen_resume(self) -> None:
        # Jobs and the CLI change the store while this screen is away; read it again on return.
        self.load(with_choices=True)

    # ------------------------------------------------------------------ loading

    def store_opened(self) -> None:
        self.load(with_choices=True)

    def load(self, *, offset: int | None = None, with_choices: bool = False) -> None:
        if not self.store_ready:
            return  # store_opened loads the first page
        current = self.page.offset if self.page else 0
        choices = None if with_choices or self._choices is None else self._choices
        self._load_page(self.db_engine, self.filters, current if offset is None else offset, choices)

    @work(thread=True, exclusive=True, exit_on_error=False, group="samples-load")
    def _load_page(self, db_engine: Engine, filters: SampleFilters, offset: int,
                   choices: FilterChoices | None) -> None:
        # Choices (datasets, splits) are read only when asked for; paging reuses the last ones.
        fresh = load_filter_choices(db_engine) if choices is None else None
        names = (fresh or choices).dataset_names  # type: ignore[union-attr]
        page = load_page(db_engine, filters, offset, dataset_names=names)
        if not get_current_worker().is_cancelled:
            self.post_message(self.PageLoaded(page, fresh))

    @work(thread=True, exit_on_error=False, group="samples-write")
    def _store_included(self, db_engine: Engine, sample_id: int, included: bool) -> None:
        stored = set_included(db_engine, sample_id, included)
        self.post_message(self.IncludedStored(frozenset((sample_id,)), stored))

    @work(thread=True, exit_on_error=False, group="samples-write")
    def _store_included_many(self, db_engine: Engine, included: bool, sample_ids: tuple[int, ...] | None,
                             filters: SampleFilters | None) -> None:
        ids, changed = set_included_many(db_engine, included, sample_ids=sample_ids, filters=filters)
        self.post_message(self.IncludedStored(ids, included, changed))

    @work(thread=True, exclusive=True, exit_on_error=False, group="samples-strip")
    def _load_strip(self, path: str, n_frames: int) -> None:
        try:
            strip, error = load_frame_strip(path, n_frames), ""
        except FrameStripError as exc:
            strip, error = None, str(exc)
        self.post_message(self.StripLoaded(path, strip, error))

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
            "#filter-split": [(Text(s), s) for s in choices.splits],
        }
        # Setting options resets a Select; keep the user's choice when it still exists.
        with self.prevent(Select.Changed):
            for selector, options in wanted.items():
                select = self.query_one(selector, Select)
                kept = select.value
                select.set_options(options)
                if kept in {value for _, value in options}:
                    select.value = kept

    def _cells(self, row: SampleRow) -> dict[str, str | Text]:
        # Names, splits and prompts are people's text: Text cells, never parsed as markup.
        return {"mark": MARKED if row.id in self.marked else "", "id": str(row.id),
                "dataset": Text(row.dataset), "modality": row.modality, "split": Text(row.split),
                "check": check_mark(row.check_status), "included": included_mark(row.included),
                "preview": Text(row.preview)}

    def _fitting_columns(self, rows: tuple[SampleRow, ...]) -> tuple[tuple[Column, int | None], ...]:
        """The columns that fit the table's width for these rows, by priority."""
        cells = [self._cells(row) for row in rows]
        widths = {c.key: cell_width(cell[c.key] for cell in cells) for c in COLUMNS}
        width = self.query_one("#samples-table", DataTable).size.width
        return fit_columns(COLUMNS, widths, (width or 80) - SCROLLBAR)

    def _show_page(self, page: SamplePage) -> None:
        table = self.query_one("#samples-table", DataTable)
        highlighted = self.highlighted
        same_page = self.page is not None and self.page.offset == page.offset
        self.page = page
        self._rows = {row.id: row for row in page.rows}
        columns = self._fitting_columns(page.rows)
        keys = tuple(c.key for c, _ in columns)
        layout = tuple((c.key, width) for c, width in columns)
        table.clear(columns=layout != self._layout)
        if layout != self._layout:
            for column, width in columns:
                table.add_column(column.label, key=column.key, width=width)
            self._columns, self._layout = keys, layout
        for row in page.rows:
            cells = self._cells(row)
            table.add_row(*(cells[key] for key in keys), key=str(row.id))
        if highlighted is not None and highlighted.id in self._rows and (
                same_page or table.row_count):
            table.move_cursor(row=table.get_row_index(str(highlighted.id)), scroll=True)
        self._show_counts()
        self._show_detail()

    def on_resize(self) -> None:
        self.call_after_refresh(self._refit_columns)

    def _refit_columns(self) -> None:
        if self.page is not None and tuple(
                (c.key, w) for c, w in self._fitting_columns(self.page.rows)) != self._layout:
            self._show_page(self.page)

    def _update_cell(self, sample_id: int, key: str, value: str | Text) -> None:
        if key in self._columns:
            self.query_one("#samples-table", DataTable).update_cell(str(sample_id), key, value)

    def _show_counts(self) -> None:
        page = self.page
        label = page.label if page else "loading…"
        if self.marked:
            label += f" · {len(self.marked):,} marked (i include, e exclude, u unmark)"
        self.query_one("#samples-page-label", Static).update(label)
        if page is not None:
            noun = "match" if page.total == 1 else "matches"
            count = f"{page.total:,} {noun}" if self.filters.active else f"{page.total:,} samples"
            self.query_one("#samples-count", Static).update(count)

    def _show_detail(self) -> None:
        pane = self.query_one("#sample-detail", SampleDetailPane)
        row = self.highlighted
        if row is None:
            pane.show(None, empty=NO_MATCH if self.filters.active else NO_SAMPLES)
            return
        strip, note = None, ""
        if row.modality == "video" and row.frame_strip:
            cached = self._strips.get(row.frame_strip)
            if cached is None:
                # Until the worker has read it, the frame times show as text.
                if self._strip_pending != row.frame_strip:
                    self._strip_pending = row.frame_strip
                    self._load_strip(row.frame_strip, len(row.frame_times or ()) or DEFAULT_FRAMES)
            elif isinstance(cached, str):
                note = f"frame strip: {cached}"
            else:
                strip = cached
                self._strips.move_to_end(row.frame_strip)
        pane.show(row, strip=strip, strip_note=note)

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
        included = self.query_one("#filter-included", Select).selection
        return SampleFilters(
            dataset_id=self.query_one("#filter-dataset", Select).selection,
            modality=self.query_one("#filter-modality", Select).selection,
            split=self.query_one("#filter-split", Select).selection,
            search=self.query_one("#sample-search", Input).value,
            check_status=self.query_one("#filter-check", Select).selection,
            included=None if included is None else INCLUDED_CHOICES[included],
        )

    @on(Select.Changed)
    @on(Input.Changed, "#sample-search")
    def _filters_changed(self) -> None:
        filters = self._filters_from_widgets()
        if filters != self.filters:
            self.filters = filters
            self.load(offset=0)
        self._show_filter_summary()

    def _show_filter_summary(self) -> None:
        """The chosen filters in one line, for a narrow terminal where they are folded away."""
        chosen = []
        for selector in ("#filter-dataset", "#filter-modality", "#filter-split", "#filter-check",
                         "#filter-included"):
            value = self.query_one(selector, Select).selection
            if value is not None and selector == "#filter-dataset":
                names = self._choices.dataset_names if self._choices else {}
                chosen.append(names.get(value, str(value)))
            elif value is not None:
                chosen.append(str(value))  # a modality, split, check status or included choice
        summary = Text("f filters: ", style="dim")
        summary.append(", ".join(chosen) if chosen else "none", style="bold" if chosen else "dim")
        self.query_one("#filter-summary", Static).update(summary)

    @on(Input.Submitted, "#sample-search")
    def _search_submitted(self) -> None:
        self.action_focus_table()

    @on(IncludedStored)
    def _included_stored(self, message: IncludedStored) -> None:
        # Rows of other pages are not shown; the next load reads their stored value.
        for sample_id in message.sample_ids & self._rows.keys():
            self._rows[sample_id] = replace(self._rows[sample_id], included=message.included)
            self._update_cell(sample_id, "included", included_mark(message.included))
        if self.page is not None:  # a redraw (a resize) draws the stored values
            self.page = replace(self.page, rows=tuple(self._rows.get(row.id, row)
                                                      for row in self.page.rows))
        if message.changed is not None:
            verb = "Included" if message.included else "Excluded"
            asked = len(message.sample_ids)
            note = f"{verb} {asked:,} samples." if message.changed == asked else (
                f"{verb} {message.changed:,} of {asked:,} samples; the others already were.")
            self.notify(note, title="Saved")
            if self.filters.included is not None:
                self.load()  # rows that no longer match the included filter leave the table
        self._show_detail()

    @on(StripLoaded)
    def _strip_loaded(self, message: StripLoaded) -> None:
        self._strips[message.path] = message.strip or message.error
        if self._strip_pending == message.path:
            self._strip_pending = None
        while len(self._strips) > STRIP_CACHE_SIZE:
            self._strips.popitem(last=False)
        row = self.highlighted
        if row is not None and row.frame_strip == message.path:
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
        self._store_included(self.db_engine, row.id, not row.included)

    def action_toggle_mark(self) -> None:
        row = self.highlighted
        if row is None:
            self.app.bell()
            return
        self.marked.symmetric_difference_update((row.id,))
        self._update_cell(row.id, "mark", MARKED if row.id in self.marked else "")
        self.query_one("#samples-table", DataTable).action_cursor_down()
        self._show_counts()

    def action_clear_marks(self) -> None:
        for sample_id in self.marked & self._rows.keys():
            self._update_cell(sample_id, "mark", "")
        self.marked.clear()
        self._show_counts()

    def action_set_included(self, included: bool) -> None:
        """Marked samples at once; with none marked, every sample the filters select, once confirmed."""
        if self.marked:
            ids = tuple(sorted(self.marked))
            self.action_clear_marks()
            self._store_included_many(self.db_engine, included, ids, None)
            return
        page = self.page
        if page is None or page.total == 0:
            self.app.bell()
            return
        filters = page.filters  # what the shown count was read with, even if a newer load is under way
        verb = "Include" if included else "Exclude"
        noun = "sample" if page.total == 1 else "samples"
        scope = "the filters select" if filters.active else "in the store"
        question = (f"{verb} {page.total:,} {noun}?\n\nNo sample is marked, so this acts on every "
                    f"sample {scope}, on all pages (mark rows with m to act on a few).")

        def answered(yes: bool | None) -> None:
            if yes:
                self._store_included_many(self.db_engine, included, None, filters)

        self.app.push_screen(ConfirmDialog(question, yes=verb), answered)

    def action_focus_search(self) -> None:
        self.query_one("#sample-search", Input).focus()

    def action_toggle_filters(self) -> None:
        """Go to the filters; on a narrow terminal show them (or, when shown, fold them away)."""
        narrow = self.has_class("-narrow")
        if narrow and self.has_class("-filters-open"):
            self.action_focus_table()
            return
        self.set_class(narrow, "-filters-open")
        self.query_one("#filter-dataset", Select).focus()

    def action_focus_table(self) -> None:
        self.remove_class("-filters-open")
        self.query_one("#samples-table", DataTable).focus()

    def action_reload(self) -> None:
        self.load(with_choices=True)
