"""The recipe parser, the offline judge and the paper's Table 1."""

from __future__ import annotations

import json

from db.queries import JudgedRow
from engine.judge.offline import score_recipe
from engine.recipe import format_recipe, has_measurement, ingredient_food, parse_recipe
from engine.report import accuracy_percent, build_report, render_csv, render_json, render_markdown, table1

SOUP = format_recipe(
    "Tomato Soup",
    ["2 cups diced tomatoes", "1 tbsp olive oil", "3 cloves garlic, minced", "1/2 tsp salt"],
    ["Heat the olive oil in a pot.", "Fry the garlic until golden.",
     "Add the tomatoes and simmer for ten minutes.", "Season with salt and blend smooth."],
)


def test_parse_round_trips_the_training_format():
    parsed = parse_recipe(SOUP)
    assert parsed.dish == "Tomato Soup"
    assert parsed.ingredients[2] == "3 cloves garlic, minced"
    assert parsed.steps[-1] == "Season with salt and blend smooth."
    assert len(parsed.ingredients) == 4 and len(parsed.steps) == 4


def test_parse_tolerates_other_bullets_numbering_and_junk():
    text = "Sure! Here it is.\nINGREDIENTS\n* 1 cup rice\n• 2 eggs\nInstructions:\n1) Boil.\n2. Fry.\nNotes:\nEnjoy!"
    parsed = parse_recipe(text)
    assert parsed.dish is None
    assert parsed.ingredients == ["1 cup rice", "2 eggs"]
    assert parsed.steps == ["Boil.", "Fry."]


def test_ingredient_food_and_measurements():
    assert ingredient_food("3 cloves garlic, minced") == "garlic"
    assert ingredient_food("1/2 tsp salt") == "salt"
    assert ingredient_food("2 large eggs") == "eggs"
    assert has_measurement("1 cup flour") and has_measurement("½ tsp salt")
    assert not has_measurement("some flour") and not has_measurement("salt, to taste 2")


def test_a_perfect_recipe_scores_five_and_junk_scores_one():
    perfect = score_recipe(SOUP, SOUP)
    assert perfect.score == 5.0 and perfect.verdict == "yes" and perfect.dish_match
    junk = score_recipe("pot pot the the oil garlic", SOUP)
    assert junk.score == 1.0 and junk.verdict == "no"


def test_partial_recipes_land_in_between_and_measurements_count():
    half = format_recipe("Tomato Soup", ["2 cups diced tomatoes", "1 tbsp olive oil"],
                         ["Heat the olive oil in a pot.", "Fry the garlic until golden."])
    unmeasured = format_recipe("Tomato Soup", ["tomatoes", "olive oil"],
                               ["Heat the olive oil in a pot.", "Fry the garlic until golden."])
    a, b = score_recipe(half, SOUP), score_recipe(unmeasured, SOUP)
    assert 1.0 < b.score < a.score < 5.0
    assert a.ingredient_precision == 1.0 and a.ingredient_recall == 0.5
    assert a.measurement_rate == 1.0 and b.measurement_rate == 0.0


def _rows(variant, yes, no, unparsable=0, score_yes=4.0, score_no=2.0):
    make = lambda verdict, score: JudgedRow(variant, 0, "g", score, verdict, "gpt-3.5-turbo",  # noqa: E731
                                            "paper", "v1", {"max_new_tokens": 256})
    return ([make("yes", score_yes)] * yes + [make("no", score_no)] * no
            + [make("unparsable", None)] * unparsable)


def test_table1_reproduces_the_papers_accuracy_column():
    rows = _rows("fine-tuned", 191, 217) + _rows("baseline", 183, 225)
    fine, base = table1(rows)
    assert (fine.variant, fine.yes, fine.no) == ("fine-tuned", 191, 217)
    assert f"{fine.accuracy:.2f}%" == "46.81%"
    assert f"{base.accuracy:.2f}%" == "44.85%"


def test_unparsable_replies_are_counted_not_scored():
    (row,) = table1(_rows("v", 1, 1, unparsable=2))
    assert row.n == 4 and row.unparsable == 2
    assert row.accuracy == 50.0 and row.average_score == 3.0
    assert accuracy_percent(0, 0) is None


def test_reports_name_judge_protocol_and_decoding():
    report = build_report(_rows("v", 3, 1), eval_set="youcook2-408")
    md = render_markdown(report)
    assert "| v | 3 | 1 | 75.00% | 3.50 | 4 | 0 |" in md
    assert "Judge: gpt-3.5-turbo" in md and "Protocol: paper" in md
    assert '"max_new_tokens": 256' in md
    assert render_csv(report).splitlines()[1].startswith("v,3,1,75.0000,3.5000,4,0")
    assert json.loads(render_json(report))["rows"][0]["yes"] == 3
