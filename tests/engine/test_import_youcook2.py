"""Reading YouCook2 annotations, videos on disk and user reference recipes into an eval plan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.real_fixtures import REAL_FIXTURES

from db import queries
from db.store import session_scope
from engine.importers.base import apply_plan
from engine.importers.youcook2 import read_youcook2
from engine.evaluation.recipe import RECIPE_PROMPT, format_recipe, parse_recipe

REAL = REAL_FIXTURES / "youcook2"
# The real label file has a stray trailing space after one name (408).
LABELS = "101,BLT\n102,thai red curry chicken \n103,burger\n"


def segment(start, end, index, sentence):
    return {"segment": [start, end], "id": index, "sentence": sentence}


def video(subset, recipe_type, duration, *sentences, url=None, video_id=""):
    return {
        "duration": duration, "subset": subset, "recipe_type": recipe_type,
        "annotations": [segment(10 * i, 10 * i + 5, i, s) for i, s in enumerate(sentences)],
        "video_url": url or f"https://www.youtube.com/watch?v={video_id}",
    }


DATABASE = {
    "blt0000000a": video("validation", "101", 287.34000000000003, "toast the  bread",
                         "stack bacon lettuce and tomato"),
    "-blt00000b": video("validation", "101", 120.0, "fry the bacon", "assemble"),
    "_curry0000c": video("validation", "102", 300.5, "fry the paste", "add coconut milk",
                         url="cc"),
    "curry0000d": video("validation", "102", 200, "simmer the curry"),
    "burger000e": video("validation", "103", 100, "grill the patty"),
    "train0000f": video("training", "101", 90, "make a blt"),
}
# (subset, recipe type, id, extension); curry0000d has no file, as many YouCook2 videos do.
ON_DISK = [
    ("validation", "101", "blt0000000a", ".mp4"), ("validation", "101", "-blt00000b", ".mkv"),
    ("validation", "102", "_curry0000c", ".webm"), ("validation", "103", "burger000e", ".mp4"),
    ("training", "101", "train0000f", ".mp4"), ("testing", "103", "-test0000g", ".mp4"),
]


def write_youcook2(root: Path, database=None, *, annotations_at="annotations",
                   on_disk=ON_DISK, labels=LABELS) -> Path:
    """A YouCook2 folder as the official archive unpacks, with empty files for raw videos."""
    folder = root / annotations_at if annotations_at else root
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "youcookii_annotations_trainval.json").write_text(
        json.dumps({"database": DATABASE if database is None else database}))
    (root / "label_foodtype.csv").write_text(labels)
    (root / "splits").mkdir()
    (root / "splits" / "test_list.txt").write_text("103/-test0000g\n101/test0000h\n")
    for subset, recipe_type, video_id, extension in on_disk:
        path = root / "raw_videos" / subset / recipe_type / f"{video_id}{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


@pytest.fixture
def youcook2(tmp_path) -> Path:
    return write_youcook2(tmp_path / "YouCookII")


def samples_by_id(plan):
    return {s.external_id: s for s in plan.datasets[0].samples}


def test_validation_videos_on_disk_become_an_eval_set_with_annotated_steps(youcook2):
    calls = []
    plan = read_youcook2(youcook2, progress=lambda *call: calls.append(call))
    assert calls[-1][:2] == (len(DATABASE), len(DATABASE))
    assert plan.problems == []
    [dataset] = plan.datasets
    assert (dataset.name, dataset.purpose, dataset.modality, dataset.source) == (
        "youcook2-validation", "eval", "video", "youcook2")
    # Sorted by recipe type, then video id; the id starting with "-" is just a name.
    assert [s.external_id for s in dataset.samples] == [
        "-blt00000b", "blt0000000a", "_curry0000c", "burger000e"]
    blt = samples_by_id(plan)["blt0000000a"]
    assert (blt.modality, blt.prompt, blt.group, blt.split) == (
        "video", RECIPE_PROMPT, "101", "validation")
    assert blt.answer == format_recipe("BLT", [], ["toast the bread",
                                                    "stack bacon lettuce and tomato"])
    assert blt.duration_s == 287.34
    assert blt.media_path == str(youcook2.resolve() / "raw_videos/validation/101/blt0000000a.mp4")
    assert blt.meta == {
        "segments": DATABASE["blt0000000a"]["annotations"], "recipe_type": "101",
        "recipe_name": "BLT", "subset": "validation", "reference_source": "annotated-steps"}
    curry = samples_by_id(plan)["_curry0000c"]
    assert curry.media_path.endswith("/102/_curry0000c.webm")
    assert curry.meta["recipe_name"] == "thai red curry chicken"
    assert parse_recipe(curry.answer).dish == "thai red curry chicken"
    assert samples_by_id(plan)["-blt00000b"].media_path.endswith("/101/-blt00000b.mkv")
    assert plan.left_out == [("curry0000d", ("not on disk: no validation/102/curry0000d with any "
                              "of .mp4, .mkv, .webm, .mov, .avi, .m4v under "
                              f"{youcook2.resolve()}/raw_videos"))]
    assert plan.notes == ["4 videos from 3 recipes",
                          "references: 0 from the user's file, 4 from annotated steps",
                          "1 video left out: 1 not on disk"]


def test_annotations_at_the_root_and_a_flat_video_folder_are_found(tmp_path):
    root = write_youcook2(tmp_path / "yc", annotations_at="", on_disk=[])
    flat = tmp_path / "my videos"
    flat.mkdir()
    (flat / "curry0000d.mkv").touch()
    plan = read_youcook2(root, videos=flat)
    assert plan.problems == []
    assert [s.media_path for s in plan.datasets[0].samples] == [str(flat / "curry0000d.mkv")]


def test_an_annotations_path_and_several_subsets(tmp_path, youcook2):
    moved = tmp_path / "elsewhere.json"
    shutil.move(youcook2 / "annotations" / "youcookii_annotations_trainval.json", moved)
    plan = read_youcook2(youcook2, annotations=moved, subsets=("train", "validation", "val"))
    assert plan.datasets[0].name == "youcook2-training-validation"
    train = samples_by_id(plan)["train0000f"]
    assert (train.split, train.meta["subset"]) == ("train", "training")
    assert plan.notes[0] == "5 videos from 3 recipes"


REFERENCES = {"recipes": {
    "101": {"name": "Classic BLT", "ingredients": ["4 slices bacon", "2 slices bread"],
            "steps": ["Fry the bacon.", "Toast the  bread.", "Stack."]},
    "-blt00000b": {"ingredients": ["6 slices bacon"], "steps": ["Fry a lot of bacon."]},
    "burger": {"name": "Cheeseburger", "steps": ["Grill."]},
}}


def test_references_per_video_win_over_per_recipe_type_and_others_are_left_out(youcook2,
                                                                              tmp_path):
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(REFERENCES))
    plan = read_youcook2(youcook2, references=path)
    assert plan.problems == []
    samples = samples_by_id(plan)
    assert samples["blt0000000a"].answer == format_recipe(
        "Classic BLT", ["4 slices bacon", "2 slices bread"],
        ["Fry the bacon.", "Toast the bread.", "Stack."])
    # A per-video entry without a name takes the YouCook2 recipe name.
    assert samples["-blt00000b"].answer == format_recipe("BLT", ["6 slices bacon"],
                                                         ["Fry a lot of bacon."])
    # A key may be a recipe name from label_foodtype.csv.
    assert samples["burger000e"].answer == format_recipe("Cheeseburger", [], ["Grill."])
    assert {s.meta["reference_source"] for s in samples.values()} == {"user"}
    assert "_curry0000c" not in samples
    assert ("_curry0000c", "no reference recipe for it or recipe type 102 in refs.json") in (
        plan.left_out)
    assert plan.notes[0] == "3 videos from 2 recipes"
    assert plan.notes[2] == "2 videos left out: 1 not on disk, 1 without a reference recipe"


def test_without_require_reference_the_rest_fall_back_to_annotated_steps(youcook2, tmp_path):
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(REFERENCES))
    plan = read_youcook2(youcook2, references=path, require_reference=False)
    sources = {s.external_id: s.meta["reference_source"] for s in plan.datasets[0].samples}
    assert sources == {"-blt00000b": "user", "blt0000000a": "user", "_curry0000c":
                       "annotated-steps", "burger000e": "user"}
    assert plan.notes[1] == "references: 3 from the user's file, 1 from annotated steps"


def test_references_as_csv_with_pipe_separated_lists(youcook2, tmp_path):
    path = tmp_path / "refs.csv"
    path.write_text(
        "key,name,ingredients,steps\n"
        '102,Red curry,"2 tbsp red curry paste|400 ml coconut milk, full fat",Fry.|Simmer.\n'
        "\n"
        "_curry0000c,,1 chicken breast,Cook it.\n")
    plan = read_youcook2(youcook2, references=path)
    assert plan.problems == []
    assert [s.external_id for s in plan.datasets[0].samples] == ["_curry0000c"]
    assert plan.datasets[0].samples[0].answer == format_recipe(
        "thai red curry chicken", ["1 chicken breast"], ["Cook it."])


def test_min_videos_per_recipe_and_limit(youcook2):
    plan = read_youcook2(youcook2, min_videos_per_recipe=2)
    assert [s.external_id for s in plan.datasets[0].samples] == ["-blt00000b", "blt0000000a"]
    assert ("burger000e", "recipe type 103 has 1 videos, fewer than min_videos_per_recipe=2") in (
        plan.left_out)
    assert plan.notes == [
        "2 videos from 1 recipe", "references: 0 from the user's file, 2 from annotated steps",
        "3 videos left out: 1 not on disk, 2 in recipes with fewer than 2 videos"]
    limited = read_youcook2(youcook2, limit=3)
    assert [s.external_id for s in limited.datasets[0].samples] == [
        "-blt00000b", "blt0000000a", "_curry0000c"]
    assert ("burger000e", "beyond limit=3") in limited.left_out


def test_test_videos_come_from_the_split_list_and_need_a_user_reference(youcook2, tmp_path):
    plan = read_youcook2(youcook2, subsets="test")
    assert plan.datasets[0].samples == []
    assert ("-test0000g", "no reference recipe and no annotated steps to fall back on") in (
        plan.left_out)
    path = tmp_path / "refs.json"
    path.write_text(json.dumps({"recipes": {"103": {"steps": ["Grill."]}}}))
    plan = read_youcook2(youcook2, subsets=["testing"], references=path)
    [sample] = plan.datasets[0].samples
    assert (sample.external_id, sample.split, sample.duration_s, sample.meta["segments"]) == (
        "-test0000g", "test", None, [])
    assert sample.media_path.endswith("raw_videos/testing/103/-test0000g.mp4")


def test_bad_annotations_are_problems_naming_the_video_and_key(tmp_path):
    database = {
        "nokey00001": {"duration": 1.0, "subset": "validation", "annotations": []},
        "badseg0002": video("validation", "101", 10, "a", "b"),
        "badseg0003": video("validation", "101", 10, "a"),
        "badtype004": video("validation", "999", 10, "a"),
        "nosubset05": {"duration": 1.0},
        "goodvid006": video("validation", "101", 10, "a"),
        "badtrain07": {"subset": "training"},  # not read for a validation import
    }
    database["badseg0002"]["annotations"][1]["segment"] = [30, 20]
    database["badseg0003"]["annotations"][0]["segment"] = [5]
    root = write_youcook2(tmp_path, database, on_disk=[("validation", "101", "goodvid006",
                                                        ".mp4")])
    path = root.resolve() / "annotations" / "youcookii_annotations_trainval.json"
    plan = read_youcook2(root)
    assert [str(p) for p in plan.problems] == [
        f"{path} [nokey00001]: expected the key 'recipe_type' in video nokey00001, found none",
        (f"{path} [badseg0002]: expected annotation 1 segment to be [start, end] with "
        "0 <= start <= end, found [30, 20]"),
        (f"{path} [badseg0003]: expected annotation 0 segment to be [start, end] with "
        "0 <= start <= end, found [5]"),
        f"{path} [badtype004]: expected a recipe_type from label_foodtype.csv, found '999'",
        (f"{path} [nosubset05]: expected an object with the key 'subset' in video nosubset05, "
        "found no 'subset' key"),
    ]
    assert [s.external_id for s in plan.datasets[0].samples] == ["goodvid006"]


def test_malformed_json_is_a_problem_with_line_and_column(tmp_path, youcook2):
    path = youcook2.resolve() / "annotations" / "youcookii_annotations_trainval.json"
    path.write_text('{"database": {\n  "abc": {"duration": 1,}\n}}')
    plan = read_youcook2(youcook2)
    assert [str(p) for p in plan.problems] == [
        (f"{path}:2: expected {{\"database\": {{video_id: {{...}}}}}}, found malformed JSON: "
        "Expecting property name enclosed in double quotes at column 25")]
    assert plan.datasets == []
    path.write_text('{"videos": {}}')
    assert [str(p) for p in read_youcook2(youcook2).problems] == [
        (f'{path} [database]: expected {{"database": {{video_id: {{...}}}}}}, found no '
        '"database" object')]


def test_missing_and_bad_label_files_are_problems(tmp_path):
    root = write_youcook2(tmp_path / "a", labels="101,BLT\n102\nabc,soup\n101,again\n")
    labels = root.resolve() / "label_foodtype.csv"
    assert [str(p) for p in read_youcook2(root).problems][:3] == [
        f"{labels}:2: expected `id,name` with a numeric id, found '102'",
        f"{labels}:3: expected `id,name` with a numeric id, found 'abc,soup'",
        f"{labels}:4: expected each recipe type once, found 101 again",
    ]
    missing = tmp_path / "b"
    missing.mkdir()
    assert [str(p) for p in read_youcook2(missing).problems] == [
        (f"{missing}/label_foodtype.csv: expected `id,name` rows of recipe types, found no such "
        "file"),
        (f"{missing}/annotations/youcookii_annotations_trainval.json: expected "
        '{"database": {video_id: {...}}}, found no such file'),
    ]


@pytest.mark.parametrize("content, expected", [
    ('{"recipes": [}', (":1: expected a reference file {\"recipes\": {key: recipe}}, found "
                       "malformed JSON: Expecting value at column 14")),
    ('{"recipe": {}}', (' [recipes]: expected {"recipes": {key: {name, ingredients, steps}}}, '
                       'found no "recipes" object')),
    ('{"recipes": {"101": {"steps": []}}}', " [101]: expected at least one step, found none"),
    ('{"recipes": {"101": {"steps": ["a"], "ingredient": ["x"]}}}',
     " [101]: expected only the fields name, ingredients, steps, found 'ingredient'"),
    ('{"recipes": {"101": {"steps": "fry"}}}',
     " [101]: expected steps to be a list of text, found 'fry'"),
    ('{"recipes": {"nosuchvid": {"steps": ["a"]}}}',
     (" [nosuchvid]: expected a recipe type id, a recipe name from label_foodtype.csv or a "
     "video id, found 'nosuchvid'")),
    ('{"recipes": {"101": {"steps": ["a"]}, "BLT": {"steps": ["b"]}}}',
     " [BLT]: expected one reference per recipe type or video, found a second for 101"),
    ('{"recipes": {"101": {"steps": ["a"]}, "101": {"steps": ["b"]}}}',
     " [101]: expected each key once in an object, found it twice"),
])
def test_bad_json_references_are_problems(youcook2, tmp_path, content, expected):
    path = tmp_path / "refs.json"
    path.write_text(content)
    assert [str(p) for p in read_youcook2(youcook2, references=path).problems] == [
        f"{path}{expected}"]


def test_bad_csv_references_are_problems_with_their_line(youcook2, tmp_path):
    path = tmp_path / "refs.csv"
    path.write_text("key,name,steps\n101,BLT,fry\n")
    assert [str(p) for p in read_youcook2(youcook2, references=path).problems] == [
        f"{path}:1: expected the header key,name,ingredients,steps, found key,name,steps"]
    path.write_text("key,name,ingredients,steps\n101,BLT,bacon\n"
                    '102,Curry,"paste|milk\nand more",\n101,BLT,bacon,fry\n101,BLT,x,y\n'
                    ",x,y,z\n")
    assert [str(p) for p in read_youcook2(youcook2, references=path).problems] == [
        f"{path}:2: expected 4 columns (key,name,ingredients,steps), found 3",
        f"{path}:3 [102]: expected at least one step, found none",
        f"{path}:6 [101]: expected each key once, found '101' again (first on line 5)",
        f"{path}:7: expected a key (recipe type, recipe name or video id), found an empty cell",
    ]
    other = tmp_path / "refs.yaml"
    other.write_text("recipes: {}")
    assert [str(p) for p in read_youcook2(youcook2, references=other).problems] == [
        f"{other}: expected a .json or .csv reference file, found .yaml"]


def test_bad_arguments_are_programming_errors(youcook2):
    with pytest.raises(ValueError, match="subset must be one of"):
        read_youcook2(youcook2, subsets=["dev"])
    with pytest.raises(ValueError, match="min_videos_per_recipe must be at least 1"):
        read_youcook2(youcook2, min_videos_per_recipe=0)


def test_a_plan_applied_to_the_store_round_trips(ddft_store, youcook2):
    plan = read_youcook2(youcook2)
    [summary] = apply_plan(ddft_store, plan)
    assert (summary.imported, summary.skipped) == (4, 0)
    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name="youcook2-validation")
        assert dataset.purpose == "eval"
        stored = queries.list_samples(session, dataset_id=dataset.id)
        assert [(s.external_id, s.answer, s.meta, s.duration_s) for s in stored] == [
            (p.external_id, p.answer, p.meta, p.duration_s) for p in plan.datasets[0].samples]


@pytest.mark.skipif(not REAL.is_dir(), reason="real YouCook2 excerpt not present")
def test_the_real_annotation_and_label_files_read_cleanly(tmp_path):
    shutil.copy(REAL / "label_foodtype.csv", tmp_path / "label_foodtype.csv")
    shutil.copytree(REAL / "splits", tmp_path / "splits")
    present = [("validation", "405", "-dh_uGahzYo", ".mp4"),
               ("validation", "305", "_mL1gihKDw0", ".webm"),
               ("validation", "103", "JxCBGlPgr5o", ".mkv"),  # duration 293.40999999999997
               ("validation", "201", "mZwK0TBI1iY", ".mp4"),  # sentences with double spaces
               ("training", "205", "FHvZgt3ExDI", ".mp4"),  # video_url "cc"
               ("training", "311", "-xbTvALWCIg", ".mp4")]
    for subset, recipe_type, video_id, extension in present:
        path = tmp_path / "raw_videos" / subset / recipe_type / f"{video_id}{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    plan = read_youcook2(tmp_path, annotations=REAL / "youcookii_annotations_trainval.json",
                         subsets=("training", "validation"))
    assert plan.problems == []
    samples = samples_by_id(plan)
    assert set(samples) == {video_id for _, _, video_id, _ in present}
    assert plan.notes[0] == "6 videos from 6 recipes"
    assert len(plan.left_out) == 41 - 6
    assert samples["JxCBGlPgr5o"].duration_s == 293.41
    assert "  " not in samples["mZwK0TBI1iY"].answer
    recipe = parse_recipe(samples["-dh_uGahzYo"].answer)
    assert len(recipe.steps) == len(samples["-dh_uGahzYo"].meta["segments"]) == 9
    assert samples["FHvZgt3ExDI"].meta["reference_source"] == "annotated-steps"

    test = read_youcook2(tmp_path, annotations=REAL / "youcookii_annotations_trainval.json",
                         subsets=("testing",))
    assert test.problems == [] and len(test.left_out) == 210
