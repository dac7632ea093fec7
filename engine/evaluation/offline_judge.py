"""A deterministic offline judge: scores a generated recipe against its reference from 1 to 5,
as a weighted sum of `engine.evaluation.metrics`' numbers (it reads nothing on its own)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.evaluation.metrics import NO_INGREDIENT_LINES, IngredientLines, recipe_metrics
from engine.evaluation.recipe import parse_recipe

JUDGE_NAME = "offline"
PROTOCOL = "offline"
# offline-v1 read foods with a regex of its own; offline-v2 scores the metrics' reading
# (ingredient_slicer, plurals and word order folded), so its judgments are new rows.
PROMPT_VERSION = "offline-v2"
YES_THRESHOLD = 3.5  # the paper counts a score of 3.5 and above as a match
# How much each part of the recipe weighs in the score.
WEIGHTS = {"ingredients": 0.45, "steps": 0.40, "measurements": 0.15}


@dataclass(frozen=True)
class OfflineScore:
    score: float
    verdict: str
    ingredient_precision: float
    ingredient_recall: float
    ingredient_f1: float
    step_precision: float
    step_recall: float
    step_f1: float
    measurement_rate: float
    dish_match: bool
    # The ingredient lines behind the three ingredient numbers, as the Compare screen marks them.
    ingredient_lines: IngredientLines = field(default=NO_INGREDIENT_LINES, repr=False,
                                              compare=False)

    def details(self) -> dict:
        """The judgment's details: every number above and the ingredient lines scored
        (`IngredientLines.as_dict`). No key is a two-stage judge's stage name."""
        numbers = {name: getattr(self, name) for name in self.__dataclass_fields__
                   if name != "ingredient_lines"}
        return {**numbers, "ingredient_lines": self.ingredient_lines.as_dict()}


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score_recipe(generated: str, reference: str) -> OfflineScore:
    """Score `generated` against `reference` from `engine.evaluation.metrics.recipe_metrics`:
    ingredient F1 (foods read by ingredient_slicer), step F1 (content-word coverage) and the
    share of generated ingredients that carry a quantity; a number the metrics leave undefined
    counts as 0. 1.0 means nothing matches, 5.0 a full match; 'yes' at 3.5 and above. Never
    raises on junk."""
    metrics = recipe_metrics(generated, reference)
    ing_precision = metrics.ingredient_precision or 0.0
    ing_recall = metrics.ingredient_recall or 0.0
    step_precision = metrics.step_precision or 0.0
    step_recall = metrics.step_recall or 0.0
    measurement_rate = metrics.measurement_rate or 0.0
    ing_f1, step_f1 = _f1(ing_precision, ing_recall), _f1(step_precision, step_recall)
    quality = (
        WEIGHTS["ingredients"] * ing_f1
        + WEIGHTS["steps"] * step_f1
        + WEIGHTS["measurements"] * measurement_rate * ing_f1
    )
    score = round(1.0 + 4.0 * quality, 2)
    gen_dish, ref_dish = parse_recipe(generated).dish, parse_recipe(reference).dish
    dish_match = bool(gen_dish and ref_dish and gen_dish.strip().lower() == ref_dish.strip().lower())
    return OfflineScore(
        score=score,
        verdict="yes" if score >= YES_THRESHOLD else "no",
        ingredient_precision=round(ing_precision, 4),
        ingredient_recall=round(ing_recall, 4),
        ingredient_f1=round(ing_f1, 4),
        step_precision=round(step_precision, 4),
        step_recall=round(step_recall, 4),
        step_f1=round(step_f1, 4),
        measurement_rate=round(measurement_rate, 4),
        dish_match=dish_match,
        ingredient_lines=metrics.ingredient_lines,
    )
