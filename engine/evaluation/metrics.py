"""Offline recipe metrics: ingredient precision/recall/F1, measurement rate, step order, length.

This module is the one reading of a recipe's dish, ingredients and steps: the metrics count it,
the offline judge scores it (`engine.evaluation.offline_judge`) and the Compare screen marks it
(`read_recipe`)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, Optional, Sequence

from engine.evaluation.recipe import (
    ParsedRecipe,
    content_words,
    ingredient_food,
    parse_recipe,
    same_dish,
)

# Two ingredient lines match when the words of their foods overlap this much (Jaccard), after
# plurals are folded; word order never counts ("garlic cloves" is "cloves garlic").
FOOD_MATCH = 0.5
# A generated step matches a reference step when this share of the reference's content words
# appears in it.
STEP_MATCH = 0.5

_LETTERS = re.compile(r"[a-z]+(?:-[a-z]+)*")
# Counted units that ingredient_slicer lists among its foods (cloves the spice) but that, before
# or after another food, count a part of it: "3 cloves garlic" and "2 garlic cloves" are garlic.
_PART_UNITS = frozenset({"clove", "cloves"})


@dataclass(frozen=True)
class Ingredient:
    """One ingredient line as ingredient_slicer reads it."""

    line: str
    quantity: Optional[float]  # None when the line gives no amount ("some flour", "salt to taste")
    unit: Optional[str]  # standardised: "cup", "tablespoon", "clove"; None when there is none
    food: str  # lower-case words naming the food, without amount, unit or preparation

    @property
    def food_words(self) -> frozenset[str]:
        """The food's words with plurals folded, as a set: what matching compares."""
        return frozenset(_singular(w) for w in self.food.split())


@dataclass(frozen=True)
class IngredientMatch:
    """How generated ingredient lines pair with reference ones (one-to-one, greedy)."""

    pairs: list[tuple[int, int]]  # (reference index, generated index)
    missing: list[int]  # reference indices with no generated partner
    extra: list[int]  # generated indices with no reference partner


@dataclass(frozen=True)
class IngredientLine:
    """An ingredient as `parse_recipe` reads it, and the line of the recipe text it stands on."""

    line: int  # 0-based, as str.splitlines counts
    text: str


@dataclass(frozen=True)
class IngredientLines:
    """Which ingredient lines of a generated recipe and its reference meet: the sets the metrics
    count, the offline judge scores and the Compare screen marks."""

    matched: tuple[tuple[IngredientLine, IngredientLine], ...]  # (reference, generated) pairs
    missing: tuple[IngredientLine, ...]  # reference lines with no generated partner
    extra: tuple[IngredientLine, ...]  # generated lines with no reference partner

    @property
    def precision(self) -> Optional[float]:
        """Matched share of the generated foods; None when the generation names none."""
        named = len(self.matched) + len(self.extra)
        return len(self.matched) / named if named else None

    @property
    def recall(self) -> Optional[float]:
        """Matched share of the reference foods; None when the reference names none."""
        named = len(self.matched) + len(self.missing)
        return len(self.matched) / named if named else None

    def as_dict(self) -> dict:
        """JSON for a judgment's details: [line, text] for each line; matched and missing lines
        are the reference's, extra lines the generation's."""
        return {
            "matched": [{"reference": [ref.line, ref.text], "generated": [gen.line, gen.text]}
                        for ref, gen in self.matched],
            "missing": [[item.line, item.text] for item in self.missing],
            "extra": [[item.line, item.text] for item in self.extra],
        }


NO_INGREDIENT_LINES = IngredientLines((), (), ())
# A step stands on its line the way an ingredient does.
RecipeLine = IngredientLine


@dataclass(frozen=True)
class StepLines:
    """Which steps of a generated recipe and its reference meet (content-word coverage of at
    least STEP_MATCH, one-to-one): the pairs behind `RecipeMetrics.matched_steps` and so behind
    the offline judge's step numbers."""

    covered: tuple[tuple[RecipeLine, RecipeLine], ...]  # (reference, generated) pairs
    missed: tuple[RecipeLine, ...]  # reference steps no generated step covers
    extra: tuple[RecipeLine, ...]  # generated steps that cover no reference step


NO_STEP_LINES = StepLines((), (), ())


@dataclass(frozen=True)
class DishReading:
    """The dish each recipe names (None: none read) and whether they are the same dish, by
    `engine.evaluation.recipe.same_dish` (the offline judge's `dish_match`)."""

    reference: Optional[str]
    generated: Optional[str]
    reference_line: Optional[int]
    generated_line: Optional[int]

    @property
    def match(self) -> bool:
        return same_dish(self.generated, self.reference)


@dataclass(frozen=True)
class RecipeReading:
    """A generated recipe read against its reference, part by part, exactly as the metrics and
    the offline judge read it: the dish, the ingredient lines and the steps that meet."""

    dish: DishReading
    ingredients: IngredientLines
    steps: StepLines


