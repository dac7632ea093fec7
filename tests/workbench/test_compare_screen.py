"""The Compare screen: reference beside the picked variant's generation, marks and judgments."""

from __future__ import annotations

from textual.widgets import OptionList, Select

from db import queries

from .conftest import running, settle


def _panes(app) -> tuple[str, str]:
    screen = app.screen
    return str(screen.query_one("#reference").content), str(screen.query_one("#generation").content)


async def test_reference_and_generation_follow_the_picked_sample_and_variant(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert screen.query_one("#compare-samples", OptionList).option_count == 10
        assert screen.query_one("#compare-variant", Select).selection is not None

        reference, generation = _panes(app)
        assert "Dish: Tomato omelette 0" in reference
        assert "Generation · tuned" in generation and "- 2 tbsp olive oil" in generation
        assert "✓ - 2 eggs" in reference and "✓ - 1 tbsp olive oil" in reference
        assert "✗ - pinch of salt" in reference
        assert "3/4 reference ingredients" in reference
        assert "frame times: 0.0s, 1.1s, 2.2s" in generation
        assert "offline · offline · v1   score 4   yes" in generation
        assert "gpt-3.5-turbo · paper · p1   score 4   yes" in generation

        await pilot.press("down")  # eval-01
        await settle(pilot)
        reference, generation = _panes(app)
        assert "Dish: Tomato omelette 1" in reference
        assert "offline · offline · v1   score 4.5   yes" in generation

        await pilot.press("v")  # the base variant
        await settle(pilot)
        reference, generation = _panes(app)
        assert "Generation · base" in generation and "Dish: Soup" in generation
        assert "✗ - 2 eggs" in reference and "✓ - pinch of salt" in reference
        assert "offline · offline · v1   score 2   no" in generation
        assert "gpt-3.5-turbo" not in generation


async def test_a_variant_without_generations_says_what_to_run(demo_store):
    with demo_store.session() as session:
        queries.create_variant(session, name="untried", base_model="/models/tiny")
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("v", "v")
        await settle(pilot)
        reference, generation = _panes(app)
        assert "Generation · untried" in generation
        assert "No generations yet" in generation
        assert "ddft generate --variant untried --eval-set kitchen-eval" in generation
        assert "Dish: Tomato omelette 0" in reference and "✓" not in reference
