"""A deterministic offline judge: scores a generated recipe against its reference from 1 to 5,
as a weighted sum of `engine.evaluation.metrics`' numbers (it reads nothing on its own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.evaluation.metrics import NO_INGREDIENT_LINES, IngredientLines, recipe_metrics
from engine.evaluation.recipe import parse_recipe, same_dish

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
    dish_match = same_dish(gen_dish, ref_dish)
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


@dataclass(frozen=True)
class ScorePart:
    """One part of an offline score: the number it weighs and the points it adds to 1.0."""

    name: str  # "ingredients", "steps" or "measurements"
    value: float  # ingredient F1, step F1, or measurement rate × ingredient F1
    weight: float  # WEIGHTS[name]
    precision: float | None = None  # for ingredients and steps
    recall: float | None = None
    rate: float | None = None  # for measurements: the share of ingredients with a quantity

    @property
    def points(self) -> float:
        """What this part adds to the score (the score is 1 plus the parts' points)."""
        return 4.0 * self.weight * self.value


def score_parts(details: Mapping[str, Any]) -> tuple[ScorePart, ...] | None:
    """The parts a stored offline judgment's score is made of, read from its details
    (`OfflineScore.details`): 1 + the parts' points gives its score, up to the rounding of the
    stored numbers. None when the details do not hold the numbers (a judgment stored without
    them)."""
    try:
        numbers = {name: float(details[name]) for name in (
            "ingredient_precision", "ingredient_recall", "ingredient_f1", "step_precision",
            "step_recall", "step_f1", "measurement_rate")}
    except (KeyError, TypeError, ValueError):
        return None
    return (
        ScorePart("ingredients", numbers["ingredient_f1"], WEIGHTS["ingredients"],
                  precision=numbers["ingredient_precision"], recall=numbers["ingredient_recall"]),
        ScorePart("steps", numbers["step_f1"], WEIGHTS["steps"],
                  precision=numbers["step_precision"], recall=numbers["step_recall"]),
        ScorePart("measurements", numbers["measurement_rate"] * numbers["ingredient_f1"],
                  WEIGHTS["measurements"], rate=numbers["measurement_rate"]),
    )
