"""Importing the synthetic kitchen as three per-modality training sets and an eval set."""

from __future__ import annotations

import json

import pytest

from db import queries
from db.store import session_scope
from engine.importers.kitchen import (
    EVAL_SET,
    IMAGE_SET,
    TEXT_SET,
    VIDEO_SET,
    KitchenImportError,
    import_kitchen,
)
from engine.kitchen.build import build_kitchen
from engine.kitchen.questions import QUESTIONS
from engine.media import sample_frames
from engine.evaluation.recipe import DISH_PROMPT, RECIPE_PROMPT, parse_recipe

DISHES = ("tomato-soup", "garden-salad", "berry-smoothie")


@pytest.fixture(scope="module")
def small_kitchen(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen")
    build_kitchen(root, videos_per_dish=3, held_out_per_dish=1, images_per_dish=2, seed=1,
                  dishes=DISHES)
    return root


def test_the_kitchen_becomes_the_papers_three_modalities_plus_an_eval_set(ddft_store,
                                                                          small_kitchen):
    summaries = import_kitchen(ddft_store, small_kitchen)
    assert [(s.dataset, s.imported) for s in summaries] == [
        (IMAGE_SET, 6), (VIDEO_SET, 6), (TEXT_SET, len(QUESTIONS) + len(DISHES)), (EVAL_SET, 3)]
    with session_scope(ddft_store) as session:
        image = queries.list_samples(session, dataset_id=queries.get_dataset(
            session, name=IMAGE_SET).id)[0]
        assert image.prompt == DISH_PROMPT and image.modality == "image"
        assert image.answer in {"Tomato Soup", "Garden Salad", "Berry Smoothie"}
        eval_set = queries.get_dataset(session, name=EVAL_SET)
        assert eval_set.purpose == "eval"
        held_out = queries.list_samples(session, dataset_id=eval_set.id)
        video_set = queries.get_dataset(session, name=VIDEO_SET)
        training = queries.list_samples(session, dataset_id=video_set.id)
    assert not {s.media_path for s in held_out} & {s.media_path for s in training}
    sample = held_out[0]
    assert sample.prompt == RECIPE_PROMPT
    recipe = parse_recipe(sample.answer)
    assert recipe.dish and recipe.ingredients and recipe.steps
    segments = sample.meta["segments"]
    assert [s["id"] for s in segments] == list(range(len(recipe.steps)))
    assert [s["sentence"] for s in segments] == recipe.steps
    # The frame times stored at import are the ones 8-frame sampling really takes.
    assert sample.meta["frame_times"] == sample_frames(sample.media_path, 8).times


def test_importing_again_adds_nothing(ddft_store, small_kitchen):
    import_kitchen(ddft_store, small_kitchen)
    again = import_kitchen(ddft_store, small_kitchen)
    assert all(s.imported == 0 and s.skipped > 0 for s in again)


def test_a_folder_without_a_manifest_is_a_clear_error(ddft_store, tmp_path):
    with pytest.raises(KitchenImportError, match="kitchen.json: not found"):
        import_kitchen(ddft_store, tmp_path)
    (tmp_path / "kitchen.json").write_text(json.dumps({"dishes": "nope"}))
    (tmp_path / "annotations.json").write_text(json.dumps({"database": {}}))
    with pytest.raises(KitchenImportError, match="not a ddft kitchen manifest"):
        import_kitchen(ddft_store, tmp_path)
    with session_scope(ddft_store) as session:
        assert queries.list_datasets(session) == []
