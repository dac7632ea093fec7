"""Tests for the synthetic kitchen: recipes, questions, rendering and the built kitchen on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.kitchen.build import (
    ANNOTATIONS_NAME,
    MANIFEST_NAME,
    KitchenError,
    build_kitchen,
    load_manifest,
)
from engine.kitchen.questions import QUESTIONS
from engine.kitchen.recipes import DISHES, VESSELS, dish_by_slug, format_recipe
from engine.evaluation.recipe import parse_recipe
from engine.kitchen.render import render_dish_image, render_video

MEASURED = re.compile(r"^\d+( \d+/\d+|/\d+)? \S")
SMALL = dict(videos_per_dish=2, held_out_per_dish=1, images_per_dish=1, seed=3)
SMALL_DISHES = ("tomato-soup", "garden-salad", "berry-smoothie", "chocolate-brownies")


def read_frames(path: Path, n: int = 8) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    indices = np.linspace(0, len(reader) - 1, n).round().astype(int).tolist()
    return reader.get_batch(indices).asnumpy().astype(np.float32)


def colour_histogram(frames: np.ndarray) -> np.ndarray:
    """A coarse colour histogram of the frames' centres, at the tiny model's 56x56 scale."""
    # The centre holds the dish whatever the framing; the counter around it varies by seed.
    centre = frames[:, 28:84:2, 28:84:2]
    small = centre.reshape(-1, 3) // 64  # 4 levels a channel
    codes = (small[:, 0] * 16 + small[:, 1] * 4 + small[:, 2]).astype(int)
    return np.bincount(codes, minlength=64) / len(codes)


def file_times(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen")
    calls = []
    manifest = build_kitchen(
        root, dishes=SMALL_DISHES, progress=lambda *args: calls.append(args), **SMALL
    )
    return manifest, calls


# --- recipes -----------------------------------------------------------------------------------


def test_every_dish_has_a_short_measured_recipe():
    assert len(DISHES) >= 12
    assert len({d.slug for d in DISHES}) == len(DISHES)
    assert len({d.recipe_type for d in DISHES}) == len(DISHES)
    assert len({(d.palette[0], d.vessel) for d in DISHES}) == len(DISHES)
    for dish in DISHES:
        assert re.fullmatch(r"\d{3}", dish.recipe_type), dish.slug
        assert 5 <= len(dish.ingredients) <= 8, dish.slug
        for item in dish.ingredients:
            assert MEASURED.match(item), f"{dish.slug}: {item!r} has no measurement"
        assert 4 <= len(dish.steps) <= 6, dish.slug
        for step in dish.steps:
            assert len(step.split()) < 15, f"{dish.slug}: step too long: {step!r}"
            assert step[0].isupper() and step.endswith("."), step
        assert dish.vessel in VESSELS
        assert len(dish.palette) >= 4
        assert all(0 <= c <= 255 for colour in dish.palette for c in colour)


def test_format_recipe_writes_the_exact_layout():
    dish = dish_by_slug("avocado-toast")
    assert format_recipe(dish) == (
        "Dish: Avocado Toast\n"
        "Ingredients:\n"
        "- 2 slices bread\n"
        "- 1 ripe avocado\n"
        "- 1 tbsp lemon juice\n"
        "- 1/4 tsp salt\n"
        "- 1 tbsp olive oil\n"
        "- 1/4 tsp red pepper flakes\n"
        "Steps:\n"
        "1. Toast the bread until golden.\n"
        "2. Mash the avocado with the lemon juice and salt.\n"
        "3. Spread the avocado on the toast.\n"
        "4. Drizzle with olive oil and sprinkle with red pepper flakes."
    )


@pytest.mark.parametrize("dish", DISHES, ids=lambda d: d.slug)
def test_parse_recipe_reads_back_what_format_recipe_wrote(dish):
    text = format_recipe(dish)
    lines = text.splitlines()
    numbered = [line for line in lines if re.match(r"^\d+\. ", line)]
    assert [int(line.split(".")[0]) for line in numbered] == list(range(1, len(dish.steps) + 1))
    parsed = parse_recipe(text)
    assert parsed.dish == dish.name
    assert parsed.ingredients == list(dish.ingredients)
    assert parsed.steps == list(dish.steps)


def test_parse_recipe_tolerates_what_a_model_gets_wrong():
    text = (
        "Sure! Here is the recipe you asked for.\n"
        "**Dish:**   Tomato   Soup  \n"
        "\n"
        "## INGREDIENTS\n"
        "*  2 tbsp   olive oil\n"
        "\u2022 1 onion, diced\n"
        "- \n"
        "Instructions:\n"
        "1) Heat the oil.\n"
        "  2.   Cook the onion.\n"
        "Step 3: Serve hot.\n"
        "Notes:\n"
        "- enjoy it\n"
    )
    parsed = parse_recipe(text)
    assert parsed.dish == "Tomato Soup"
    assert parsed.ingredients == ["2 tbsp olive oil", "1 onion, diced"]
    assert parsed.steps == ["Heat the oil.", "Cook the onion.", "Serve hot."]


@pytest.mark.parametrize(
    "text, dish, ingredients, steps",
    [
        ("", None, [], []),
        ("just some words\n1. not in a section", None, [], []),
        ("Steps:\n1. Boil water.", None, [], ["Boil water."]),
        ("Dish: Pancakes", "Pancakes", [], []),
        ("ingredients: 1 cup milk\n- 1 egg", None, ["1 cup milk", "1 egg"], []),
        ("Steps\n1. Mix.\nIngredients\n- 1 egg", None, ["1 egg"], ["Mix."]),
    ],
)
def test_parse_recipe_handles_missing_and_odd_sections(text, dish, ingredients, steps):
    parsed = parse_recipe(text)
    assert (parsed.dish, parsed.ingredients, parsed.steps) == (dish, ingredients, steps)


def test_dish_by_slug_names_the_unknown_slug():
    assert dish_by_slug("pancakes").name == "Pancakes"
    with pytest.raises(KeyError, match="waffles"):
        dish_by_slug("waffles")


def test_questions_are_many_distinct_and_answered_briefly():
    assert len(QUESTIONS) >= 36
    assert len({q for q, _ in QUESTIONS}) == len(QUESTIONS)
    for question, answer in QUESTIONS:
        assert question.endswith("?"), question
        assert answer.endswith("."), answer
        assert 1 <= answer.count(". ") + 1 <= 2 and len(answer.split()) <= 30, answer


# --- rendering ---------------------------------------------------------------------------------


def test_render_video_rejects_an_odd_frame_size(tmp_path):
    with pytest.raises(ValueError, match="even"):
        render_video(DISHES[0], tmp_path / "odd.mp4", seed=0, size=(111, 112))
    assert not list(tmp_path.iterdir())


def test_dish_images_differ_by_seed_but_keep_the_dish_colour(tmp_path):
    from PIL import Image

    soup = dish_by_slug("tomato-soup")
    images = []
    for seed in (0, 1):
        path = render_dish_image(soup, tmp_path / f"{seed}.png", seed=seed)
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (112, 112)
            images.append(np.asarray(image.convert("RGB"), dtype=np.float32))
    assert np.abs(images[0] - images[1]).mean() > 10
    # The soup's red covers the middle of the frame whatever the framing.
    for image in images:
        centre = image[40:72, 40:72].reshape(-1, 3)
        red = (centre[:, 0] > 150) & (centre[:, 1] < 90) & (centre[:, 2] < 90)
        assert red.mean() > 0.3


# --- the built kitchen -------------------------------------------------------------------------


def test_build_writes_the_layout_and_reports_progress(kitchen):
    manifest, calls = kitchen
    root = manifest.root
    assert len(manifest.dishes) == len(SMALL_DISHES)
    assert len(manifest.videos) == 2 * len(SMALL_DISHES)
    assert len(manifest.images) == len(SMALL_DISHES)
    assert len(manifest.questions) == len(QUESTIONS)
    total = len(manifest.videos) + len(manifest.images)
    assert [(done, n) for done, n, _ in calls] == [(i, total) for i in range(1, total + 1)]
    assert {what for _, _, what in calls} == {
        item.path for item in manifest.images + manifest.videos
    }
    for video in manifest.videos:
        dish = dish_by_slug(video.dish)
        assert video.path == f"videos/{video.subset}/{dish.recipe_type}/{video.video_id}.mp4"
        assert (root / video.path).is_file()
    for image in manifest.images:
        assert re.fullmatch(rf"images/{image.dish}/\d+\.png", image.path)
        assert (root / image.path).is_file()
    held_out = manifest.videos_in("validation")
    assert sorted(v.video_id for v in held_out) == sorted(f"{s}-1" for s in SMALL_DISHES)
    assert all(v.video_id.endswith("-0") for v in manifest.videos_in("training"))
    assert not list(root.rglob(".*partial*"))


def test_videos_decode_with_the_frame_count_the_manifest_gives(kitchen):
    import decord

    manifest, _ = kitchen
    for video in manifest.videos:
        reader = decord.VideoReader(str(manifest.resolve(video.path)), ctx=decord.cpu(0))
        assert len(reader) == video.n_frames >= 8
        assert reader.get_avg_fps() == pytest.approx(video.fps)
        assert video.n_frames == round(video.duration * video.fps)
        assert 4 <= video.duration <= 15
        assert reader[0].shape == (112, 112, 3)


def test_annotations_follow_youcook2(kitchen):
    manifest, _ = kitchen
    data = json.loads(manifest.annotations_path.read_text())
    assert set(data) == {"database"}
    database = data["database"]
    assert set(database) == {v.video_id for v in manifest.videos}
    for video in manifest.videos:
        entry = database[video.video_id]
        dish = dish_by_slug(video.dish)
        assert set(entry) == {"duration", "subset", "recipe_type", "annotations", "video_url"}
        assert entry["duration"] == video.duration
        assert entry["subset"] == video.subset
        assert entry["recipe_type"] == dish.recipe_type
        segments = entry["annotations"]
        assert [s["id"] for s in segments] == list(range(len(dish.steps)))
        assert [s["sentence"] for s in segments] == list(dish.steps)
        previous_end = 0
        for s in segments:
            assert set(s) == {"segment", "id", "sentence"}
            start, end = s["segment"]
            assert isinstance(start, int) and isinstance(end, int)
            assert previous_end <= start < end <= entry["duration"]
            previous_end = end


def test_kitchen_json_holds_recipes_questions_and_relative_paths(kitchen):
    manifest, _ = kitchen
    data = json.loads((manifest.root / MANIFEST_NAME).read_text())
    assert data["version"] == 1 and data["seed"] == SMALL["seed"]
    for entry in data["dishes"]:
        assert set(entry) >= {"slug", "name", "recipe_type", "ingredients", "steps", "recipe"}
        assert entry["recipe"] == format_recipe(dish_by_slug(entry["slug"]))
    assert data["questions"][0] == {"question": QUESTIONS[0][0], "answer": QUESTIONS[0][1]}
    for entry in data["images"] + data["videos"]:
        assert not Path(entry["path"]).is_absolute()
    assert set(data["videos"][0]) == {
        "video_id", "dish", "path", "subset", "duration", "fps", "n_frames"
    }
    assert load_manifest(manifest.root) == manifest


def test_a_video_changes_as_the_steps_go_by(kitchen):
    manifest, _ = kitchen
    for video in manifest.videos:
        frames = read_frames(manifest.resolve(video.path))
        assert np.abs(frames[0] - frames[-1]).mean() > 8, video.video_id


def test_held_out_renders_are_new_but_recognisable(kitchen):
    manifest, _ = kitchen
    training = {
        v.dish: read_frames(manifest.resolve(v.path)) for v in manifest.videos_in("training")
    }
    for video in manifest.videos_in("validation"):
        frames = read_frames(manifest.resolve(video.path))
        assert np.abs(frames - training[video.dish]).mean() > 10, video.video_id
        # The nearest training video by colour is one of the same dish.
        distances = {
            dish: np.abs(colour_histogram(frames) - colour_histogram(other)).sum()
            for dish, other in training.items()
        }
        assert min(distances, key=distances.get) == video.dish, distances


def test_two_dishes_look_clearly_different(kitchen):
    manifest, _ = kitchen
    by_id = {v.video_id: v for v in manifest.videos}
    soup = read_frames(manifest.resolve(by_id["tomato-soup-0"].path))[-1]
    salad = read_frames(manifest.resolve(by_id["garden-salad-0"].path))[-1]
    assert np.abs(soup - salad).mean() > 25


def test_same_seed_builds_the_same_kitchen(kitchen, tmp_path):
    manifest, _ = kitchen
    again = build_kitchen(tmp_path, dishes=SMALL_DISHES, **SMALL)
    assert again.to_json() == manifest.to_json()
    assert (tmp_path / MANIFEST_NAME).read_bytes() == (manifest.root / MANIFEST_NAME).read_bytes()
    assert (tmp_path / ANNOTATIONS_NAME).read_bytes() == manifest.annotations_path.read_bytes()
    for video in manifest.videos:
        assert (tmp_path / video.path).read_bytes() == manifest.resolve(video.path).read_bytes()
    for image in manifest.images:
        assert (tmp_path / image.path).read_bytes() == manifest.resolve(image.path).read_bytes()


def test_another_seed_builds_other_videos(tmp_path):
    first = build_kitchen(tmp_path / "a", dishes=["pancakes"], images_per_dish=0, seed=1)
    second = build_kitchen(tmp_path / "b", dishes=["pancakes"], images_per_dish=0, seed=2)
    for a, b in zip(first.videos, second.videos):
        assert a.video_id == b.video_id
        assert (first.root / a.path).read_bytes() != (second.root / b.path).read_bytes()


def test_second_build_reuses_the_kitchen_without_rendering(kitchen):
    manifest, _ = kitchen
    before = file_times(manifest.root)
    calls = []
    again = build_kitchen(
        manifest.root, dishes=SMALL_DISHES, progress=lambda *a: calls.append(a), **SMALL
    )
    assert again == manifest
    assert calls == []
    assert file_times(manifest.root) == before


def test_changed_settings_or_a_missing_file_rebuild(tmp_path):
    settings = dict(dishes=["scrambled-eggs"], videos_per_dish=2, images_per_dish=1, seed=0)
    first = build_kitchen(tmp_path, **settings)
    calls = []
    build_kitchen(tmp_path, **settings, progress=lambda *a: calls.append(a))
    assert calls == []

    more = build_kitchen(
        tmp_path, **{**settings, "images_per_dish": 2}, progress=lambda *a: calls.append(a)
    )
    assert len(calls) == 4 and len(more.images) == 2

    (tmp_path / first.videos[0].path).unlink()
    calls.clear()
    build_kitchen(tmp_path, **settings, progress=lambda *a: calls.append(a))
    assert len(calls) == 3
    assert (tmp_path / first.videos[0].path).is_file()


def test_an_interrupted_build_is_not_taken_for_a_kitchen(tmp_path):
    def interrupt(done, total, what):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_kitchen(tmp_path, dishes=["pancakes"], progress=interrupt)
    assert not (tmp_path / MANIFEST_NAME).exists()
    with pytest.raises(KitchenError, match=MANIFEST_NAME):
        load_manifest(tmp_path)
    calls = []
    manifest = build_kitchen(tmp_path, dishes=["pancakes"], progress=lambda *a: calls.append(a))
    assert len(calls) == 4 + 3
    assert load_manifest(tmp_path) == manifest


def test_bad_settings_are_reported_together(tmp_path):
    with pytest.raises(ValueError) as raised:
        build_kitchen(
            tmp_path,
            videos_per_dish=1,
            held_out_per_dish=2,
            images_per_dish=-1,
            dishes=["pancakes", "waffles"],
        )
    message = str(raised.value)
    assert "held_out_per_dish" in message and "images_per_dish" in message
    assert "waffles" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no kitchen manifest"),
        ("{not json", "not valid JSON (line 1"),
        ('{"version": 99}', "version: expected 1, found 99"),
        ('{"version": 1, "seed": "zero"}', "seed: expected int, found str"),
        (
            '{"version": 1, "seed": 0, "videos_per_dish": 1, "held_out_per_dish": 0,'
            ' "images_per_dish": 0, "dishes": [], "questions": [], "images": [{"dish": "x"}],'
            ' "videos": []}',
            "images[0]: missing key 'path'",
        ),
    ],
)
def test_load_manifest_names_the_file_and_the_problem(tmp_path, content, expected):
    if content is not None:
        (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(KitchenError) as raised:
        load_manifest(tmp_path)
    assert str(tmp_path / MANIFEST_NAME) in str(raised.value)
    assert expected in str(raised.value)
