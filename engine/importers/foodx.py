"""Read FoodX-251 (iFood 2019) dish images into an import plan: one image, one "what dish?" pair."""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.importers.base import (
    MEDIA_ROOTS_KEY,
    ImportPlan,
    PlannedDataset,
    PlannedSample,
    Problem,
    Progress,
    media_roots,
    outside_media_roots,
    read_text_file,
)
from engine.evaluation.recipe import DISH_PROMPT

SPLITS = ("train", "val", "test")
SOURCE = "foodx251"
PROGRESS_EVERY = 5000
# Header lines seen in copies of the annotation files (the official ones have none).
_CLASS_HEADER_IDS = {"classid", "class_id", "id", "label"}




def read_class_list(path: Path, problems: list[Problem]) -> dict[int, str]:
    """Class id → class name as written (`apple_pie`) from a `<id> <name>` per line file; bad
    lines become problems. Raises nothing."""
    text = read_text_file(path, problems, "the class list (`<id> <name>` per line)")
    if text is None:
        return {}
    classes: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if number == 1 and fields[0].lower() in _CLASS_HEADER_IDS:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            problems.append(Problem(str(path), f"expected `<id> <name>` with an integer id, "
                                               f"found {line.strip()!r}", line=number))
            continue
        class_id = int(fields[0])
        if class_id in classes:
            problems.append(Problem(str(path), f"expected each class id once, found {class_id} "
                                               f"again (first {classes[class_id]!r})",
                                    line=number))
            continue
        classes[class_id] = fields[1]
    return classes


def dish_name(class_name: str) -> str:
    """A class name in words: "apple_pie" → "apple pie"."""
    return " ".join(class_name.replace("_", " ").split())


def _select_classes(
    wanted: Sequence[str | int], classes: dict[int, str], class_file: Path,
    problems: list[Problem],
) -> set[int]:
    by_name = {}
    for class_id, name in classes.items():
        by_name[name.lower()] = class_id
        by_name[dish_name(name).lower()] = class_id
    selected = set()
    for item in wanted:
        text = str(item).strip()
        if text.isdigit() and int(text) in classes:
            selected.add(int(text))
        elif dish_name(text).lower() in by_name:
            selected.add(by_name[dish_name(text).lower()])
        else:
            problems.append(Problem(str(class_file), f"expected a class name or id from the class "
                                                     f"list, found {text!r}", key=text))
    return selected


def _read_rows(
    info_path: Path, text: str, class_names: dict[int, str], selected: set[int] | None,
    problems: list[Problem], progress: Progress | None,
) -> list[tuple[str, int, int]]:
    """(image name, line, class id) of every good row of a selected class, in file order."""
    lines = text.splitlines()
    total = len(lines)
    info = str(info_path)
    first_line: dict[str, int] = {}
    rows: list[tuple[str, int, int]] = []
    for number, line in enumerate(lines, 1):
        if progress is not None and number % PROGRESS_EVERY == 0:
            progress(number, total, f"reading {info_path.name}")
        fields = line.strip().split(",")
        if fields == [""]:
            continue
        image = fields[0].strip()
        label = fields[1].strip() if len(fields) == 2 else ""
        if len(fields) != 2 or not image or not label.isdigit():
            if number == 1 and len(fields) == 2 and "." not in image and not label.isdigit():
                continue  # a header line: `ImageID,ClassID`, `img_name,label`
            problems.append(Problem(info, f"expected `image_name,label` with an integer "
                                          f"label, found {line.strip()!r}", line=number))
            continue
        class_id = int(label)
        if class_id not in class_names:
            known = f"ids {min(class_names)}-{max(class_names)}"
            problems.append(Problem(info, f"expected a label from class_list.txt ({known}), "
                                          f"found {class_id}", line=number))
            continue
        if image in first_line:
            problems.append(Problem(info, f"expected each image once, found {image} again "
                                          f"(first on line {first_line[image]})", line=number))
            continue
        first_line[image] = number
        if selected is None or class_id in selected:
            rows.append((image, number, class_id))
    if progress is not None:
        progress(total, total, f"read {info_path.name}")
    return rows


def _plan_images(
    rows: list[tuple[str, int, int]], class_names: dict[int, str], on_disk: set[str],
    image_dir: Path, split: str, per_class: int | None, info_path: Path,
    problems: list[Problem], links: set[str] = frozenset(), roots: list[str] | None = None,
) -> tuple[list[PlannedSample], int]:
    """The samples in image-name order, capped per class, and how many the cap left out. An
    image that is a link (`links`) resolving outside `roots` is a problem, not a sample."""
    info = str(info_path)
    rows.sort()
    answers = {class_id: dish_name(class_name) for class_id, class_name in class_names.items()}
    taken: Counter[int] = Counter()
    capped = 0
    prefix = str(image_dir) + os.sep
    samples = []
    for image, number, class_id in rows:
        if per_class is not None and taken[class_id] >= per_class:
            capped += 1
            continue
        taken[class_id] += 1
        if image not in on_disk:
            problems.append(Problem(info, f"expected the image {image_dir.name}/{image}, "
                                          "found no such file", line=number))
            continue
        if image in links and roots is not None:
            outside = outside_media_roots(prefix + image, roots)
            if outside is not None:
                problems.append(Problem(info, outside, line=number))
                continue
        samples.append(PlannedSample(
            external_id=image, modality="image", prompt=DISH_PROMPT, answer=answers[class_id],
            split=split, media_path=prefix + image, group=class_names[class_id],
            meta={"label": class_id},
        ))
    return samples, capped


