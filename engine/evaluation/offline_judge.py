"""A deterministic offline judge: scores a generated recipe against its reference from 1 to 5."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.evaluation.recipe import content_words, has_measurement, ingredient_food, parse_recipe

JUDGE_NAME = "offline"
PROTOCOL = "offline"
PROMPT_VERSION = "offline-v1"
YES_THRESHOLD = 3.5  # the paper counts a score of 3.5 and above as a match
# How much each part of the recipe weighs in the score.
WEIGHTS = {"ingredients": 0.45, "steps": 0.40, "measurements": 0.15}
# Two ingredient names match when their words overlap this much (Jaccard).
FOOD_MATCH = 0.5
# A generated step matches a reference step when this share of the reference's content words
# appears in it.
STEP_MATCH = 0.5


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

    def details(self) -> dict:
        return asdict(self)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def _match_count(reference: list[set[str]], generated: list[set[str]], threshold: float,
                 overlap) -> int:
    """Greedy one-to-one matching; returns how many reference items found a partner."""
    used: set[int] = set()
    matched = 0
    for ref in reference:
        best, best_j = 0.0, None
        for j, gen in enumerate(generated):
            if j in used:
                continue
            value = overlap(ref, gen)
            if value > best:
                best, best_j = value, j
        if best_j is not None and best >= threshold:
            used.add(best_j)
            matched += 1
    return matched


def score_recipe(generated: str, reference: str) -> OfflineScore:
    """Score `generated` against `reference`: ingredient overlap (by food name), step agreement
    (by content words) and the share of generated ingredients that carry a measurement.
    1.0 means nothing matches, 5.0 a full match; 'yes' at 3.5 and above."""
    gen, ref = parse_recipe(generated), parse_recipe(reference)
    ref_foods = [set(ingredient_food(i).split()) for i in ref.ingredients]
    gen_foods = [set(ingredient_food(i).split()) for i in gen.ingredients]
    ref_foods = [f for f in ref_foods if f]
    gen_foods = [f for f in gen_foods if f]
    matched = _match_count(ref_foods, gen_foods, FOOD_MATCH, _jaccard)
    ing_recall = matched / len(ref_foods) if ref_foods else 0.0
    ing_precision = matched / len(gen_foods) if gen_foods else 0.0

    ref_steps = [content_words(s) for s in ref.steps]
    gen_steps = [content_words(s) for s in gen.steps]
    covered = lambda r, g: len(r & g) / len(r) if r else 0.0  # noqa: E731
    step_matched = _match_count(ref_steps, gen_steps, STEP_MATCH, covered)
    step_recall = step_matched / len(ref_steps) if ref_steps else 0.0
    step_precision = step_matched / len(gen_steps) if gen_steps else 0.0

    measured = sum(1 for i in gen.ingredients if has_measurement(i))
    measurement_rate = measured / len(gen.ingredients) if gen.ingredients else 0.0

    ing_f1, step_f1 = _f1(ing_precision, ing_recall), _f1(step_precision, step_recall)
    quality = (
        WEIGHTS["ingredients"] * ing_f1
        + WEIGHTS["steps"] * step_f1
        + WEIGHTS["measurements"] * measurement_rate * ing_f1
    )
    score = round(1.0 + 4.0 * quality, 2)
    dish_match = bool(gen.dish and ref.dish and gen.dish.strip().lower() == ref.dish.strip().lower())
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
    )
