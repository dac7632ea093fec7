"""Offline recipe metrics: ingredients through ingredient_slicer, measurements, step order."""

from __future__ import annotations

import pytest

from engine.evaluation.offline_judge import score_recipe
from engine.evaluation.metrics import (
    kendall_tau,
    match_ingredients,
    parse_ingredient,
    read_ingredients,
    recipe_metrics,
)
from engine.evaluation.recipe import format_recipe

INGREDIENTS = ["2 cups diced tomatoes", "1 tbsp olive oil", "3 cloves garlic, minced",
               "1/2 tsp salt"]
STEPS = ["Heat the olive oil in a pot.", "Fry the garlic until golden.",
         "Add the tomatoes and simmer for ten minutes.", "Season with salt and blend smooth."]
SOUP = format_recipe("Tomato Soup", INGREDIENTS, STEPS)


def test_ingredient_lines_parse_into_quantity_unit_and_food():
    garlic = parse_ingredient("3 cloves garlic, minced")
    assert (garlic.quantity, garlic.unit, garlic.food) == (3.0, "clove", "garlic")
    salt = parse_ingredient("1/2 tsp salt")
    assert (salt.quantity, salt.unit, salt.food) == (0.5, "teaspoon", "salt")
    assert parse_ingredient("2 large eggs").food == "eggs"
    flour = parse_ingredient("some flour")
    assert flour.quantity is None and flour.food == "flour"
    assert parse_ingredient("!!!").food == ""


def test_a_recipe_against_itself_is_perfect():
    m = recipe_metrics(SOUP, SOUP)
    assert (m.ingredient_precision, m.ingredient_recall, m.ingredient_f1) == (1.0, 1.0, 1.0)
    assert m.measurement_rate == 1.0 and m.matched_steps == 4 and m.kendall_tau == 1.0
    assert (m.ingredients, m.steps, m.reference_ingredients, m.reference_steps) == (4, 4, 4, 4)
    assert m.words == len(SOUP.split())


def test_matching_names_missing_and_extra_ingredients():
    generated = ["1 tomato", "olive oil", "a pinch of pepper"]
    match = match_ingredients(generated, INGREDIENTS)
    assert match.pairs == [(0, 0), (1, 1)]  # tomatoes ↔ tomato (plural folded), olive oil
    assert match.missing == [2, 3] and match.extra == [2]
    m = recipe_metrics(format_recipe("Soup", generated, STEPS), SOUP)
    assert m.ingredient_precision == pytest.approx(2 / 3) and m.ingredient_recall == 0.5
    assert m.ingredient_f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # "1 tomato" and "a pinch of pepper" carry a quantity, "olive oil" does not.
    assert m.measurement_rate == pytest.approx(2 / 3)


def test_measurement_rate_is_the_papers_point():
    measured = format_recipe("Bread", ["1 cup flour", "2 tsp yeast"], ["Mix."])
    vague = format_recipe("Bread", ["some flour", "yeast"], ["Mix."])
    assert recipe_metrics(measured, measured).measurement_rate == 1.0
    assert recipe_metrics(vague, measured).measurement_rate == 0.0
    assert recipe_metrics(vague, measured).ingredient_f1 == 1.0


def test_kendall_tau_on_known_permutations():
    # [0,1,2,3] against [1,0,3,2]: of the 6 pairs, (0,1) and (2,3) are swapped, 4 agree:
    # (4 - 2) / 6 = 1/3.
    assert kendall_tau([0, 1, 2, 3], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([0, 1, 2, 3], [3, 2, 1, 0]) == -1.0
    # With a tie, tau-b: C = 2, D = 0, one pair tied in the second ranking:
    # 2 / sqrt((2 + 0 + 0) · (2 + 0 + 1)) = 2 / sqrt(6) = 0.8165.
    assert kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(0.816497, abs=1e-6)
    assert kendall_tau([1], [1]) is None and kendall_tau([1, 2], [5, 5]) is None
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1])


def test_step_order_agreement_over_matched_steps():
    swapped = format_recipe("Tomato Soup", INGREDIENTS, [STEPS[1], STEPS[0], STEPS[3], STEPS[2]])
    assert recipe_metrics(swapped, SOUP).kendall_tau == pytest.approx(1 / 3)
    backwards = format_recipe("Tomato Soup", INGREDIENTS, STEPS[::-1])
    assert recipe_metrics(backwards, SOUP).kendall_tau == -1.0
    # An unmatched step in between does not count against the order.
    padded = format_recipe("Tomato Soup", INGREDIENTS,
                           [STEPS[0], "Admire the view outside.", STEPS[1]])
    m = recipe_metrics(padded, SOUP)
    assert m.matched_steps == 2 and m.kendall_tau == 1.0