@contextmanager
def _collector_paused():
    # Planning 158,000 rows makes ~1 million objects and no reference cycles; the cyclic
    # collector would rescan them hundreds of times on the way, a third of the run time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_foodx(
    root: Path,
    *,
    split: str = "train",
    classes: Sequence[str | int] | None = None,
    per_class: int | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> ImportPlan:
    """Plan the images of one FoodX-251 split as image samples that ask for the dish.

    Layout: `root/annot/class_list.txt` (`<id> <name>`), `root/annot/<split>_info.csv`
    (`image_name,label` rows; a header line such as `ImageID,ClassID` or `img_name,label` is
    accepted), images in `root/<split>_set/`. Each image becomes a sample with DISH_PROMPT, the
    dish name in words as its answer and the class name as its group. `classes` keeps only the
    named classes (words, underscores or ids); `per_class` keeps the first N images of each class
    by image name.

    The test split publishes image names only: it is planned as nothing, with a note saying so
    and no problems, because a sample without an answer can be neither trained on nor scored.

    Bad input (a missing file or folder, a malformed row, an unknown label or class filter, a
    duplicate image, a missing image) becomes a Problem naming the file and line. Raises
    ValueError for a `split` other than train, val or test, or a `per_class` below 1.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be at least 1, not {per_class}")
    root = Path(root).expanduser().resolve()
    plan = ImportPlan()
    if not root.is_dir():
        plan.problems.append(Problem(str(root), "expected the FoodX-251 folder (with annot/ and "
                                                "<split>_set/), found no such folder"))
        return plan
    annot = root / "annot"
    if not annot.is_dir():
        plan.problems.append(Problem(str(annot), "expected the annotation folder (class_list.txt, "
                                                 "<split>_info.csv), found no such folder"))
        return plan
    info_path = annot / f"{split}_info.csv"
    if split == "test":
        text = read_text_file(info_path, [], "")
        count = sum(1 for line in text.splitlines() if line.strip()) if text else 0
        found = f"{count} image names and " if text is not None else ""
        plan.notes.append(f"FoodX-251 test: {found}no labels (the challenge never published "
                          "them), so nothing was imported; use split train or val")
        return plan

    class_file = annot / "class_list.txt"
    class_names = read_class_list(class_file, plan.problems)
    selected = (_select_classes(classes, class_names, class_file, plan.problems)
                if classes is not None else None)
    text = read_text_file(info_path, plan.problems, "`image_name,label` rows")
    image_dir = root / f"{split}_set"
    links: set[str] = set()
    try:
        # One listing instead of a stat per row: 158,000 stats take far longer than a scan.
        with os.scandir(image_dir) as entries:
            listed = [(entry.name, entry.is_symlink()) for entry in entries]
        on_disk: set[str] | None = {name for name, _ in listed}
        # Only links need resolving one by one (a realpath per image would cost a stat each).
        links = {name for name, link in listed if link}
    except FileNotFoundError:
        plan.problems.append(Problem(str(image_dir), "expected the image folder, found no such "
                                                     "folder"))
        on_disk = None
    except NotADirectoryError:
        plan.problems.append(Problem(str(image_dir), "expected the image folder, found a file"))
        on_disk = None
    if text is None or not class_names:
        return plan

    with _collector_paused():
        rows = _read_rows(info_path, text, class_names, selected, plan.problems, progress)
        if on_disk is None:
            return plan
        roots = media_roots(root)
        folder_outside = outside_media_roots(image_dir, roots)
        if folder_outside is not None:
            plan.problems.append(Problem(str(image_dir), folder_outside))
            return plan
        samples, capped = _plan_images(rows, class_names, on_disk, image_dir, split, per_class,
                                       info_path, plan.problems, links, roots)
    n_classes = len({sample.group for sample in samples})
    plan.datasets.append(PlannedDataset(
        name=name or f"{SOURCE}-{split}", modality="image", purpose="train", source=SOURCE,
        root=str(root),
        description=f"FoodX-251 (iFood 2019) {split} images: what is the dish in this image?",
        meta={MEDIA_ROOTS_KEY: roots, "split": split, "classes": n_classes,
              "per_class": per_class,
              "class_filter": sorted(selected) if selected is not None else None},
        samples=samples,
    ))
    plan.notes.append(f"{len(samples)} images from {n_classes} classes")
    if capped:
        plan.notes.append(f"{capped} images left out by per_class={per_class}")
    return plan
