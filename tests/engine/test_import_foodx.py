"""Reading FoodX-251 (iFood 2019) annotation files and image folders into an import plan."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.real_fixtures import REAL_FIXTURES

from db import queries
from db.store import session_scope
from engine.importers.base import apply_plan
from engine.importers.foodx import dish_name, read_class_list, read_foodx
from engine.evaluation.recipe import DISH_PROMPT

REAL = REAL_FIXTURES / "ifood2019_foodx251"
CLASSES = {0: "macaron", 1: "apple_pie", 2: "hot_and_sour_soup"}
# Row order in the real files is not meaningful (train is grouped by class), so rows are shuffled.
TRAIN = [
    ("train_000005.jpg", 1), ("train_000001.jpg", 0), ("train_000004.jpg", 2),
    ("train_000002.jpg", 1), ("train_000000.jpg", 0), ("train_000003.jpg", 1),
]


def write_foodx(root: Path, *, rows=TRAIN, split="train", header: str | None = None,
                class_lines: list[str] | None = None, images=True, newline="\n") -> Path:
    """A FoodX-251 folder: annot/class_list.txt, annot/<split>_info.csv, <split>_set/ images."""
    from PIL import Image

    annot = root / "annot"
    annot.mkdir(parents=True, exist_ok=True)
    lines = class_lines if class_lines is not None else [f"{i} {n}" for i, n in CLASSES.items()]
    (annot / "class_list.txt").write_text("\n".join(lines) + "\n")
    csv_lines = ([header] if header else []) + [f"{image},{label}" for image, label in rows]
    (annot / f"{split}_info.csv").write_bytes((newline.join(csv_lines) + newline).encode())
    if images:
        folder = root / f"{split}_set"
        folder.mkdir(exist_ok=True)
        for image, _ in rows:
            Image.new("RGB", (4, 4), (200, 80, 40)).save(folder / image, format="JPEG")
    return root


def test_each_image_becomes_a_dish_question_answered_in_words(tmp_path):
    root = write_foodx(tmp_path / "foodx")
    plan = read_foodx(root)
    assert plan.problems == []
    [dataset] = plan.datasets
    assert (dataset.name, dataset.modality, dataset.purpose, dataset.source, dataset.root) == (
        "foodx251-train", "image", "train", "foodx251", str(root.resolve()))
    samples = dataset.samples
    assert [s.external_id for s in samples] == [f"train_00000{i}.jpg" for i in range(6)]
    first = samples[0]
    assert (first.modality, first.prompt, first.answer, first.group, first.split) == (
        "image", DISH_PROMPT, "macaron", "macaron", "train")
    assert first.meta == {"label": 0}
    assert Path(first.media_path).is_absolute() and Path(first.media_path).is_file()
    assert first.media_path == str(root.resolve() / "train_set" / "train_000000.jpg")
    soup = next(s for s in samples if s.meta["label"] == 2)
    assert (soup.answer, soup.group) == ("hot and sour soup", "hot_and_sour_soup")
    assert plan.notes == ["6 images from 3 classes"]


@pytest.mark.parametrize("header", [None, "ImageID,ClassID", "img_name,label"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_header_line_and_windows_line_ends_are_accepted(tmp_path, header, newline):
    root = write_foodx(tmp_path, header=header, newline=newline)
    plan = read_foodx(root)
    assert plan.problems == []
    assert len(plan.datasets[0].samples) == 6


def test_a_class_list_with_a_header_line_is_accepted(tmp_path):
    lines = ["ClassID ClassName"] + [f"{i} {n}" for i, n in CLASSES.items()]
    plan = read_foodx(write_foodx(tmp_path, class_lines=lines))
    assert plan.problems == [] and len(plan.datasets[0].samples) == 6


def test_the_val_split_reads_its_own_file_and_folder(tmp_path):
    root = write_foodx(tmp_path, split="val", rows=[("val_000000.jpg", 2)])
    plan = read_foodx(root, split="val", name="my-val")
    [sample] = plan.datasets[0].samples
    assert plan.datasets[0].name == "my-val"
    assert (sample.split, sample.answer) == ("val", "hot and sour soup")
    assert sample.media_path.endswith("val_set/val_000000.jpg")


@pytest.mark.parametrize("wanted", [["apple pie"], ["apple_pie"], ["Apple Pie"], [1], ["1"]])
def test_classes_keep_only_the_named_classes_by_words_underscores_or_id(tmp_path, wanted):
    plan = read_foodx(write_foodx(tmp_path), classes=wanted)
    assert plan.problems == []
    assert {s.answer for s in plan.datasets[0].samples} == {"apple pie"}
    assert len(plan.datasets[0].samples) == 3


def test_an_unknown_class_in_the_filter_is_a_problem(tmp_path):
    root = write_foodx(tmp_path)
    plan = read_foodx(root, classes=["macaron", "pizza"])
    assert [str(p) for p in plan.problems] == [
        (f"{root.resolve()}/annot/class_list.txt [pizza]: expected a class name or id from the "
        "class list, found 'pizza'")]


def test_per_class_keeps_the_first_images_by_name_whatever_the_row_order(tmp_path):
    plan = read_foodx(write_foodx(tmp_path / "a"), per_class=2)
    reversed_plan = read_foodx(write_foodx(tmp_path / "b", rows=TRAIN[::-1]), per_class=2)
    ids = [s.external_id for s in plan.datasets[0].samples]
    assert ids == [s.external_id for s in reversed_plan.datasets[0].samples]
    # apple pie (label 1) has images 2, 3, 5: the first two by name are kept.
    assert ids == ["train_000000.jpg", "train_000001.jpg", "train_000002.jpg",
                   "train_000003.jpg", "train_000004.jpg"]
    assert plan.notes == ["5 images from 3 classes", "1 images left out by per_class=2"]


def test_the_test_split_has_no_labels_so_nothing_is_planned_and_a_note_says_why(tmp_path):
    root = tmp_path / "foodx"
    (root / "annot").mkdir(parents=True)
    (root / "annot" / "test_info.csv").write_text("test_000001.jpg\ntest_000000.jpg\n")
    plan = read_foodx(root, split="test")
    assert plan.datasets == [] and plan.problems == []
    assert plan.notes == [("FoodX-251 test: 2 image names and no labels (the challenge never "
                          "published them), so nothing was imported; use split train or val")]


def test_bad_rows_are_problems_naming_file_and_line(tmp_path):
    rows = [("train_000000.jpg", 0), ("train_000001.jpg", "soup"), ("train_000002.jpg", 7),
            ("train_000000.jpg", 1), ("train_000003.jpg", 1)]
    root = write_foodx(tmp_path, rows=rows)
    (root / "train_set" / "train_000003.jpg").unlink()
    info = root.resolve() / "annot" / "train_info.csv"
    with info.open("a") as file:
        file.write("just_a_name.jpg\ntrain_000004.jpg,1,extra\n")
    plan = read_foodx(root)
    assert [str(p) for p in plan.problems] == [
        (f"{info}:2: expected `image_name,label` with an integer label, found "
        "'train_000001.jpg,soup'"),
        f"{info}:3: expected a label from class_list.txt (ids 0-2), found 7",
        f"{info}:4: expected each image once, found train_000000.jpg again (first on line 1)",
        f"{info}:6: expected `image_name,label` with an integer label, found 'just_a_name.jpg'",
        (f"{info}:7: expected `image_name,label` with an integer label, found "
        "'train_000004.jpg,1,extra'"),
        f"{info}:5: expected the image train_set/train_000003.jpg, found no such file",
    ]
    # The good row is still planned, for --skip-bad.
    assert [s.external_id for s in plan.datasets[0].samples] == ["train_000000.jpg"]


def test_a_bad_class_list_line_is_a_problem(tmp_path):
    root = write_foodx(tmp_path, class_lines=["0 macaron", "one apple_pie", "2 hot and sour",
                                              "0 beignet"])
    path = root.resolve() / "annot" / "class_list.txt"
    problems = [str(p) for p in read_foodx(root).problems]
    assert problems[:3] == [
        f"{path}:2: expected `<id> <name>` with an integer id, found 'one apple_pie'",
        f"{path}:3: expected `<id> <name>` with an integer id, found '2 hot and sour'",
        f"{path}:4: expected each class id once, found 0 again (first 'macaron')",
    ]


def test_missing_folders_and_files_are_problems(tmp_path):
    missing = tmp_path / "nowhere"
    assert [str(p) for p in read_foodx(missing).problems] == [
        (f"{missing}: expected the FoodX-251 folder (with annot/ and <split>_set/), found no "
        "such folder")]
    tmp_path.joinpath("empty").mkdir()
    assert [str(p) for p in read_foodx(tmp_path / "empty").problems] == [
        (f"{tmp_path}/empty/annot: expected the annotation folder (class_list.txt, "
        "<split>_info.csv), found no such folder")]

    root = write_foodx(tmp_path / "foodx", images=False)
    (root / "annot" / "class_list.txt").unlink()
    plan = read_foodx(root, split="train")
    assert [str(p) for p in plan.problems] == [
        (f"{root}/annot/class_list.txt: expected the class list (`<id> <name>` per line), found "
        "no such file"),
        f"{root}/train_set: expected the image folder, found no such folder",
    ]
    assert plan.datasets == []
    plan = read_foodx(root, split="val")
    assert f"{root}/annot/val_info.csv: expected `image_name,label` rows, found no such file" in [
        str(p) for p in plan.problems]


def test_progress_is_reported_every_few_thousand_rows(tmp_path):
    rows = [(f"train_{i:06d}.jpg", i % 3) for i in range(10_001)]
    root = write_foodx(tmp_path, rows=rows, images=False)
    calls = []
    read_foodx(root, progress=lambda done, total, message: calls.append((done, total)))
    assert calls == [(5000, 10_001), (10_000, 10_001), (10_001, 10_001)]


def test_bad_arguments_are_programming_errors(tmp_path):
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        read_foodx(tmp_path, split="validation")
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        read_foodx(tmp_path, per_class=0)


def test_a_plan_applied_to_the_store_round_trips(ddft_store, tmp_path):
    plan = read_foodx(write_foodx(tmp_path), per_class=2)
    [summary] = apply_plan(ddft_store, plan)
    assert (summary.dataset, summary.imported, summary.skipped) == ("foodx251-train", 5, 0)
    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name="foodx251-train")
        stored = queries.list_samples(session, dataset_id=dataset.id)
        assert (dataset.source, dataset.modality) == ("foodx251", "image")
        assert [(s.external_id, s.answer, s.group, s.meta, s.split) for s in stored] == [
            (p.external_id, p.answer, p.group, p.meta, p.split)
            for p in plan.datasets[0].samples]
    assert apply_plan(ddft_store, plan)[0].skipped == 5


@pytest.mark.skipif(not REAL.is_dir(), reason="real FoodX-251 excerpt not present")
def test_the_real_annotation_files_read_cleanly(tmp_path):
    annot = tmp_path / "annot"
    shutil.copytree(REAL / "annot", annot)
    for split in ("train", "val"):
        folder = tmp_path / f"{split}_set"
        folder.mkdir()
        for line in (annot / f"{split}_info.csv").read_text().splitlines():
            (folder / line.split(",")[0]).touch()
    problems: list = []
    classes = read_class_list(annot / "class_list.txt", problems)
    assert problems == [] and len(classes) == 251
    assert (classes[0], dish_name(classes[79])) == ("macaron", "macaroni and cheese")

    train = read_foodx(tmp_path)
    assert train.problems == []
    samples = train.datasets[0].samples
    assert len(samples) == 200 and len({s.group for s in samples}) == 200
    assert all("_" not in s.answer for s in samples)
    first = min(samples, key=lambda s: s.external_id)
    assert (first.external_id, first.meta["label"]) == ("train_000165.jpg", 94)

    val = read_foodx(tmp_path, split="val", classes=["macaron"])
    assert val.problems == []
    assert {s.answer for s in val.datasets[0].samples} <= {"macaron"}

    test = read_foodx(tmp_path, split="test")
    assert test.datasets == [] and "50 image names and no labels" in test.notes[0]
