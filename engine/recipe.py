"""Recipes as text: the format ddft trains on, and a tolerant parser for what models write back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RECIPE_PROMPT = (
    "Can you give me a recipe from the provided videos and include specific measurements "
    "for each of the ingredients?"
)
DISH_PROMPT = "What is the dish in this image?"

_UNITS = {
    "cup", "cups", "tbsp", "tablespoon", "tablespoons", "tsp", "teaspoon", "teaspoons", "g",
    "gram", "grams", "kg", "ml", "l", "liter", "liters", "litre", "oz", "ounce", "ounces", "lb",
    "lbs", "pound", "pounds", "pinch", "pinches", "clove", "cloves", "slice", "slices", "can",
    "cans", "handful", "sprig", "sprigs", "piece", "pieces", "stick", "sticks", "dash", "bunch",
    "large", "medium", "small", "whole", "of", "a", "an", "some", "few",
}
_NUMBER = re.compile(r"^(\d+([./]\d+)?|\d+\s+\d+/\d+|[½¼¾⅓⅔])$")
_QUANTITY = re.compile(r"(\d+([./]\d+)?|[½¼¾⅓⅔])")
_WORD = re.compile(r"[a-z]+")
_SECTION = re.compile(r"^\s*(dish|ingredients|steps|instructions|directions|method)\s*:?\s*(.*)$", re.I)
_BULLET = re.compile(r"^\s*[-*•]\s*(.+)$")
_NUMBERED = re.compile(r"^\s*(\d+)\s*[.)]\s*(.+)$")
STOPWORDS = {
    "the", "and", "a", "an", "to", "of", "in", "into", "with", "for", "on", "until", "it", "them",
    "is", "are", "or", "then", "over", "at", "from", "by", "about", "each", "all", "your", "up",
}


@dataclass
class ParsedRecipe:
    dish: str | None = None
    ingredients: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


def format_recipe(name: str, ingredients: list[str] | tuple[str, ...],
                  steps: list[str] | tuple[str, ...]) -> str:
    """The recipe text ddft trains on and compares against."""
    lines = [f"Dish: {name}", "Ingredients:"]
    lines += [f"- {item}" for item in ingredients]
    lines.append("Steps:")
    lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    return "\n".join(lines)


def parse_recipe(text: str) -> ParsedRecipe:
    """Dish, ingredient lines and steps from recipe-shaped text; junk lines are ignored.

    Accepts "Dish:/Ingredients:/Steps:" sections, "-", "*" or "•" bullets, and "1." or "1)"
    numbering; numbered lines outside any section count as steps.
    """
    recipe = ParsedRecipe()
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        header = _SECTION.match(line)
        if header:
            name, rest = header.group(1).lower(), header.group(2).strip()
            if name == "dish":
                recipe.dish = rest or recipe.dish
                section = None
            else:
                section = "ingredients" if name == "ingredients" else "steps"
                if rest:
                    (recipe.ingredients if section == "ingredients" else recipe.steps).append(rest)
            continue
        bullet = _BULLET.match(line)
        numbered = _NUMBERED.match(line)
        if section == "ingredients" and (bullet or numbered):
            recipe.ingredients.append((bullet or numbered).group(bullet and 1 or 2).strip())
        elif section == "steps" and (numbered or bullet):
            recipe.steps.append((numbered.group(2) if numbered else bullet.group(1)).strip())
        elif section is None and numbered:
            recipe.steps.append(numbered.group(2).strip())
    return recipe


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def ingredient_food(line: str) -> str:
    """The food an ingredient line names, without quantity, unit or preparation:
    "3 cloves garlic, minced" → "garlic"."""
    head = line.split(",")[0].split("(")[0].lower()
    words = [w for w in re.split(r"\s+", head) if w]
    while words and (_NUMBER.match(words[0]) or words[0].strip(".") in _UNITS):
        words.pop(0)
    return " ".join(w for w in words if _WORD.fullmatch(w) or "-" in w).strip()


def has_measurement(line: str) -> bool:
    """Whether an ingredient line gives a quantity ("1 cup flour"), not just a food ("some flour")."""
    head = line.split(",")[0]
    return bool(_QUANTITY.search(head))
