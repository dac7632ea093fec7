"""Import the synthetic kitchen as the paper's three per-modality training sets plus an eval set."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine

from db.errors import UserError
from engine.importers.base import (
    MEDIA_ROOTS_KEY,
    ImportPlan,
    ImportSummary,
    PlannedDataset,
    PlannedSample,
    Problem,
    apply_plan,
    media_roots,
    outside_media_roots,
)
from engine.media import DEFAULT_FRAMES, uniform_indices
from engine.evaluation.recipe import DISH_PROMPT, RECIPE_PROMPT

# Dataset names the demo and tests use.
IMAGE_SET = "kitchen-images"
VIDEO_SET = "kitchen-videos"
TEXT_SET = "kitchen-questions"
EVAL_SET = "kitchen-eval"
TRAIN_SETS = (IMAGE_SET, VIDEO_SET, TEXT_SET)
RECIPE_QUESTION = "What is the recipe for {name}? Include specific measurements for each ingredient."


class KitchenImportError(UserError, ValueError):
    """The kitchen folder is missing its manifest or the manifest is not what ddft wrote."""


def _frame_times(n_frames: int, fps: float) -> list[float]:
    if n_frames < DEFAULT_FRAMES or fps <= 0:
        return []
    return [round(i / fps, 3) for i in uniform_indices(n_frames, DEFAULT_FRAMES)]


def import_kitchen(db_engine: Engine, root: Path) -> list[ImportSummary]:
    """Add the kitchen under `root` to the store (one transaction; safe to re-run).

    Raises KitchenImportError when root/kitchen.json is missing or malformed;
    engine.importers.base.ImportFailed, writing nothing, when a media path resolves outside
    `root`.
    """
    root = root.resolve()
    manifest_path = root / "kitchen.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        dishes = {d["slug"]: d for d in manifest["dishes"]}
        annotations = json.loads((root / "annotations.json").read_text())["database"]
    except FileNotFoundError as exc:
        raise KitchenImportError(f"{exc.filename}: not found; build the kitchen first "
                                 "(`ddft data import kitchen`)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise KitchenImportError(f"{manifest_path}: not a ddft kitchen manifest ({exc})") from None

    image_rows = [
        {
            "external_id": item["path"],
            "modality": "image",
            "split": "train",
            "media_path": str(root / item["path"]),
            "prompt": DISH_PROMPT,
            "answer": dishes[item["dish"]]["name"],
            "group": dishes[item["dish"]]["recipe_type"],
            "meta": {"dish": item["dish"]},
        }
        for item in manifest["images"]
    ]
    video_rows: list[dict] = []
    eval_rows: list[dict] = []
    for item in manifest["videos"]:
        dish = dishes[item["dish"]]
        row = {
            "external_id": item["video_id"],
            "modality": "video",
            "split": "train" if item["subset"] == "training" else "validation",
            "media_path": str(root / item["path"]),
            "prompt": RECIPE_PROMPT,
            "answer": dish["recipe"],
            "group": dish["recipe_type"],
            "duration_s": float(item["duration"]),
            "meta": {
                "dish": item["dish"],
                "segments": annotations[item["video_id"]]["annotations"],
                "frame_times": _frame_times(int(item["n_frames"]), float(item["fps"])),
                "fps": item["fps"],
                "n_frames": item["n_frames"],
            },
        }
        (video_rows if item["subset"] == "training" else eval_rows).append(row)
    text_rows = [
        {
            "external_id": f"q{index:04d}",
            "modality": "text",
            "split": "train",
            "media_path": None,
            "prompt": item["question"],
            "answer": item["answer"],
            "meta": {},
        }
        for index, item in enumerate(manifest["questions"])
    ]
    # Recipe questions in words, one per dish: the text modality then carries the recipes the
    # video modality asks for, so the model learns them apart from recognising the dish.
    text_rows += [
        {
            "external_id": f"recipe-{dish['slug']}",
            "modality": "text",
            "split": "train",
            "media_path": None,
            "prompt": RECIPE_QUESTION.format(name=dish["name"]),
            "answer": dish["recipe"],
            "group": dish["recipe_type"],
            "meta": {"dish": dish["slug"]},
        }
        for dish in manifest["dishes"]
    ]
    roots = media_roots(root)
    problems = [Problem(str(manifest_path), outside, key=row["external_id"])
                for row in image_rows + video_rows + eval_rows
                if (outside := outside_media_roots(row["media_path"], roots)) is not None]
    plan = ImportPlan(problems=problems, datasets=[
        PlannedDataset(name=name, modality=modality, purpose=purpose, source="synthetic",
                       root=str(root), description=description, meta={MEDIA_ROOTS_KEY: roots},
                       samples=[PlannedSample(**row) for row in rows])
        for name, modality, purpose, description, rows in [
            (IMAGE_SET, "image", "train", "Dish images: what is the dish in this image?",
             image_rows),
            (VIDEO_SET, "video", "train", "Cooking videos with recipes and step segments",
             video_rows),
            (TEXT_SET, "text", "train", "General cooking questions with answers", text_rows),
            (EVAL_SET, "video", "eval", "Held-out cooking videos with reference recipes",
             eval_rows),
        ]
    ])
    return apply_plan(db_engine, plan)