@dataclass(frozen=True)
class RecipeMetrics:
    """Offline metrics of one generated recipe against its reference.

    A value that cannot be defined is None rather than 0: precision and measurement rate when
    the generation lists no ingredients, recall and F1 when the reference lists none, Kendall's
    tau when fewer than two steps match."""

    ingredient_precision: Optional[float]
    ingredient_recall: Optional[float]
    ingredient_f1: Optional[float]
    measurement_rate: Optional[float]  # share of generated ingredient lines with a quantity
    matched_steps: int
    kendall_tau: Optional[float]  # order agreement of matched steps, -1 (reversed) to 1
    words: int  # words in the whole generated text
    ingredients: int  # generated ingredient lines
    steps: int  # generated steps
    reference_ingredients: int
    reference_steps: int
    ingredient_lines: IngredientLines = field(repr=False, compare=False,
                                              default=NO_INGREDIENT_LINES)

    @property
    def step_precision(self) -> Optional[float]:
        """Matched share of the generated steps; None when the generation has none."""
        return self.matched_steps / self.steps if self.steps else None

    @property
    def step_recall(self) -> Optional[float]:
        """Matched share of the reference steps; None when the reference has none."""
        return self.matched_steps / self.reference_steps if self.reference_steps else None

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("ingredient_lines")
        return data


def _singular(word: str) -> str:
    # A crude plural fold so "tomato" meets "tomatoes"; the parser keeps foods as written.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("oes"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=65_536)
def parse_ingredient(line: str) -> Ingredient:
    """Quantity, unit and food of an ingredient line, read by ingredient_slicer.

    ingredient_slicer keeps a counted unit in the food ("3 cloves garlic" → "cloves garlic"), so
    the unit's words are dropped from the food, unless the unit is itself a food (ingredient_slicer's
    FOOD_UNITS: "3 green onions" stays "green onions") or nothing else is left ("2 eggs"). Should
    the parser fail on a line, the food falls back to `engine.evaluation.recipe.ingredient_food`
    and the quantity to None. Cached: references repeat across variants."""
    # Imported here: ingredient_slicer loads its tables on import (~0.4 s).
    from ingredient_slicer import IngredientSlicer

    try:
        parsed = IngredientSlicer(line).to_json()
    except Exception:  # noqa: BLE001 — a third-party parser on model output; never fatal
        return Ingredient(line=line, quantity=None, unit=None, food=ingredient_food(line))
    quantity = parsed.get("quantity")
    try:
        amount = float(quantity) if quantity not in (None, "") else None
    except (TypeError, ValueError):
        amount = None
    unit = parsed.get("standardized_unit") or parsed.get("unit") or None
    words = _LETTERS.findall(str(parsed.get("food") or "").lower())
    units = [str(u).lower() for u in (parsed.get("unit"), parsed.get("standardized_unit")) if u]
    unit_words = set() if any(u in _food_units() and u not in _PART_UNITS for u in units) else {
        w for u in units for w in u.split()}
    kept = [w for w in words if w not in unit_words]
    return Ingredient(line=line, quantity=amount, unit=unit, food=" ".join(kept or words))


@lru_cache(maxsize=1)
def _food_units() -> frozenset[str]:
    """Units that name a food ("tomato" in "4 tomatoes"), in every spelling ingredient_slicer knows."""
    from ingredient_slicer import FOOD_UNITS

    return frozenset(name.lower() for unit, spellings in FOOD_UNITS.items()
                     for name in (unit, *spellings))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def greedy_match(reference: Sequence, generated: Sequence, threshold: float,
                 overlap: Callable) -> list[tuple[int, int]]:
    """One-to-one matching of ingredients and of steps: each reference item in turn takes the
    unused generated item it overlaps most, when that overlap reaches `threshold`.
    Returns (reference index, generated index) pairs in reference order."""
    used: set[int] = set()
    pairs = []
    for i, ref in enumerate(reference):
        best, best_j = 0.0, None
        for j, gen in enumerate(generated):
            if j in used:
                continue
            value = overlap(ref, gen)
            if value > best:
                best, best_j = value, j
        if best_j is not None and best >= threshold:
            used.add(best_j)
            pairs.append((i, best_j))
    return pairs


def match_ingredients(generated: Sequence[str], reference: Sequence[str]) -> IngredientMatch:
    """Pair generated ingredient lines with reference ones by their foods' words (plurals
    folded, order ignored, Jaccard at least FOOD_MATCH). Lines whose food is empty take no part
    in the matching and are neither missing nor extra."""
    ref = [parse_ingredient(line).food_words for line in reference]
    gen = [parse_ingredient(line).food_words for line in generated]
    ref_idx = [i for i, f in enumerate(ref) if f]
    gen_idx = [j for j, f in enumerate(gen) if f]
    local = greedy_match([ref[i] for i in ref_idx], [gen[j] for j in gen_idx], FOOD_MATCH,
                         _jaccard)
    pairs = [(ref_idx[i], gen_idx[j]) for i, j in local]
    matched_ref, matched_gen = {i for i, _ in pairs}, {j for _, j in pairs}
    return IngredientMatch(
        pairs=pairs,
        missing=[i for i in ref_idx if i not in matched_ref],
        extra=[j for j in gen_idx if j not in matched_gen],
    )


