"""The recipe parser, the offline judge and the paper's Table 1 with its statistics."""

from __future__ import annotations

import dataclasses
import json

import pytest

from db.queries import JudgedRow
from engine.evaluation.offline_judge import score_recipe
from engine.evaluation.recipe import format_recipe, has_measurement, ingredient_food, parse_recipe
from engine.evaluation.report import (
    ReportError,
    accuracy_percent,
    compare_variants,
    render_csv,
    render_json,
    render_markdown,
    report_from_rows,
    table1,
)

SOUP_STEPS = ["Heat the olive oil in a pot.", "Fry the garlic until golden.",
              "Add the tomatoes and simmer for ten minutes.", "Season with salt and blend smooth."]
SOUP = format_recipe(
    "Tomato Soup",
    ["2 cups diced tomatoes", "1 tbsp olive oil", "3 cloves garlic, minced", "1/2 tsp salt"],
    SOUP_STEPS,
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
    report = report_from_rows(_rows("v", 3, 1), eval_set="youcook2-408")
    md = render_markdown(report)
    assert "| v | 3 | 1 | 75.00% | 3.50 | 4 | 0 |" in md
    assert "Judge: gpt-3.5-turbo" in md and "Protocol: paper" in md
    assert '"max_new_tokens": 256' in md
    assert render_csv(report).splitlines()[1].startswith("v,3,1,0.7500,3.5000,4,0")
    assert json.loads(render_json(report))["rows"][0]["yes"] == 3


def _paired(variant, verdicts, scores, groups=None, judge="gpt-3.5-turbo", protocol="paper"):
    groups = groups or ["g"] * len(verdicts)
    return [JudgedRow(variant, i, groups[i], score, verdict, judge, protocol, "v1", {})
            for i, (verdict, score) in enumerate(zip(verdicts, scores))]


def test_paper_counts_get_wilson_intervals_and_a_clustered_score_interval():
    rows = (_paired("fine-tuned", ["yes"] * 191 + ["no"] * 217, [4.0] * 191 + [2.0] * 217,
                    [f"recipe{i % 89}" for i in range(408)])
            + _paired("baseline", ["yes"] * 183 + ["no"] * 225, [4.0] * 183 + [2.0] * 225,
                      [f"recipe{i % 89}" for i in range(408)]))
    report = report_from_rows(rows, eval_set="youcook2-408")
    fine, base = report.stats
    # 183/408 the same way: centre 0.4532367 / 1.0094153 = 0.449009,
    # half 1.941683 · sqrt(0.00060625 + 0.00000577) = 0.0480355 → (40.0974%, 49.7045%).
    assert (round(base.accuracy_low, 4), round(base.accuracy_high, 4)) == (40.0974, 49.7045)
    # Hand-computed in tests/engine/test_stats.py: 191/408 → (42.0242%, 51.6627%).
    assert (round(fine.accuracy_low, 4), round(fine.accuracy_high, 4)) == (42.0242, 51.6627)
    assert fine.recipes == 89 and fine.histogram == {1: 0, 2: 217, 3: 0, 4: 191, 5: 0}
    assert fine.score_low < report.rows[0].average_score < fine.score_high
    md = render_markdown(report)
    assert "| fine-tuned | 191 | 217 | 46.81% | 2.94 | 408 | 0 | 0 | [42.02%, 51.66%] |" in md
    assert "| baseline | 183 | 225 | 44.85% |" in md
    assert report_from_rows(rows).stats == report.stats  # the same seed, the same intervals


def test_variants_are_compared_pairwise_with_mcnemar_and_a_paired_bootstrap():
    # 30 samples: 10 only the tuned model gets right, 2 only the base, 8 both, 10 neither.
    tuned = ["yes"] * 10 + ["no"] * 2 + ["yes"] * 8 + ["no"] * 10
    base = ["no"] * 10 + ["yes"] * 2 + ["yes"] * 8 + ["no"] * 10
    to_score = {"yes": 4.0, "no": 2.0}
    groups = [f"r{i % 10}" for i in range(30)]
    rows = (_paired("base", base, [to_score[v] for v in base], groups)
            + _paired("tuned", tuned, [to_score[v] for v in tuned], groups))
    report = report_from_rows(rows, n_boot=2000)
    (c,) = report.comparisons
    assert (c.variant, c.baseline, c.pairs) == ("tuned", "base", 30)
    assert (c.both_yes, c.variant_only_yes, c.baseline_only_yes, c.both_no) == (8, 10, 2, 10)
    assert round(c.mcnemar_p, 4) == 0.0386  # exact: 2 · 79/4096
    assert c.accuracy_diff == pytest.approx(100 * 8 / 30)
    assert c.score_diff == pytest.approx(2 * 8 / 30)  # (10 - 2) pairs differing by 2 points
    assert 0 < c.score_diff_low < c.score_diff < c.score_diff_high and c.score_p < 0.05
    md = render_markdown(report)
    assert "| tuned | base | 30 | 8 | 10 | 2 | 10 | +26.67 pp | 0.0386 |" in md
    line = render_csv(report).splitlines()
    header, base_row, tuned_row = (r.split(",") for r in line)
    assert len(header) == len(base_row) == len(tuned_row)
    cells = dict(zip(header, tuned_row))
    assert cells["baseline"] == "base" and cells["mcnemar_p"] == "0.0385742"
    assert dict(zip(header, base_row))["baseline"] == ""
    assert json.loads(render_json(report))["comparisons"][0]["variant_only_yes"] == 10
    # Against a chosen baseline; an unknown one is named.
    chosen = report_from_rows(rows, baseline="tuned", n_boot=100).comparisons
    assert [(x.variant, x.baseline) for x in chosen] == [("base", "tuned")]
    with pytest.raises(ReportError, match="'gpt'.*base, tuned"):
        report_from_rows(rows, baseline="gpt")


def test_a_table_never_mixes_judge_settings():
    rows = _paired("a", ["yes", "no"], [4.0, 2.0]) + _paired("b", ["no"], [2.0], protocol="upstream")
    with pytest.raises(ReportError, match="one judge, protocol and prompt version.*upstream"):
        report_from_rows(rows)


def test_only_the_same_sample_under_the_same_judge_setting_is_paired():
    rows = (_paired("a", ["yes", "no"], [4.0, 2.0])
            + _paired("b", ["no", "no"], [2.0, 2.0], protocol="upstream")
            + _paired("b", ["unparsable", "yes"], [None, 4.0]))
    c = compare_variants(rows, "b", "a", n_boot=100)
    # Sample 0 is unparsable for b under "paper"; b's "upstream" judgments pair with nothing.
    assert c.pairs == 1 and c.score_pairs == 1 and c.variant_only_yes == 1
    assert c.score_diff == 2.0 and c.mcnemar_p == 1.0


def test_histogram_rounds_half_up_and_renders_as_bars():
    rows = _paired("v", ["no", "no", "yes", "yes", "yes", "unparsable"],
                   [1.0, 2.49, 3.5, 4.4, 5.0, None])
    report = report_from_rows(rows, n_boot=100)
    assert report.stats[0].histogram == {1: 1, 2: 1, 3: 0, 4: 2, 5: 1}
    md = render_markdown(report)
    assert "## Score histogram" in md
    assert "  4 │" + "█" * 30 + " 2" in md and "  3 │" + " " * 30 + " 0" in md


def test_two_stage_details_give_per_stage_scores():
    rows = _paired("v", ["yes", "no", "no"], [4.0, 3.0, 2.0], ["a", "b", "c"])
    # The two-stage GPT judge's layout (stage names at the top), a "stages" mapping, neither.
    details = {("v", 0): {"ingredients": 5.0, "steps": 3.0, "tokens_in": 812},
               ("v", 1): {"stages": {"ingredients": {"score": 2}, "steps": None}},
               ("v", 2): {"score": 2}}
    report = report_from_rows(rows, details=details, n_boot=200)
    stages = report.stats[0].stages
    assert stages["ingredients"].mean == 3.5 and stages["ingredients"].n == 2
    assert stages["steps"].mean == 3.0 and stages["steps"].n == 1
    assert "| v | ingredients | 3.50 |" in render_markdown(report)
    header, row = (r.split(",") for r in render_csv(report).splitlines())
    assert dict(zip(header, row))["stage_ingredients"] == "3.5000"

    # Once JudgedRow carries the judgment's details, they are read from the row itself.
    @dataclasses.dataclass(frozen=True)
    class RowWithDetails(JudgedRow):
        details: dict = dataclasses.field(default_factory=dict)

    with_details = [RowWithDetails(*dataclasses.astuple(r)[:9], details=details.get(("v", i), {}))
                    for i, r in enumerate(rows)]
    assert report_from_rows(with_details, n_boot=200).stats[0].stages == stages


def test_offline_metrics_are_averaged_per_variant():
    vague = format_recipe("Tomato Soup", ["tomatoes", "olive oil"], SOUP_STEPS[::-1])
    report = report_from_rows(_rows("base", 1, 1) + _rows("tuned", 2, 0), n_boot=100,
                          generations=[("base", vague, SOUP), ("base", "no recipe", SOUP),
                                       ("tuned", SOUP, SOUP)])
    base, tuned = report.offline
    assert (base.n, tuned.n) == (2, 1)
    assert base.ingredient_precision == 1.0  # defined for the recipe with ingredients only
    assert base.ingredient_recall == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert base.measurement_rate == 0.0 and base.kendall_tau == -1.0 and base.kendall_n == 1
    assert tuned.ingredient_f1 == 1.0 and tuned.measurement_rate == 1.0 and tuned.steps == 4
    md = render_markdown(report)
    assert "## Offline metrics" in md and "| tuned | 1 | 1.000 | 1.000 | 1.000 | 100.0% |" in md
    assert json.loads(render_json(report))["offline"][0]["kendall_n"] == 1


def test_ungrouped_samples_are_their_own_clusters():
    rows = _paired("v", ["yes", "no"] * 20, [4.0, 2.0] * 20, [""] * 40)
    (stats,) = report_from_rows(rows, n_boot=500).stats
    assert stats.recipes == 40 and stats.score_low < 3.0 < stats.score_high
