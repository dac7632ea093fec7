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
STOPWORDS = {
    "the", "and", "a", "an", "to", "of", "in", "into", "with", "for", "on", "until", "it", "them",
    "is", "are", "or", "then", "over", "at", "from", "by", "about", "each", "all", "your", "up",
}


@dataclass
class ParsedRecipe:
    """What could be read from a recipe text; parts that were missing are None or empty."""

    dish: str | None = None
    ingredients: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    # Where each item stands in the text (0-based line numbers, as str.splitlines counts), so a
    # view can mark the very line an item was read from.
    ingredient_lines: list[int] = field(default_factory=list)
    step_lines: list[int] = field(default_factory=list)
    dish_line: int | None = None  # the line the dish was read from


def format_recipe(name: str, ingredients: list[str] | tuple[str, ...],
                  steps: list[str] | tuple[str, ...]) -> str:
    """The recipe text ddft trains on and compares against."""
    lines = [f"Dish: {name}", "Ingredients:"]
    lines += [f"- {item}" for item in ingredients]
    lines.append("Steps:")
    lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    return "\n".join(lines)


_HEADER = re.compile(r"^(?P<name>[A-Za-z][A-Za-z ]{0,30}?)\s*:\s*(?P<rest>.*)$")
_DISH_HEADERS = {"dish", "dish name", "name", "recipe", "title"}
_SECTIONS = {
    "ingredients": "ingredients",
    "ingredient": "ingredients",
    "steps": "steps",
    "step": "steps",
    "instructions": "steps",
    "directions": "steps",
    "method": "steps",
}
_MARKER = re.compile(
    r"^(?:[-*\u2022+]|\(?\d{1,2}\s*[.):]|step\s+\d{1,2}\s*[.):]?)\s*", re.IGNORECASE
)


def item_text(line: str) -> str:
    """A list line without its marker ("2. ", "- ", "Step 2:") and with its spaces collapsed:
    the item as `parse_recipe` gives it."""
    return " ".join(_MARKER.sub("", line.strip(), count=1).split())


def parse_recipe(text: str) -> ParsedRecipe:
    """Read a recipe written in `format_recipe`'s layout, tolerating what models get wrong.

    Headers are case-insensitive, may lack their colon or wear markdown ("## Steps",
    "**Ingredients:**"), and "Instructions"/"Method" count as steps; items may be bulleted
    with "-", "*" or "\u2022", numbered "1." or "1)" or "Step 1:", or bare; text after a header's
    colon counts as the first item; lines before any section or under an unknown header are
    ignored. Never raises on junk: what cannot be read is left out. Each item's line number
    is kept beside it.
    """
    dish: str | None = None
    dish_line: int | None = None
    section: str | None = None
    parsed: dict[str, list[str]] = {"ingredients": [], "steps": []}
    lines: dict[str, list[int]] = {"ingredients": [], "steps": []}
    for line_no, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line:
            continue
        bare = line.replace("**", "").strip("# \t")
        if bare.lower().rstrip(":").strip() in _SECTIONS:
            section = _SECTIONS[bare.lower().rstrip(":").strip()]
            continue
        header = _HEADER.match(bare) if not _MARKER.match(bare) else None
        if header is not None:
            name = " ".join(header["name"].lower().split())
            rest = header["rest"].strip()
            if name in _DISH_HEADERS:
                if dish is None and rest:
                    dish = " ".join(rest.split())
                    dish_line = line_no
                section = None
                continue
            if name in _SECTIONS:
                section = _SECTIONS[name]
                if item_text(rest):
                    parsed[section].append(item_text(rest))
                    lines[section].append(line_no)
                continue
            if " " not in name and not rest:
                # An unknown one-word header ("Notes:") closes the section; a line like
                # "Tip: use butter" inside a section is kept as an item.
                section = None
                continue
        if section is not None:
            item = item_text(line)
            if item:
                parsed[section].append(item)
                lines[section].append(line_no)
    return ParsedRecipe(dish=dish, ingredients=parsed["ingredients"], steps=parsed["steps"],
                        ingredient_lines=lines["ingredients"], step_lines=lines["steps"],
                        dish_line=dish_line)


def same_dish(generated: str | None, reference: str | None) -> bool:
    """Whether two dish names read by `parse_recipe` are the same dish: equal once case and
    surrounding spaces are ignored; False when either is missing."""
    return bool(generated and reference
                and generated.strip().lower() == reference.strip().lower())


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