def _lines_of(gen: ParsedRecipe, ref: ParsedRecipe) -> IngredientLines:
    match = match_ingredients(gen.ingredients, ref.ingredients)
    ref_at = [IngredientLine(n, t) for n, t in zip(ref.ingredient_lines, ref.ingredients)]
    gen_at = [IngredientLine(n, t) for n, t in zip(gen.ingredient_lines, gen.ingredients)]
    return IngredientLines(
        matched=tuple((ref_at[i], gen_at[j]) for i, j in match.pairs),
        missing=tuple(ref_at[i] for i in match.missing),
        extra=tuple(gen_at[j] for j in match.extra),
    )


def _step_pairs(gen: ParsedRecipe, ref: ParsedRecipe) -> list[tuple[int, int]]:
    return greedy_match([content_words(s) for s in ref.steps],
                        [content_words(s) for s in gen.steps], STEP_MATCH, _step_coverage)


def _steps_of(gen: ParsedRecipe, ref: ParsedRecipe) -> StepLines:
    pairs = _step_pairs(gen, ref)
    ref_at = [RecipeLine(n, t) for n, t in zip(ref.step_lines, ref.steps)]
    gen_at = [RecipeLine(n, t) for n, t in zip(gen.step_lines, gen.steps)]
    covered_ref, covered_gen = {i for i, _ in pairs}, {j for _, j in pairs}
    return StepLines(
        covered=tuple((ref_at[i], gen_at[j]) for i, j in pairs),
        missed=tuple(item for i, item in enumerate(ref_at) if i not in covered_ref),
        extra=tuple(item for j, item in enumerate(gen_at) if j not in covered_gen),
    )


def read_recipe(generated: str, reference: str) -> RecipeReading:
    """The dish, ingredient and step reading of two recipe texts (with `parse_recipe`): which
    dish each names, which ingredient lines match (`read_ingredients`) and which reference steps
    a generated step covers (the pairs `recipe_metrics` counts). Never raises on junk."""
    gen, ref = parse_recipe(generated), parse_recipe(reference)
    return RecipeReading(
        dish=DishReading(reference=ref.dish, generated=gen.dish, reference_line=ref.dish_line,
                         generated_line=gen.dish_line),
        ingredients=_lines_of(gen, ref),
        steps=_steps_of(gen, ref),
    )


def read_ingredients(generated: str, reference: str) -> IngredientLines:
    """The ingredient lines of two recipe texts (read with `parse_recipe`) that match, that the
    generation misses and that it adds, by `match_ingredients`. Never raises on junk."""
    return _lines_of(parse_recipe(generated), parse_recipe(reference))


def kendall_tau(first: Sequence[float], second: Sequence[float]) -> Optional[float]:
    """Kendall's tau-b between two rankings of the same items; None with fewer than two items
    or when one ranking is constant. Without ties (as for matched steps) it is tau-a:
    (concordant - discordant) / (n choose 2)."""
    if len(first) != len(second):
        raise ValueError(f"rankings differ in length: {len(first)} and {len(second)}")
    n = len(first)
    concordant = discordant = ties_first = ties_second = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = first[i] - first[j], second[i] - second[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_first += 1
            elif dy == 0:
                ties_second += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_first)
                   * (concordant + discordant + ties_second)) ** 0.5
    return (concordant - discordant) / denominator if n >= 2 and denominator else None


def _step_coverage(ref: set[str], gen: set[str]) -> float:
    return len(ref & gen) / len(ref) if ref else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def recipe_metrics(generated: str, reference: str) -> RecipeMetrics:
    """Offline metrics of `generated` against `reference` (both recipe texts, read with
    `engine.evaluation.recipe.parse_recipe`). Ingredients match by food (`read_ingredients`)
    and steps by content-word coverage (STEP_MATCH); Kendall's tau compares the order of
    matched steps in the reference and in the generation. Never raises on junk."""
    gen, ref = parse_recipe(generated), parse_recipe(reference)
    lines = _lines_of(gen, ref)
    precision, recall = lines.precision, lines.recall
    f1 = None if recall is None else _f1(precision or 0.0, recall)

    measured = sum(1 for line in gen.ingredients if parse_ingredient(line).quantity is not None)
    rate = measured / len(gen.ingredients) if gen.ingredients else None

    step_pairs = _step_pairs(gen, ref)
    tau = kendall_tau([i for i, _ in step_pairs], [j for _, j in step_pairs])
    return RecipeMetrics(
        ingredient_precision=precision,
        ingredient_recall=recall,
        ingredient_f1=f1,
        measurement_rate=rate,
        matched_steps=len(step_pairs),
        kendall_tau=tau,
        words=len(generated.split()),
        ingredients=len(gen.ingredients),
        steps=len(gen.steps),
        reference_ingredients=len(ref.ingredients),
        reference_steps=len(ref.steps),
        ingredient_lines=lines,
    )