def test_junk_has_undefined_metrics_not_zeros():
    m = recipe_metrics("I cannot see a recipe here.", SOUP)
    assert m.ingredient_precision is None and m.measurement_rate is None
    assert m.ingredient_recall == 0.0 and m.ingredient_f1 == 0.0 and m.kendall_tau is None
    empty_reference = recipe_metrics(SOUP, "no recipe")
    assert empty_reference.ingredient_recall is None and empty_reference.ingredient_f1 is None
    assert "ingredient_match" not in m.as_dict()


def test_agrees_with_the_offline_judge_on_a_partial_recipe():
    half = format_recipe("Tomato Soup", INGREDIENTS[:2], STEPS[:2])
    judged, measured = score_recipe(half, SOUP), recipe_metrics(half, SOUP)
    assert measured.ingredient_precision == judged.ingredient_precision == 1.0
    assert measured.ingredient_recall == judged.ingredient_recall == 0.5
    assert measured.measurement_rate == judged.measurement_rate == 1.0


def test_the_offline_judge_reads_ingredients_as_the_metrics_do():
    # The same foods written differently: a plural, and a counted unit after its food.
    reference = format_recipe("Tomato Soup", ["2 cups diced tomatoes", "3 cloves garlic, minced",
                                              "1 tbsp olive oil"], STEPS[:2])
    generated = format_recipe("Tomato Soup", ["1 tomato", "2 garlic cloves, crushed",
                                              "1 tbsp olive oil"], STEPS[:2])
    judged, measured = score_recipe(generated, reference), recipe_metrics(generated, reference)
    assert measured.ingredient_f1 == 1.0
    assert judged.ingredient_f1 == measured.ingredient_f1
    assert (judged.ingredient_precision, judged.ingredient_recall) == (1.0, 1.0)


def test_a_counted_unit_is_dropped_unless_it_is_the_food():
    assert parse_ingredient("2 garlic cloves, crushed").food_words == {"garlic"}
    assert parse_ingredient("3 green onions, sliced").food_words == {"green", "onion"}
    assert parse_ingredient("1/2 red onion").food == "red onion"
    # Plurals and word order do not matter.
    assert parse_ingredient("egg noodles").food_words == parse_ingredient("noodles, eggs").food_words


def test_read_ingredients_names_the_lines_of_each_text():
    reference = "Dish: Soup\nIngredients: 4 tomatoes\n- 3 cloves garlic\n- 1 tbsp olive oil\nSteps:\n1. Cook."
    generated = "Here you go!\n\n**Ingredients:**\n* tomato\n* 1 cup rice\n\nSteps:\n1. Cook."
    lines = read_ingredients(generated, reference)
    assert [(ref.line, ref.text, gen.line, gen.text) for ref, gen in lines.matched] == [
        (1, "4 tomatoes", 3, "tomato")]
    assert [(m.line, m.text) for m in lines.missing] == [(2, "3 cloves garlic"),
                                                         (3, "1 tbsp olive oil")]
    assert [(e.line, e.text) for e in lines.extra] == [(4, "1 cup rice")]
    assert (lines.precision, lines.recall) == (0.5, 1 / 3)
    m = recipe_metrics(generated, reference)
    assert (m.ingredient_precision, m.ingredient_recall) == (lines.precision, lines.recall)


def test_the_offline_judge_records_the_lines_it_scored_under_a_new_version():
    from engine.evaluation import offline_judge
    from engine.evaluation.report import stage_scores

    assert offline_judge.PROMPT_VERSION != "offline-v1"  # v1 read foods with its own regex
    half = format_recipe("Tomato Soup", INGREDIENTS[:2] + ["1 cup rice"], STEPS[:2])
    details = score_recipe(half, SOUP).details()
    assert details["ingredient_lines"] == read_ingredients(half, SOUP).as_dict()
    assert [pair["reference"] for pair in details["ingredient_lines"]["matched"]] == [
        [2, INGREDIENTS[0]], [3, INGREDIENTS[1]]]
    assert details["ingredient_lines"]["extra"] == [[4, "1 cup rice"]]
    # Nothing in the details reads as a two-stage judge's stage score.
    assert stage_scores(details) == {}
