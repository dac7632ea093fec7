"""The Report screen: Table 1 per variant with intervals, the paired comparison against a chosen
baseline, by hand for the fixture, and the judge choice."""

from __future__ import annotations

from textual.widgets import DataTable, Select

from db import queries

from .conftest import running, settle


def _table(app, selector: str = "#table1") -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def test_table1_matches_the_hand_computed_numbers(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        # See conftest: tuned 7 yes / 3 no, base 3 yes / 6 no / 1 unparsable.
        # Wilson 95%, z = 1.96: (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)
        #   tuned 7/10 → 39.68%–89.22%; base 3/9 → 12.06%–64.58%.
        # Every eval sample is in the one recipe group "omelette", so the clustered bootstrap
        # always resamples the whole set: the score interval collapses onto the mean, 1 recipe.
        assert _table(app) == [
            ["tuned", "7", "3", "70.00%", "3.65", "10", "0", "0", "[39.68%, 89.22%]", "[3.65, 3.65]",
             "1"],
            ["base", "3", "6", "33.33%", "2.67", "10", "1", "0", "[12.06%, 64.58%]", "[2.67, 2.67]",
             "1"],
        ]
        provenance = str(app.screen.query_one("#report-provenance").content)
        assert "judge offline · protocol offline · prompt version v1" in provenance
        assert "eval set kitchen-eval · 10 samples judged" in provenance

        # Baseline defaults to the first variant, tuned. Pairs with yes/no from both (eval-05 is
        # unparsable for base): both yes 00, 06; base only 02 (b = 1); tuned only 01, 03, 04,
        # 07, 09 (c = 5); both no 08. Exact McNemar: 2·P(X ≤ 1 | n = 6, ½) = 2·7/64 = 0.21875.
        # Δ accuracy (1 − 5)/9 = −44.44 pp; Δ score over the 9 pairs: (24 − 33.5)/9 = −1.056
        # (one recipe group again: a point interval, and no resample reaches zero → p < 0.0001).
        assert app.screen.query_one("#report-baseline", Select).selection == "tuned"
        assert _table(app, "#comparisons") == [
            ["base", "tuned", "9", "1", "5", "-44.44 pp", "0.2188", "-1.056", "[-1.056, -1.056]",
             "<0.0001"],
        ]
        histogram = str(app.screen.query_one("#report-histogram").content)
        # tuned's scores rounded half up: 2.0 → 2; 2.5, 3.0 → 3; 3.5 ×2, 4.0 ×2 → 4; 4.5 ×2,
        # 5.0 → 5: bins 1..5 = 0, 1, 2, 4, 3, the full-width bar is bin 4's.
        assert "tuned\n  1 │" in histogram and "  4 │████████████████████████ 4\n" in histogram
        assert "base\n" in histogram


async def test_choosing_another_baseline_recomputes_the_comparison(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        app.screen.query_one("#report-baseline", Select).value = "base"
        await settle(pilot)
        # The same pairs seen from the other side: b and c swap, the p stays.
        assert _table(app, "#comparisons")[0][:7] == ["tuned", "base", "9", "5", "1", "+44.44 pp",
                                                      "0.2188"]


async def test_choosing_another_judge_recomputes_the_table(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        judge = app.screen.query_one("#report-judge", Select)
        assert [value for _, value in judge._options[1:]] == ["gpt-3.5-turbo", "offline"]
        judge.value = "gpt-3.5-turbo"
        await settle(pilot)
        assert _table(app)[0][:7] == ["tuned", "3", "1", "75.00%", "3.75", "4", "0"]
        assert _table(app, "#comparisons") == []  # one variant: nothing to compare
        assert app.screen.query_one("#report-protocol", Select).selection == "paper"
        provenance = str(app.screen.query_one("#report-provenance").content)
        assert "judge gpt-3.5-turbo · protocol paper · prompt version p1" in provenance


async def test_a_second_prompt_version_gets_its_own_table(demo_store):
    # The gpt judge's four judgments of tuned again under a new prompt version, scored 1 (no).
    with demo_store.session() as session:
        judged = queries.judged_rows(session, judge="gpt-3.5-turbo")
        tuned = {g.sample_id: g.id for g in queries.list_generations(session)
                 if g.variant_id == queries.get_variant(session, name="tuned").id}
        for row in judged:
            queries.add_judgment(session, generation_id=tuned[row.sample_id],
                                 judge="gpt-3.5-turbo", protocol="paper", prompt_version="p2",
                                 score=1.0, verdict="no", raw="{}")
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        app.screen.query_one("#report-judge", Select).value = "gpt-3.5-turbo"
        await settle(pilot)
        version = app.screen.query_one("#report-version", Select)
        assert [value for _, value in version._options[1:]] == ["p1", "p2"]
        # Four judgments under each version: a tie, broken by name; never eight in one row.
        assert version.selection == "p1"
        assert _table(app)[0][:7] == ["tuned", "3", "1", "75.00%", "3.75", "4", "0"]
        provenance = str(app.screen.query_one("#report-provenance").content)
        assert "defaults: eval set, protocol, prompt version, baseline, campaign" in provenance
        version.value = "p2"
        await settle(pilot)
        assert _table(app)[0][:7] == ["tuned", "0", "4", "0.00%", "1.00", "4", "0"]
        assert app.screen.query_one("#report-judge", Select).selection == "gpt-3.5-turbo"


async def test_at_80_by_24_the_choices_are_named_and_the_tables_keep_the_papers_numbers(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        await pilot.pause()
        screen = app.screen
        for select in screen.query("#report-bar Select"):
            label = select.parent.query_one(".report-label")
            # Each choice sits on one line beside its name, inside the screen.
            assert select.region.height == 1 and select.region.right <= 80
            assert label.region.y == select.region.y and label.region.right <= select.region.x
        names = [str(label.content) for label in screen.query(".report-label")]
        assert names == ["eval set", "judge", "protocol", "version", "baseline"]
        table = screen.query_one("#table1", DataTable)
        keys = [column.key.value for column in table.ordered_columns]
        assert keys[:5] == ["variant", "yes", "no", "accuracy", "average_score"]
        assert table.virtual_size.width <= table.size.width and table.region.right <= 80
        left_out = str(screen.query_one("#table1-left-out").content)
        assert left_out.startswith("Left out at this width: ") and "Recipes" in left_out
        comparisons = screen.query_one("#comparisons", DataTable)
        keys = [column.key.value for column in comparisons.ordered_columns]
        assert keys[:3] == ["variant", "accuracy_diff", "mcnemar_p"]
        assert comparisons.virtual_size.width <= comparisons.size.width
        assert "Baseline" in str(screen.query_one("#comparisons-left-out").content)

        await pilot.resize_terminal(160, 45)
        await settle(pilot)
        await pilot.pause()
        assert len(screen.query_one("#table1", DataTable).ordered_columns) == 11
        assert str(screen.query_one("#table1-left-out").content) == ""
