"""The Samples screen: paging, filters, search, the detail pane, the include toggle, marks and bulk changes."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Select

from db import queries
from workbench.dialogs.confirm import ConfirmDialog
from workbench.widgets.sample_detail import SampleDetailPane

from .conftest import FAILED_REASON, STRIP_REST, STRIP_TOP, WARN_REASON, running, settle


def _ids(table: DataTable) -> list[int]:
    return [int(str(cell)) for cell in table.get_column("id")]


def _label(app) -> str:
    return str(app.screen.query_one("#samples-page-label").content)


def _detail(app) -> str:
    return str(app.screen.query_one("#sample-detail", SampleDetailPane).content)


def _count(app) -> str:
    return str(app.screen.query_one("#samples-count").content)


def _column(table: DataTable, key: str) -> list[str]:
    return [str(cell) for cell in table.get_column(key)]


def _choose(select: Select, label: str) -> None:
    select.value = next(value for prompt, value in select._options if str(prompt) == label)


async def test_pages_of_fifty_move_with_n_and_p(demo_store):
    async with running(demo_store.url) as (app, pilot):
        table = app.screen.query_one("#samples-table", DataTable)
        assert table.row_count == 50
        assert _label(app) == "rows 1–50 of 120 · page 1/3"
        first = _ids(table)
        assert first == sorted(first) and len(set(first)) == 50

        await pilot.press("n")
        await settle(pilot)
        assert _label(app) == "rows 51–100 of 120 · page 2/3"
        assert not set(_ids(table)) & set(first)

        await pilot.press("n")
        await settle(pilot)
        assert table.row_count == 20
        assert _label(app) == "rows 101–120 of 120 · page 3/3"

        await pilot.press("n")  # past the end: stays on the last page
        await settle(pilot)
        assert _label(app) == "rows 101–120 of 120 · page 3/3"

        await pilot.press("p", "p")
        await settle(pilot)
        assert _ids(table) == first


async def test_filters_and_search_change_the_rows(demo_store):
    async with running(demo_store.url) as (app, pilot):
        screen = app.screen
        table = screen.query_one("#samples-table", DataTable)

        screen.query_one("#filter-modality", Select).value = "video"
        await settle(pilot)
        assert _label(app) == "rows 1–50 of 50 · page 1/1"
        assert {str(c) for c in table.get_column("modality")} == {"video"}

        with_eval = screen.query_one("#filter-dataset", Select)
        eval_id = next(value for prompt, value in with_eval._options if str(prompt) == "kitchen-eval")
        with_eval.value = eval_id
        await settle(pilot)
        assert table.row_count == 10
        assert {str(c) for c in table.get_column("split")} == {"test"}

        with_eval.clear()
        screen.query_one("#filter-modality", Select).clear()
        screen.query_one("#filter-split", Select).value = "val"
        await settle(pilot)
        assert table.row_count == 4  # img-000, -010, -020, -030
        screen.query_one("#filter-split", Select).clear()
        await settle(pilot)
        assert _label(app).endswith("of 120 · page 1/3")

        # Typed keys go to the search box, not to the screen switcher or the pager.
        await pilot.press("slash", *"vid-03", "enter")
        await settle(pilot)
        assert screen.query_one("#sample-search", Input).value == "vid-03"
        assert type(app.screen).__name__ == "SamplesScreen"
        assert table.has_focus
        assert _label(app) == "rows 1–10 of 10 · page 1/1"  # vid-030 … vid-039

        screen.query_one("#sample-search", Input).value = "no such sample anywhere"
        await settle(pilot)
        assert table.row_count == 0
        assert "No samples match" in _detail(app)


async def test_detail_shows_conversation_frames_and_steps(demo_store):
    async with running(demo_store.url) as (app, pilot):
        assert "<image>\nWhat is the dish in this image?" in _detail(app)
        assert "media: /data/kitchen/images/img-000.png" in _detail(app)

        select = app.screen.query_one("#filter-dataset", Select)
        select.value = next(v for p, v in select._options if str(p) == "kitchen-eval")
        await settle(pilot)
        detail = _detail(app)
        assert "<video>\nCan you give me a recipe" in detail
        assert "Ingredients:\n- 2 eggs" in detail
        assert "frame times: 0.0s, 1.1s, 2.2s, 3.3s, 4.4s, 5.5s, 6.6s, 7.7s" in detail
        assert "steps (3)" in detail and "fry the tomato" in detail

        select.value = next(v for p, v in select._options if str(p) == "kitchen-videos")
        await settle(pilot)
        assert "frame times: 0.0s, 1.5s" in _detail(app)  # vid-000 was probed
        await pilot.press("down")
        await pilot.pause()
        assert "vid-001" in _detail(app) and "frame times: not probed" in _detail(app)


async def test_include_toggle_writes_to_the_store_and_updates_the_row(demo_store):
    async with running(demo_store.url) as (app, pilot):
        table = app.screen.query_one("#samples-table", DataTable)
        await pilot.press("down", "down")
        await pilot.pause()
        sample_id = _ids(table)[2]

        await pilot.press("x")
        await settle(pilot)
        with demo_store.session() as session:
            assert queries.get_sample(session, sample_id=sample_id).included is False
        assert str(table.get_cell(str(sample_id), "included")) == "✗"
        assert "excluded ✗" in _detail(app)
        assert table.cursor_row == 2

        await pilot.press("space")
        await settle(pilot)
        with demo_store.session() as session:
            assert queries.get_sample(session, sample_id=sample_id).included is True
            assert queries.count_samples(session, included=False) == 0
        assert str(table.get_cell(str(sample_id), "included")) == "✓"


async def test_check_and_included_filters_change_the_rows_and_the_count(demo_store):
    with demo_store.session() as session:
        for external_id in ("img-005", "q-000"):
            sample = next(s for s in queries.list_samples(session, search=external_id))
            queries.set_sample_included(session, sample_id=sample.id, included=False)
    async with running(demo_store.url) as (app, pilot):
        screen = app.screen
        table = screen.query_one("#samples-table", DataTable)
        assert _count(app) == "120 samples"
        assert _column(table, "check")[:5] == ["·", "✗", "!", "✓", "·"]  # img-000 … img-004
        assert table.get_cell_at((1, 5)).style == "bold red"

        screen.query_one("#filter-check", Select).value = "failed"
        await settle(pilot)
        assert table.row_count == 1 and _count(app) == "1 match"
        assert FAILED_REASON in _detail(app)
        screen.query_one("#filter-check", Select).value = "ok"
        await settle(pilot)
        assert _column(table, "check") == ["✓"] * 3 and _count(app) == "3 matches"  # img-003, vid-002, vid-004

        screen.query_one("#filter-check", Select).clear()
        screen.query_one("#filter-included", Select).value = "excluded"
        await settle(pilot)
        assert _column(table, "included") == ["✗", "✗"] and _count(app) == "2 matches"
        screen.query_one("#filter-included", Select).value = "included"
        await settle(pilot)
        assert _count(app) == "118 matches" and set(_column(table, "included")) == {"✓"}


async def test_marked_rows_on_several_pages_are_excluded_at_once(demo_store):
    async with running(demo_store.url) as (app, pilot):
        table = app.screen.query_one("#samples-table", DataTable)
        first_page = _ids(table)
        await pilot.press("m", "down", "m")  # m moves down after marking
        assert _column(table, "mark")[:4] == ["●", "", "●", ""] and table.cursor_row == 3
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("m")
        second_page = _ids(table)
        marked = {first_page[0], first_page[2], second_page[0]}
        assert "3 marked" in _label(app)

        await pilot.press("e")  # marks need no confirmation
        await settle(pilot)
        assert type(app.screen).__name__ == "SamplesScreen"
        with demo_store.session() as session:
            assert {s.id for s in queries.list_samples(session, included=False, limit=None)} == marked
        assert str(table.get_cell(str(second_page[0]), "included")) == "✗"
        assert set(_column(table, "mark")) == {""} and "marked" not in _label(app)

        await pilot.press("p")
        await settle(pilot)
        assert _column(table, "included")[:3] == ["✗", "✓", "✗"]
        await pilot.press("m", "i")
        await settle(pilot)
        with demo_store.session() as session:
            assert queries.get_sample(session, sample_id=first_page[0]).included is True
            assert queries.count_samples(session, included=False) == 2


async def test_exclude_with_nothing_marked_asks_then_excludes_the_whole_filter(demo_store):
    async with running(demo_store.url) as (app, pilot):
        screen = app.screen
        table = screen.query_one("#samples-table", DataTable)
        # 40 image prompts, 40 video and 10 eval answers mention a dish: two pages.
        screen.query_one("#sample-search", Input).value = "dish"
        await settle(pilot)
        assert _count(app) == "90 matches" and table.row_count == 50

        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert str(app.screen.query_one("#confirm-question").content).startswith("Exclude 90 samples?")
        await pilot.press("n")
        await settle(pilot)
        with demo_store.session() as session:
            assert queries.count_samples(session, included=False) == 0

        await pilot.press("e")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        with demo_store.session() as session:
            assert queries.count_samples(session, included=False) == 90
            assert queries.count_samples(session, search="dish", included=True) == 0
        assert set(_column(table, "included")) == {"✗"}


async def test_detail_shows_the_check_and_draws_the_frame_strip(demo_store):
    async with running(demo_store.url) as (app, pilot):
        pane = app.screen.query_one("#sample-detail", SampleDetailPane)
        assert "not checked — run `ddft data check`" in _detail(app)  # img-000
        await pilot.press("down")
        await pilot.pause()
        assert f"check: failed\n  • {FAILED_REASON}" in _detail(app)
        text = pane.content.as_text()
        assert any(text.plain[span.start:span.end] == FAILED_REASON and span.style == "red"
                   for span in text.spans)
        await pilot.press("down")
        await pilot.pause()
        assert f"check: warn\n  • {WARN_REASON}" in _detail(app)

        _choose(app.screen.query_one("#filter-dataset", Select), "kitchen-videos")
        await settle(pilot)
        await pilot.press("down", "down")  # vid-002, whose strip the check saved
        await settle(pilot)
        detail = _detail(app)
        assert "check: ok" in detail
        assert "duration 12.0s · 288 frames · 24 fps · 2,056 tokens" in detail
        assert "frame times:" not in detail
        lines = detail.split("sampled frames\n")[1].splitlines()
        # 4 frames 12 cells wide fit on a line of the pane: 4 rows of half blocks, then the times.
        assert lines[0] == " ".join(["▀" * 12] * 4)
        assert lines[4].split() == ["0.0s", "1.5s", "3.0s", "4.5s"]
        assert lines[9].split() == ["6.0s", "7.5s", "9.0s", "10.5s"]
        text = pane.content.as_text()
        top_row = {(tuple(s.style.color.triplet), tuple(s.style.bgcolor.triplet))
                   for s in text.spans if text.plain[s.start:s.end] == "▀"}
        assert {(top, STRIP_REST) for top in STRIP_TOP} | {(STRIP_REST, STRIP_REST)} == top_row

        await pilot.press("down", "down")  # vid-004: its strip file is gone
        await settle(pilot)
        detail = _detail(app)
        assert "frame times: 0.0s, 1.5s" in detail and "gone.png: no such file" in detail
        assert "▀" not in detail


async def _footer_keys(pilot) -> dict[str, bool]:
    """Footer key → whether it is drawn whole inside the screen, once the footer is laid out
    (it is composed again whenever the focus changes)."""
    from textual.widgets._footer import FooterKey

    app = pilot.app
    for _ in range(50):
        keys = [key for key in app.screen.query(FooterKey) if "-command-palette" not in key.classes]
        if keys and all(key.region.width > 0 or key.region.x > 0 for key in keys):
            break
        await pilot.pause()
    width = app.size.width
    return {key.key: key.region.width > 0 and key.region.right <= width - 12  # the palette key
            for key in keys}


async def test_help_and_quit_lead_the_footer_at_every_width(demo_store):
    async with running(demo_store.url) as (app, pilot):  # 160 columns
        keys = await _footer_keys(pilot)
        assert list(keys)[:2] == ["question_mark", "q"]
        assert all(keys.values()), keys  # at 160 every key shows, the screens' 1-5 too
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        keys = await _footer_keys(pilot)
        assert list(keys)[:2] == ["question_mark", "q"]
        assert keys["question_mark"] and keys["q"] and keys["x"]


async def test_at_80_by_24_the_columns_that_matter_stay_and_space_shows_its_change(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        await pilot.pause()
        table = app.screen.query_one("#samples-table", DataTable)
        keys = [column.key.value for column in table.ordered_columns]
        # Marks, status and prompt by priority; the dataset and modality are in the detail pane.
        assert keys[:2] == ["mark", "id"] and {"check", "included", "preview"} <= set(keys)
        assert "dataset" not in keys and "modality" not in keys
        assert table.virtual_size.width <= table.size.width  # nothing off to the right
        assert all(c.region.right <= 80 for c in app.screen.query("Select, Input, DataTable"))
        assert _column(table, "included")[0] == "✓"
        await pilot.press("space")
        await settle(pilot)
        assert _column(table, "included")[0] == "✗"

        await pilot.resize_terminal(160, 45)
        await settle(pilot)
        await pilot.pause()
        keys = [column.key.value for column in table.ordered_columns]
        assert keys == ["mark", "id", "dataset", "modality", "split", "check", "included",
                        "preview"]
        assert _column(table, "included")[0] == "✗"  # the stored value, drawn again


async def test_at_80_columns_the_filters_fold_into_one_line_that_f_opens(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        selects = app.screen.query_one("#filter-selects")
        summary = app.screen.query_one("#filter-summary")
        assert not selects.display or selects.region.height == 0
        assert str(summary.content) == "f filters: none"
        search = app.screen.query_one("#sample-search", Input)
        assert search.region.width >= 16 and search.region.height == 1

        await pilot.press("f")
        await settle(pilot)
        dataset = app.screen.query_one("#filter-dataset", Select)
        assert app.focused is dataset and dataset.region.height == 1
        assert dataset.region.width >= 12
        _choose(dataset, "kitchen-videos")
        _choose(app.screen.query_one("#filter-check", Select), "ok")
        await settle(pilot)
        assert str(summary.content) == "f filters: kitchen-videos, ok"
        assert _count(app) == "2 matches"

        await pilot.press("escape")  # back to the table; the filters fold away and stay set
        await settle(pilot)
        assert app.focused is app.screen.query_one("#samples-table")
        assert selects.region.height == 0
        assert _count(app) == "2 matches"


def test_columns_fit_by_priority_and_the_flexible_one_takes_what_is_left():
    from workbench.widgets.table_columns import Column, fit_columns

    columns = (Column("id", "id", 0), Column("name", "name", 3), Column("ok", "ok", 1),
               Column("text", "text", 2, min_width=10))
    widths = {"id": 4, "name": 20, "ok": 1, "text": 60}
    # id 6 + ok 4 + text (at least 12) = 22 cells; name needs 22 more: not in 40.
    assert [(c.key, w) for c, w in fit_columns(columns, widths, 40)] == [
        ("id", None), ("ok", None), ("text", 28)]
    # With name (22 cells): text gets 80 − 32 − 2 = 46 of its 60; at 100 all of it.
    assert [(c.key, w) for c, w in fit_columns(columns, widths, 80)] == [
        ("id", None), ("name", None), ("ok", None), ("text", 46)]
    assert [(c.key, w) for c, w in fit_columns(columns, widths, 100)] == [
        ("id", None), ("name", None), ("ok", None), ("text", None)]
    assert [c.key for c, _ in fit_columns(columns, widths, 3)] == ["id"]  # always one
