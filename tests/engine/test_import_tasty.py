"""Reading Tasty Videos recipe folders into import plans: recipes, segments, splits, problems."""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from tests.real_fixtures import REAL_FIXTURES

from db import queries
from db.store import session_scope
from engine.importers.base import ImportFailed, apply_plan
from engine.importers.tasty import read_tasty
from engine.evaluation.recipe import RECIPE_PROMPT, format_recipe, parse_recipe

REAL = REAL_FIXTURES / "tasty_videos"

INGREDIENTS = ("8 oz;spaghetti", "2 tablespoons;butter, melted", ";salt, to taste")
STEPS = ("Boil the spaghetti.", "Melt the butter.", "Toss the pasta in the butter.")
UPDATED = ("Boil the spaghetti until al dente.", "Melt the butter in a pan.",
           "Toss the pasta with the butter and salt.")
ALIGNMENT = "1,10\n-1,-1\n11,30\n"


def recipe_xml(slug: str, *, title: str | None = "Garlic Butter Pasta",
               ingredients: tuple[str, ...] | None = INGREDIENTS,
               steps: tuple[str, ...] | None = STEPS,
               updated: tuple[str, ...] | None = UPDATED) -> str:
    """recipe.xml as fs_decode_xml.py leaves it: one element a line under <recipe>."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<recipe>",
             f"<url>https://tasty.co/recipe/{slug}</url>"]
    if title is not None:
        parts.append(f"<title>{escape(title)}</title>")
    if ingredients is not None:
        parts += ["<ingredients>"] + [f"<ingredient>{escape(i)}</ingredient>"
                                      for i in ingredients] + ["</ingredients>"]
    if steps is not None:
        parts += ["<steps>"] + [f"<step>{escape(s)}</step>" for s in steps] + ["</steps>"]
    if updated is not None:
        parts += ["<steps_updated>"] + [f"<steps_updated>{escape(s)}</steps_updated>"
                                        for s in updated] + ["</steps_updated>"]
    parts += [("<video><low>https://example.invalid/low.mp4</low>"
              "<high>https://example.invalid/high.mp4</high></video>"), "</recipe>"]
    return "\n".join(parts) + "\n"


def make_recipe(root: Path, slug: str, *, xml: str | None = None, alignment: str | None = ALIGNMENT,
                fps: str | None = "25.0\n", video: bool = True, **xml_fields) -> Path:
    folder = root / slug
    folder.mkdir(parents=True)
    (folder / "recipe.xml").write_text(xml if xml is not None else recipe_xml(slug, **xml_fields))
    if alignment is not None:
        (folder / "csvalignment.dat").write_text(alignment)
    if fps is not None:
        (folder / "fps.txt").write_text(fps)
    if video:
        (folder / "recipe_video.mp4").write_bytes(b"")
    return folder


def test_a_recipe_folder_becomes_a_video_sample_asking_for_its_recipe(tmp_path):
    folder = make_recipe(tmp_path, "garlic-butter-pasta")
    plan = read_tasty(tmp_path)
    assert plan.problems == []
    [dataset] = plan.datasets
    assert (dataset.name, dataset.modality, dataset.source, dataset.purpose) == (
        "tasty", "video", "tasty", "train")
    [sample] = dataset.samples
    assert (sample.external_id, sample.group, sample.split, sample.modality) == (
        "garlic-butter-pasta", "garlic-butter-pasta", "train", "video")
    assert sample.prompt == RECIPE_PROMPT
    assert sample.media_path == str(folder.resolve() / "recipe_video.mp4")
    assert sample.answer == format_recipe(
        "Garlic Butter Pasta",
        ["8 oz spaghetti", "2 tablespoons butter, melted", "salt, to taste"], UPDATED)
    recipe = parse_recipe(sample.answer)
    assert recipe.dish == "Garlic Butter Pasta" and recipe.steps == list(UPDATED)
    # Units of 5 frames at 25 fps: 1..10 is frames 1..50, 11..30 is frames 51..150.
    assert sample.meta["segments"] == [
        {"segment": [0.0, 2.0], "id": 0, "sentence": UPDATED[0]},
        {"segment": [2.0, 6.0], "id": 2, "sentence": UPDATED[2]},
    ]
    assert sample.meta["alignment_raw"] == [[1, 10], [-1, -1], [11, 30]]
    assert sample.meta["fps"] == 25.0
    assert sample.meta["url"] == "https://tasty.co/recipe/garlic-butter-pasta"
    assert sample.meta["ingredients_structured"] == [
        {"amount": "8 oz", "name": "spaghetti", "preparation": ""},
        {"amount": "2 tablespoons", "name": "butter", "preparation": "melted"},
        {"amount": "", "name": "salt", "preparation": "to taste"},
    ]


def test_recipe_quirks_are_read_as_the_official_scripts_read_them(tmp_path):
    make_recipe(
        tmp_path, "mac-and-cheese",
        title="Mac & Cheese",  # written &amp; in the XML
        ingredients=("1 cup;flour;125 g", "water", "  2 ; milk , warm  "),
        steps=("Cook.",), updated=None, alignment=None, fps="29.97\r\nsecond line\r\n")
    make_recipe(tmp_path, "crlf-pasta", alignment="1,2\r\n3,4\r\n-1,-1\r\n\r\n",
                updated=("Boil\n   the   water.", "Add pasta.", "Serve."))
    (tmp_path / ".cache").mkdir()  # hidden folders are not recipes
    plan = read_tasty(tmp_path)
    assert plan.problems == []
    crlf, mac = plan.datasets[0].samples  # folders in name order
    # Three fields: the official parser reads the third as a second amount.
    assert mac.meta["ingredients_structured"][0] == {
        "amount": "1 cup", "name": "flour", "preparation": "", "amount_alt": "125 g"}
    assert parse_recipe(mac.answer).ingredients == ["1 cup (125 g) flour", "water", "2 milk, warm"]
    # Without <steps_updated> the answer falls back to <steps>; without csvalignment.dat
    # there are no segments, and the summary says so.
    assert parse_recipe(mac.answer).steps == ["Cook."]
    assert parse_recipe(mac.answer).dish == "Mac & Cheese"
    assert mac.meta["segments"] == [] and mac.meta["alignment_raw"] is None
    assert mac.meta["fps"] == 29.97
    assert any("1 recipes have no csvalignment.dat" in note for note in plan.notes)
    assert crlf.meta["alignment_raw"] == [[1, 2], [3, 4], [-1, -1]]
    assert crlf.meta["segments"][0]["sentence"] == "Boil the water."


def _problems(tmp_path: Path, **recipe) -> list[str]:
    make_recipe(tmp_path, "good-recipe")
    make_recipe(tmp_path, "bad-recipe", **recipe)
    plan = read_tasty(tmp_path)
    # The bad recipe is left out of the plan, so --skip-bad imports only the good one.
    assert [s.external_id for s in plan.datasets[0].samples] == ["good-recipe"]
    return [str(p) for p in plan.problems]


BAD = "bad-recipe"


@pytest.mark.parametrize(("recipe", "where", "expected"), [
    ({"xml": "<recipe>\n<title>Tea & Toast</title>\n</recipe>\n"}, "recipe.xml:2",
     "expected well-formed XML, found not well-formed (invalid token) at column 13"),
    ({"xml": ""}, "recipe.xml:1", "expected well-formed XML, found no element found"),
    ({"title": None}, "recipe.xml [title]", "expected the dish name in <title>"),
    ({"title": "  "}, "recipe.xml [title]", "expected the dish name in <title>"),
    ({"ingredients": None}, "recipe.xml [ingredients]", "expected <ingredients> with"),
    ({"ingredients": ()}, "recipe.xml [ingredients]", "expected <ingredients> with"),
    ({"steps": None, "updated": None, "alignment": None}, "recipe.xml [steps]",
     "expected <steps_updated> or <steps>"),
    ({"updated": ("Boil.", "", "Serve.")}, "recipe.xml [steps_updated[1]]",
     "expected text in <steps_updated>, found it empty"),
    ({"alignment": "1,10\n11,30\n"}, "csvalignment.dat",
     "expected one line per step in <steps_updated> (3), found 2"),
    ({"alignment": "1,10\nstart,end\n11,30\n"}, "csvalignment.dat:2",
     "expected `start,end` as two integers, found 'start,end'"),
    ({"alignment": "1,10\n11;30\n11,30\n"}, "csvalignment.dat:2",
     "expected `start,end` as two integers, found '11;30'"),
    ({"alignment": "1,10\n11,30,40\n11,30\n"}, "csvalignment.dat:2", "two integers"),
    ({"alignment": "1,10\n-1,-1\n30,11\n"}, "csvalignment.dat:3",
     "expected start <= end, found '30,11'"),
    ({"alignment": "1,10\n-1,5\n11,30\n"}, "csvalignment.dat:2",
     "expected -1,-1 for a step not shown or two non-negative values, found '-1,5'"),
    ({"fps": "0\n"}, "fps.txt:1", "expected a positive number of frames per second, found '0'"),
    ({"fps": "-25\n"}, "fps.txt:1", "found '-25'"),
    ({"fps": "twenty-five\n"}, "fps.txt:1", "found 'twenty-five'"),
    ({"fps": ""}, "fps.txt:1", "found ''"),
    ({"fps": "nan\n"}, "fps.txt:1", "found 'nan'"),
    ({"fps": None}, "fps.txt", "expected the video's frames per second"),
    ({"video": False}, "recipe_video.mp4", "expected the recipe's video, found no such file"),
])
def test_each_bad_recipe_is_a_problem_naming_file_and_line_or_key(tmp_path, recipe, where,
                                                                  expected):
    problems = _problems(tmp_path, **recipe)
    folder = tmp_path.resolve() / BAD
    assert any(p.startswith(f"{folder}/{where}: ") and expected in p for p in problems), problems


def test_an_undecoded_recipe_says_how_to_decode_it(tmp_path):
    folder = make_recipe(tmp_path, "encoded-only")
    (folder / "recipe.xml").rename(folder / "recipe_encoded.xml")
    [problem] = read_tasty(tmp_path).problems
    assert "found only recipe_encoded.xml" in str(problem) and "fs_decode_xml.py" in str(problem)


def test_a_split_file_picks_the_recipes_names_the_split_and_flags_unknown_slugs(tmp_path):
    recipes = tmp_path / "ALL_RECIPES_without_videos"
    for slug in ("a-cake", "b-soup", "c-salad"):
        make_recipe(recipes, slug)
    splits = tmp_path / "SPLITS" / "split_4022"
    splits.mkdir(parents=True)
    (splits / "TRAIN_4022.txt").write_text("c-salad\na-cake\n\nc-salad\n")
    (splits / "TEST_4022.txt").write_text("b-soup\nno-such-recipe")  # no trailing newline
    (splits / "training_set.txt").write_text("a-cake\n")  # split_2511's naming

    train = read_tasty(tmp_path, split_file=splits / "TRAIN_4022.txt")
    assert train.problems == []
    [dataset] = train.datasets
    assert (dataset.name, dataset.purpose) == ("tasty-train", "train")
    assert dataset.root == str(recipes.resolve())
    assert [(s.external_id, s.split) for s in dataset.samples] == [
        ("c-salad", "train"), ("a-cake", "train")]
    assert train.left_out == [("c-salad", ("listed again on line 4 of TRAIN_4022.txt "
                                          "(first on line 1)"))]

    test = read_tasty(tmp_path, split_file=splits / "TEST_4022.txt", name="tasty-heldout")
    assert (test.datasets[0].name, test.datasets[0].purpose) == ("tasty-heldout", "eval")
    assert [(s.external_id, s.split) for s in test.datasets[0].samples] == [("b-soup", "test")]
    [problem] = test.problems
    assert str(problem) == (f"{(splits / 'TEST_4022.txt').resolve()}:2: expected a recipe "
                            f"folder no-such-recipe/ in {recipes.resolve()}, found none")

    v1 = read_tasty(tmp_path, split_file=splits / "training_set.txt")
    assert v1.datasets[0].samples[0].split == "train"
    # Without a split file every recipe folder is imported, SPLITS/ is not one of them.
    assert len(read_tasty(tmp_path).datasets[0].samples) == 3


def test_a_missing_root_or_split_file_is_a_problem(tmp_path):
    assert "expected the Tasty Videos folder" in str(read_tasty(tmp_path / "nope").problems[0])
    [problem] = read_tasty(tmp_path, split_file=tmp_path / "VAL_4022.txt").problems
    assert str(problem).startswith(f"{tmp_path.resolve()}/VAL_4022.txt: expected a split file")


def test_progress_counts_recipes(tmp_path):
    for slug in ("a", "b"):
        make_recipe(tmp_path, slug)
    calls = []
    read_tasty(tmp_path, progress=lambda done, total, what: calls.append((done, total, what)))
    assert calls == [(1, 2, "a"), (2, 2, "b")]


def test_a_plan_applies_to_the_store_all_or_nothing(ddft_store, tmp_path):
    make_recipe(tmp_path, "garlic-butter-pasta")
    make_recipe(tmp_path, "no-video", video=False)
    plan = read_tasty(tmp_path)
    with pytest.raises(ImportFailed, match="no-video/recipe_video.mp4"):
        apply_plan(ddft_store, plan)
    with session_scope(ddft_store) as session:
        assert queries.get_dataset(session, name="tasty") is None
    [summary] = apply_plan(ddft_store, plan, skip_bad=True)
    assert (summary.dataset, summary.imported, summary.skipped) == ("tasty", 1, 0)
    assert apply_plan(ddft_store, plan, skip_bad=True)[0].skipped == 1
    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name="tasty")
        [sample] = queries.list_samples(session, dataset_id=dataset.id)
        assert (dataset.source, sample.external_id, sample.prompt) == (
            "tasty", "garlic-butter-pasta", RECIPE_PROMPT)
        assert sample.meta["segments"][1]["segment"] == [2.0, 6.0]


@pytest.mark.skipif(not (REAL / "ALL_RECIPES.txt").exists(), reason="real Tasty excerpt absent")
def test_real_recipe_names_make_folders_and_a_split_file_the_reader_accepts(tmp_path):
    slugs = (REAL / "ALL_RECIPES.txt").read_text().splitlines()
    assert len(slugs) == 4022
    assert all(re.fullmatch(r"[a-z0-9-]+", slug) for slug in slugs)
    chosen = slugs[:20]
    recipes = tmp_path / "ALL_RECIPES_without_videos"
    for slug in chosen:
        make_recipe(recipes, slug)
    split_file = tmp_path / "SPLITS" / "split_4022" / "TRAIN_4022.txt"
    split_file.parent.mkdir(parents=True)
    # As the real list is written: LF, no trailing newline.
    split_file.write_text("\n".join(chosen))
    plan = read_tasty(tmp_path, split_file=split_file)
    assert plan.problems == []
    samples = plan.datasets[0].samples
    assert [s.external_id for s in samples] == chosen
    assert samples[0].meta["url"] == f"https://tasty.co/recipe/{chosen[0]}"
