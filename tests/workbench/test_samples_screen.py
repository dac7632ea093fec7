"""The Samples screen: paging, filters, search, the detail pane and the include toggle."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Select

from db import queries
from workbench.widgets.sample_detail import SampleDetailPane

from .conftest import running, settle


def _ids(table: DataTable) -> list[int]:
    return [int(str(cell)) for cell in table.get_column("id")]


def _label(app) -> str:
    return str(app.screen.query_one("#samples-page-label").content)


def _detail(app) -> str:
    return str(app.screen.query_one("#sample-detail", SampleDetailPane).content)


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
