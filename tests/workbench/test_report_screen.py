"""The Report screen: Table 1 per variant, by hand for the fixture, and the judge choice."""

from __future__ import annotations

from textual.widgets import DataTable, Select

from .conftest import running, settle


def _table(app) -> list[list[str]]:
    table = app.screen.query_one("#table1", DataTable)
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def test_table1_matches_the_hand_computed_numbers(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        # See conftest: tuned 7 yes / 3 no, base 3 yes / 6 no / 1 unparsable.
        assert _table(app) == [
            ["tuned", "7", "3", "70.00%", "3.65", "10", "0"],
            ["base", "3", "6", "33.33%", "2.67", "10", "1"],
        ]
        provenance = str(app.screen.query_one("#report-provenance").content)
        assert "judge offline · protocol offline · prompt version v1" in provenance
        assert "eval set kitchen-eval · 10 samples judged" in provenance


async def test_choosing_another_judge_recomputes_the_table(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        judge = app.screen.query_one("#report-judge", Select)
        assert [value for _, value in judge._options[1:]] == ["gpt-3.5-turbo", "offline"]
        judge.value = "gpt-3.5-turbo"
        await settle(pilot)
        assert _table(app) == [["tuned", "3", "1", "75.00%", "3.75", "4", "0"]]
        assert app.screen.query_one("#report-protocol", Select).selection == "paper"
        provenance = str(app.screen.query_one("#report-provenance").content)
        assert "judge gpt-3.5-turbo · protocol paper · prompt version p1" in provenance
