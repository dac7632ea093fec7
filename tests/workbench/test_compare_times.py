"""The Compare screen's time view (`f`): a variant's step times on a time bar under the annotated
steps, each step's tIoU and the timestamp report's flags; a variant with step times and no recipe
still gets a column there."""

from __future__ import annotations

import re

from db import queries
from workbench.data.compare import AnnotatedStep, timing_view
from workbench.widgets.timebar import LABEL, Span, TimeBar, TimeRow

from .conftest import running, settle, variant_column

# eval-00 is 9 s long, annotated 0–3 s, 3–6.5 s and 6.5–9 s (tests/workbench/conftest.py).
ANSWER = ("Steps:\n1. [0.0s - 3.0s] Beat the eggs.\n2. [2.0s - 5.0s] Fry the tomato.\n"
          "3. [6.0s - 12.0s] Cook the omelette.")
SEGMENTS = (AnnotatedStep(0.0, 3.0, "beat the eggs", ()),
            AnnotatedStep(3.0, 6.5, "fry the tomato", ()),
            AnnotatedStep(6.5, 9.0, "cook the omelette", ()))


def _add_times(store, variant: str, text: str = ANSWER) -> None:
    with store.session() as session:
        found = queries.get_variant(session, name=variant)
        if found is None:
            found = queries.create_variant(session, name=variant, base_model="/models/tiny")
        queries.add_generation(session, variant_id=found.id, sample_id=store.eval_sample_ids[0],
                               prompt="When?", text=text, params_key="ts", task="timestamps")




async def _bring(app, pilot, name: str) -> str:
    """The column of variant `name`, pressing v (next variant) until it is drawn."""
    for _ in range(4):
        for pane in app.screen.query(".generation"):
            if str(pane.content).startswith(f"Times · {name}"):
                return str(pane.content)
        await pilot.press("v")
        await settle(pilot)
    raise AssertionError(f"v never brought {name} in")


def test_each_step_is_checked_as_the_timestamp_report_checks_it():
    view = timing_view(7, "today", ANSWER, SEGMENTS, 9.0)
    first, second, third = view.steps
    assert first.iou == 1.0 and not (first.past_end or first.overlaps)
    # 2–5 s against 3–6.5 s: 2 s shared of 4.5 s covered.
    assert abs(second.iou - 2 / 4.5) < 1e-9 and second.overlaps and not second.out_of_order
    assert third.past_end and not third.overlaps
    assert view.mean_iou == (first.iou + second.iou + third.iou) / 3 and view.missed == 0


def test_the_bar_puts_each_span_where_its_times_are_and_marks_what_runs_past_the_end():
    bar = TimeBar([TimeRow("annotated", (Span(0, 3, 1), Span(3, 6, 2))),
                   TimeRow("generated", (Span(0, 4, 1), Span(3, 12, 2)))],
                  duration=6.0, frames=[0.0, 5.9])
    axis, annotated, generated, frames = bar.lines(LABEL + 12)
    assert axis.plain == " " * LABEL + "0s      6.0s"
    assert annotated.plain == "annotated " + "111111222222"
    # Step 1 covers 0–4 s (cells 0–7); step 2 starts at 3 s (cell 6): two cells shared; it runs
    # past the 6 s end, so the row ends in ▸.
    assert generated.plain == "generated " + "111111▒▒222▸"
    assert frames.plain == "frames    " + "▲          ▲"
    # A step of no length is a mark where it starts; one that starts past the end still ends
    # its row in ▸.
    points = TimeBar([TimeRow("generated", (Span(1.0, 1.0, 1), Span(10.0, 10.0, 2)))],
                     duration=6.0)
    assert points.lines(LABEL + 12)[1].plain == "generated " + "··1········▸"
    # The same bar at another width keeps the proportions.
    assert bar.lines(LABEL + 24)[1].plain == "annotated " + "1" * 12 + "2" * 12


async def test_f_draws_step_times_under_the_annotated_steps(demo_store):
    _add_times(demo_store, "tuned")
    _add_times(demo_store, "timed-only")  # step times, no recipe
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        names = [str(p.content).split("\n")[0] for p in app.screen.query(".generation")]
        assert not any("timed-only" in name for name in names)  # no recipe, no recipe column

        await pilot.press("f")
        await settle(pilot)
        reference = str(app.screen.query_one("#reference").content)
        assert re.search(r"annotated 1+2+3+", reference)
        assert "frames    ▲" in reference
        tuned = variant_column(app, "tuned")
        assert "3 timed steps · mean tIoU" in tuned and "1 past the end · 1 overlapping" in tuned
        assert re.search(r"generated 1+▒+2+[·3]*3+▸", tuned)
        assert "1. 0–3s Beat the eggs. · tIoU 1.00" in tuned
        assert "2. 2–5s Fry the tomato. · tIoU 0.44 · overlaps the step before" in tuned
        assert "3. 6–12s Cook the omelette." in tuned and "past the end" in tuned
        assert "Grounding" in tuned and "Not grounded yet" in tuned
        timed_only = await _bring(app, pilot, "timed-only")
        assert "No recipe generated yet" in timed_only and "1. 0–3s Beat the eggs." in timed_only
        base = await _bring(app, pilot, "base")
        assert ("No step times yet — run `ddft timestamps --variant base --eval-set kitchen-eval`"
                in base)


async def test_the_time_view_fits_80_by_24(demo_store):
    from workbench.app import build_app

    _add_times(demo_store, "tuned")
    app = build_app(url=demo_store.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        (column,) = app.screen.query(".generation")
        assert column.region.right <= 80
        # The bar is fitted to the column: no drawn line is wider than the column's content.
        lines = app.screen.query_one(".generation").render_lines(
            column.content_region.reset_offset)
        assert lines and all(line.cell_length <= column.content_region.width for line in lines)
