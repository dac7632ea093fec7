"""A small store for rating-campaign tests: an eval set, variants, recipes and judgments."""

from __future__ import annotations

from typing import Sequence

from db import queries
from db.store import session_scope
from engine.evaluation.recipe import format_recipe

EVAL_SET = "kitchen-eval"
# Names and paths a rater must never see; the rating texts never contain them.
VARIANTS = ("zeta-base-7b", "omega-tuned-lora")
MODEL_PATHS = {"zeta-base-7b": "/models/zeta-secret-base",
               "omega-tuned-lora": "/runs/9931/omega-adapter"}


def reference(index: int) -> str:
    return format_recipe(f"Dish {index}", [f"{index + 1} cups flour", "2 eggs"],
                         ["Whisk everything.", f"Bake for {10 + index} minutes."])


def generated(index: int, variant_index: int) -> str:
    """A recipe text that names neither its variant nor its model."""
    return format_recipe(f"Dish {index}", [f"{index + variant_index + 1} cups flour"],
                         ["Whisk everything.", f"Rest for {variant_index + 2} minutes."])


def fill_store(db_engine, *, samples: int = 6, variants: Sequence[str] = VARIANTS,
               judge_scores: dict[str, Sequence[float]] | None = None,
               missing: dict[str, Sequence[int]] | None = None) -> dict[str, int]:
    """An eval set of `samples` samples and one recipe generation per (variant, sample), except
    the sample indices in `missing[variant]`. `judge_scores[variant][i]` adds an offline-judge
    judgment of that variant's generation of sample i. Returns variant name → id."""
    missing = missing or {}
    judge_scores = judge_scores or {}
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=EVAL_SET, modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"video-{i:02d}", "modality": "video", "split": "test",
             "prompt": "Write the recipe for the dish in this video.", "answer": reference(i),
             "group": f"dish-{i % 3}"} for i in range(samples)])
        rows = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        ids = {}
        for v, name in enumerate(variants):
            variant = queries.create_variant(session, name=name,
                                             base_model=MODEL_PATHS.get(name, f"/m/{name}"))
            ids[name] = variant.id
            for i, sample in enumerate(rows):
                if i in missing.get(name, ()):
                    continue
                generation = queries.add_generation(
                    session, variant_id=variant.id, sample_id=sample.id, prompt="p",
                    text=generated(i, v), params_key="greedy")
                scores = judge_scores.get(name)
                if scores is not None and i < len(scores):
                    score = scores[i]
                    queries.add_judgment(session, generation_id=generation.id, judge="offline",
                                         protocol="offline", prompt_version="v1", score=score,
                                         verdict="yes" if score >= 3.5 else "no")
    return ids
