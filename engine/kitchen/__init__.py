"""The synthetic kitchen: dishes, recipes, rendered cooking videos, dish images and cooking Q&A."""

from engine.kitchen.build import (
    KitchenDish,
    KitchenError,
    KitchenImage,
    KitchenManifest,
    KitchenQuestion,
    KitchenVideo,
    build_kitchen,
    load_manifest,
)
from engine.kitchen.questions import QUESTIONS
from engine.kitchen.recipes import DISHES, Dish, dish_by_slug, format_recipe
from engine.evaluation.recipe import ParsedRecipe, parse_recipe
from engine.kitchen.render import RenderedVideo, RenderError, render_dish_image, render_video

__all__ = [
    "DISHES",
    "QUESTIONS",
    "Dish",
    "KitchenDish",
    "KitchenError",
    "KitchenImage",
    "KitchenManifest",
    "KitchenQuestion",
    "KitchenVideo",
    "ParsedRecipe",
    "RenderError",
    "RenderedVideo",
    "build_kitchen",
    "dish_by_slug",
    "format_recipe",
    "load_manifest",
    "parse_recipe",
    "render_dish_image",
    "render_video",
]
