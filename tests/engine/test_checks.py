"""`ddft data check`: media, token budget, duplicates and leakage, marked on each sample."""

from __future__ import annotations

import shutil

import pytest

from db import queries
from db.store import session_scope
from engine.checks import check_samples

from .conftest import write_test_video

RECIPE = "Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\nSteps:\n1. Simmer."


@pytest.fixture
def checked_store(ddft_store, engine_media_dir, tmp_path):
    media = engine_media_dir
    short = write_test_video(tmp_path / "short.mp4", (10, 10, 10), n_frames=5)
    copy_of_red = tmp_path / "red-copy.mp4"
    shutil.copy(media / "red0.mp4", copy_of_red)
    with session_scope(ddft_store) as session:
        train = queries.get_or_create_dataset(session, name="videos", modality="video")
        queries.add_samples(session, dataset_id=train.id, samples=[
            {"external_id": "good", "modality": "video", "media_path": str(media / "green0.mp4"),
             "prompt": "recipe?", "answer": "Dish: Salad", "group": "salad"},
            {"external_id": "broken", "modality": "video", "media_path": str(media / "broken.mp4"),
             "prompt": "recipe?", "answer": "x"},
            {"external_id": "short", "modality": "video", "media_path": str(short),
             "prompt": "recipe?", "answer": "y"},
            {"external_id": "missing", "modality": "video", "media_path": str(tmp_path / "no.mp4"),
             "prompt": "recipe?", "answer": "z"},
            {"external_id": "leak", "modality": "video", "media_path": str(copy_of_red),
             "prompt": "recipe?", "answer": "other"},
            {"external_id": "same-recipe", "modality": "video",
             "media_path": str(media / "green1.mp4"), "prompt": "recipe?", "answer": RECIPE},
        ])
        text = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=text.id, samples=[
            {"external_id": "q1", "modality": "text", "prompt": "Boil an egg?", "answer": "9 min"},
            {"external_id": "q2", "modality": "text", "prompt": "Boil an egg?  ", "answer": "9 min"},
            {"external_id": "long", "modality": "text", "prompt": "why " * 3000, "answer": "ok"},
        ])
        images = queries.get_or_create_dataset(session, name="images", modality="image")
        queries.add_samples(session, dataset_id=images.id, samples=[
            {"external_id": "img", "modality": "image", "media_path": str(media / "red.png"),
             "prompt": "What is the dish?", "answer": "Tomato Soup"}])
        evalset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=evalset.id, samples=[
            {"external_id": "e1", "modality": "video", "media_path": str(media / "red0.mp4"),
             "prompt": "recipe?", "answer": RECIPE, "group": "soup"}])
    return ddft_store


def _marks(db_engine):
    with session_scope(db_engine) as session:
        return {s.external_id: (s.check_status, s.check_reasons, s.meta)
                for s in queries.list_samples(session, limit=None)}


def test_every_training_sample_is_marked_with_its_reasons(checked_store, engine_tiny_model,
                                                           tmp_path):
    summary = check_samples(checked_store, model=str(engine_tiny_model),
                            thumbs_dir=tmp_path / "thumbs")
    marks = _marks(checked_store)
    assert marks["good"][0] == "ok"
    from PIL import Image

    with Image.open(marks["good"][2]["frame_strip"]) as strip:
        assert strip.size == (8 * 36, 36)
    assert len(marks["good"][2]["frame_times"]) == 8 and marks["good"][2]["tokens"] > 136
    assert marks["broken"][0] == "failed" and "cannot read video" in marks["broken"][1][0]
    assert "video too short: 8 frames needed, it has 5" in marks["short"][1][0]
    assert "video file not found" in marks["missing"][1][0]
    assert marks["leak"][1] == [f"leak: same media file as eval sample {_id(checked_store, 'e1')}"]
    assert marks["same-recipe"][0] == "warn" and marks["same-recipe"][1][0].startswith(
        "overlap: same recipe")
    assert marks["q1"][0] == "ok"
    assert marks["q2"][0] == "failed" and marks["q2"][1][0].startswith("duplicate: same content")
    assert marks["long"][0] == "failed" and "tokens with media" in marks["long"][1][0]
    assert marks["img"][0] == "ok"
    assert marks["e1"][0] == "unchecked"  # eval sets are read for leakage, checked only if named
    assert (summary.checked, summary.failed, summary.warned) == (10, 6, 1)


def _id(db_engine, external_id):
    with session_scope(db_engine) as session:
        return queries.list_samples(session, search=external_id)[0].id


def test_without_a_model_the_token_budget_is_skipped_and_said(checked_store):
    summary = check_samples(checked_store, datasets=["qa"])
    assert _marks(checked_store)["long"][0] == "ok"
    assert summary.notes == ["token budget not checked: pass --model DIR_OR_HUB_ID"]


def test_unknown_datasets_are_named(checked_store):
    with pytest.raises(KeyError, match="no dataset named nope"):
        check_samples(checked_store, datasets=["nope"])


def test_broken_and_hostile_media_fail_their_samples_with_clean_reasons(ddft_store, tmp_path,
                                                                        capfd):
    from engine.checks import failed_samples

    from .test_media import broken_videos, huge_png, write_video

    unfinished, cut, garbled = broken_videos(tmp_path)
    good = write_video(tmp_path / "good.mov", 12)
    bomb = huge_png(tmp_path / "bomb.png")
    with session_scope(ddft_store) as session:
        videos = queries.get_or_create_dataset(session, name="videos", modality="video")
        queries.add_samples(session, dataset_id=videos.id, samples=[
            {"external_id": path.stem, "modality": "video", "media_path": str(path),
             "prompt": "recipe?", "answer": path.stem}
            for path in (unfinished, cut, garbled, good)])
        images = queries.get_or_create_dataset(session, name="images", modality="image")
        queries.add_samples(session, dataset_id=images.id, samples=[
            {"external_id": "bomb", "modality": "image", "media_path": str(bomb),
             "prompt": "What is the dish?", "answer": "a bomb"}])
    capfd.readouterr()
    summary = check_samples(ddft_store, thumbs_dir=tmp_path / "thumbs")
    assert capfd.readouterr().err == ""  # no decoder chatter on the job's stderr
    assert (summary.checked, summary.ok, summary.failed) == (5, 1, 4)
    marks = _marks(ddft_store)
    assert marks["good"][0] == "ok"
    assert marks["unfinished"][1] == [f"media: {unfinished}: cannot read video: the file is "
                                      "incomplete: it has no index (moov atom), as when a "
                                      "download or recording did not finish"]
    for name in ("cut", "garbled"):
        [reason] = marks[name][1]
        assert reason.startswith(f"media: {tmp_path / name}.mp4: cannot")
        assert reason.endswith("the data is cut short or corrupted (an interrupted download or "
                               "copy?)")
    [reason] = marks["bomb"][1]
    assert reason == (f"media: {bomb}: cannot read image: the image claims 400,000,000 pixels, "
                      "over the decoder's limit of 178,956,970 (refused as a possible "
                      "decompression bomb)")

    failed, total = failed_samples(ddft_store, limit=3)
    assert total == 4
    assert [(f.dataset, f.external_id) for f in failed] == [
        ("videos", "unfinished"), ("videos", "cut"), ("videos", "garbled")]
    assert failed[0].reasons == marks["unfinished"][1]
    assert failed_samples(ddft_store, datasets=["images"])[1] == 1
    with pytest.raises(KeyError, match="no dataset named nope"):
        failed_samples(ddft_store, datasets=["nope"])
