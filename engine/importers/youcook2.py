"""Read YouCook2 videos on disk into an eval plan: each video with a reference recipe to match."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from engine.evaluation.recipe import RECIPE_PROMPT, format_recipe
from engine.media import VIDEO_SUFFIXES

SOURCE = "youcook2"
ANNOTATIONS_NAME = "youcookii_annotations_trainval.json"
# Subset names as the annotations and raw_videos/ spell them, with the short forms users type.
SUBSET_NAMES = {
    "training": "training", "train": "training",
    "validation": "validation", "val": "validation",
    "testing": "testing", "test": "testing",
}
SAMPLE_SPLITS = {"training": "train", "validation": "validation", "testing": "test"}
REFERENCE_FIELDS = ("name", "ingredients", "steps")
CSV_COLUMNS = ("key", "name", "ingredients", "steps")
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class ReferenceRecipe:
    """A reference recipe from the user's file; `name` None means the YouCook2 recipe name."""

    name: str | None
    ingredients: tuple[str, ...]
    steps: tuple[str, ...]


@dataclass
class _Video:
    video_id: str
    subset: str
    recipe_type: str
    duration_s: float | None
    segments: list[Any] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)


def _words(text: str) -> str:
    return " ".join(text.split())




def _read_json(path: Path, problems: list[Problem], what: str) -> Any:
    text = read_text_file(path, problems, what)
    if text is None:
        return None
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen = Counter(key for key, _ in items)
        duplicates.extend(key for key, count in seen.items() if count > 1)
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        problems.append(Problem(str(path), f"expected {what}, found malformed JSON: {exc.msg} "
                                           f"at column {exc.colno}", line=exc.lineno))
        return None
    for key in duplicates:
        problems.append(Problem(str(path), "expected each key once in an object, found it twice",
                                key=key))
    return data


def read_recipe_types(path: Path, problems: list[Problem]) -> dict[str, str]:
    """Recipe type id → recipe name from `label_foodtype.csv` (`id,name`, no header; names are
    stripped of the stray spaces the real file has). Raises nothing: bad rows are problems."""
    text = read_text_file(path, problems, "`id,name` rows of recipe types")
    if text is None:
        return {}
    names: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        type_id, comma, name = line.partition(",")
        type_id, name = type_id.strip(), _words(name)
        if not comma or not type_id.isdigit() or not name:
            problems.append(Problem(str(path), f"expected `id,name` with a numeric id, found "
                                               f"{line.strip()!r}", line=number))
        elif type_id in names:
            problems.append(Problem(str(path), f"expected each recipe type once, found {type_id} "
                                               f"again", line=number))
        else:
            names[type_id] = name
    if not names and not problems:
        problems.append(Problem(str(path), "expected `id,name` rows, found an empty file"))
    return names


def _read_split_list(path: Path, problems: list[Problem]) -> list[tuple[str, str]]:
    text = read_text_file(path, problems, "`<recipe_type>/<video_id>` lines")
    if text is None:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        recipe_type, slash, video_id = line.strip().partition("/")
        if not slash or not recipe_type.isdigit() or not video_id or "/" in video_id:
            problems.append(Problem(str(path), f"expected `<recipe_type>/<video_id>`, found "
                                               f"{line.strip()!r}", line=number))
            continue
        entries.append((recipe_type, video_id))
    return entries


def _reference(
    value: Any, path: Path, problems: list[Problem], *, key: str, line: int | None = None
) -> ReferenceRecipe | None:
    def bad(message: str) -> None:
        problems.append(Problem(str(path), message, line=line, key=key))

    if not isinstance(value, dict):
        bad(f"expected an object with {', '.join(REFERENCE_FIELDS)}, found {type(value).__name__}")
        return None
    unknown = sorted(set(value) - set(REFERENCE_FIELDS))
    if unknown:
        bad(f"expected only the fields {', '.join(REFERENCE_FIELDS)}, found {unknown[0]!r}")
        return None
    name = value.get("name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        bad(f"expected name to be text, found {name!r}")
        return None
    lists = {}
    for part in ("ingredients", "steps"):
        items = value.get(part, [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            bad(f"expected {part} to be a list of text, found {items!r}")
            return None
        lists[part] = tuple(_words(i) for i in items if i.strip())
    if not lists["steps"]:
        bad("expected at least one step, found none")
        return None
    return ReferenceRecipe(name=_words(name) if name else None, ingredients=lists["ingredients"],
                           steps=lists["steps"])


def read_references(
    path: Path, problems: list[Problem]
) -> dict[str, tuple[ReferenceRecipe, int | None]]:
    """Reference recipes from a user's .json or .csv file (docs/formats/youcook2-references.md),
    keyed as written, with the CSV line each came from. Raises nothing: bad entries are problems."""
    found: dict[str, tuple[ReferenceRecipe, int | None]] = {}
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _read_json(path, problems, 'a reference file {"recipes": {key: recipe}}')
        if data is None:
            return found
        recipes = data.get("recipes") if isinstance(data, dict) else None
        if not isinstance(recipes, dict):
            problems.append(Problem(str(path), 'expected {"recipes": {key: {name, ingredients, '
                                               'steps}}}, found no "recipes" object',
                                    key="recipes"))
            return found
        for key, value in recipes.items():
            recipe = _reference(value, path, problems, key=key)
            if recipe is not None:
                found[key.strip()] = (recipe, None)
        return found
    if suffix != ".csv":
        problems.append(Problem(str(path), f"expected a .json or .csv reference file, found "
                                           f"{path.suffix or 'no extension'}"))
        return found
    text = read_text_file(path, problems, f"a reference CSV with columns {','.join(CSV_COLUMNS)}")
    if text is None:
        return found
    reader = csv.reader(text.splitlines())
    header = [column.strip().lower() for column in next(reader, [])]
    if sorted(header) != sorted(CSV_COLUMNS):
        problems.append(Problem(str(path), f"expected the header {','.join(CSV_COLUMNS)}, found "
                                           f"{','.join(header) or 'nothing'}", line=1))
        return found
    end = reader.line_num
    for row in reader:
        line, end = end + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(Problem(str(path), f"expected {len(header)} columns "
                                               f"({','.join(header)}), found {len(row)}",
                                    line=line))
            continue
        cells = dict(zip(header, (cell.strip() for cell in row)))
        key = cells["key"]
        if not key:
            problems.append(Problem(str(path), "expected a key (recipe type, recipe name or "
                                               "video id), found an empty cell", line=line))
            continue
        if key in found:
            problems.append(Problem(str(path), f"expected each key once, found {key!r} again "
                                               f"(first on line {found[key][1]})", line=line,
                                    key=key))
            continue
        value = {
            "name": cells["name"] or None,
            "ingredients": cells["ingredients"].split("|"),
            "steps": cells["steps"].split("|"),
        }
        recipe = _reference(value, path, problems, key=key, line=line)
        if recipe is not None:
            found[key] = (recipe, line)
    return found


def _check_video(
    video_id: str, entry: Any, path: Path, recipe_types: dict[str, str], problems: list[Problem]
) -> _Video | None:
    def bad(message: str) -> None:
        problems.append(Problem(str(path), message, key=video_id))

    missing = [key for key in ("duration", "recipe_type", "annotations") if key not in entry]
    if missing:
        bad(f"expected the key {missing[0]!r} in video {video_id}, found none")
        return None
    duration = entry["duration"]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
        bad(f"expected duration to be seconds (a number >= 0), found {duration!r}")
        return None
    recipe_type = str(entry["recipe_type"]).strip()
    if recipe_type not in recipe_types:
        bad(f"expected a recipe_type from label_foodtype.csv, found {recipe_type!r}")
        return None
    annotations = entry["annotations"]
    if not isinstance(annotations, list):
        bad(f"expected annotations to be a list, found {type(annotations).__name__}")
        return None
    sentences = []
    for index, item in enumerate(annotations):
        if not isinstance(item, dict) or "segment" not in item or "sentence" not in item:
            what = sorted(item) if isinstance(item, dict) else type(item).__name__
            bad(f"expected annotation {index} to have segment and sentence, found {what}")
            return None
        segment = item["segment"]
        if not (isinstance(segment, list) and len(segment) == 2
                and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in segment)
                and 0 <= segment[0] <= segment[1]):
            bad(f"expected annotation {index} segment to be [start, end] with "
                f"0 <= start <= end, found {segment!r}")
            return None
        if not isinstance(item["sentence"], str):
            bad(f"expected annotation {index} sentence to be text, found {item['sentence']!r}")
            return None
        sentences.append(_words(item["sentence"]))
    return _Video(video_id=video_id, subset=entry["subset"], recipe_type=recipe_type,
                  duration_s=round(float(duration), 3), segments=annotations,
                  sentences=[s for s in sentences if s])


class _VideoFolder:
    """Finds `<subset>/<recipe_type>/<id>.<ext>` (or a flat `<id>.<ext>`) under the video root,
    listing each folder once."""

    def __init__(self, root: Path):
        self.root = root
        self._listings: dict[Path, set[str]] = {}

    def _names(self, folder: Path) -> set[str]:
        if folder not in self._listings:
            try:
                self._listings[folder] = set(os.listdir(folder))
            except OSError:
                self._listings[folder] = set()
        return self._listings[folder]

    def find(self, video: _Video) -> Path | None:
        for folder in (self.root / video.subset / video.recipe_type, self.root):
            names = self._names(folder)
            for extension in VIDEO_SUFFIXES:
                if video.video_id + extension in names:
                    return folder / (video.video_id + extension)
        return None


def read_youcook2(
    root: Path,
    *,
    references: Path | None = None,
    subsets: Sequence[str] = ("validation",),
    min_videos_per_recipe: int = 1,
    limit: int | None = None,
    name: str | None = None,
    annotations: Path | None = None,
    videos: Path | None = None,
    require_reference: bool = True,
    progress: Progress | None = None,
) -> ImportPlan:
    """Plan the YouCook2 videos of `subsets` that are on disk as an eval set asking for a recipe.

    Reads the annotations (`annotations`, else `root/annotations/` or `root/` +
    youcookii_annotations_trainval.json), `root/label_foodtype.csv`, and for the testing subset,
    which has no annotations, `root/splits/test_list.txt`. Videos are looked up as
    `<videos or root/raw_videos>/<subset>/<recipe_type>/<id>.<ext>`, or flat as
    `<videos>/<id>.<ext>`, `<ext>` any of engine.media.VIDEO_SUFFIXES (mp4 first). The reference
    recipe of a video comes from `references` (see docs/formats/youcook2-references.md; a
    per-video entry wins over a per-recipe-type one), else from its annotated sentences as steps
    with no ingredients.

    The subset is the paper's: videos on disk; with `references` and `require_reference`, only
    videos that have a user reference; then only recipe types with at least
    `min_videos_per_recipe` videos; then the first `limit` by recipe type and video id. Videos
    dropped on the way are `left_out` with a reason, not problems; notes give the counts
    ("408 videos from 62 recipes").

    Bad input (unreadable or malformed JSON, a missing key, a bad segment, an unknown recipe
    type, a bad reference entry) becomes a Problem naming the file and line or key. Raises
    ValueError for an unknown subset name, an empty `subsets`, `min_videos_per_recipe` below 1
    or a negative `limit`.
    """
    wanted: list[str] = []
    for subset in (subsets,) if isinstance(subsets, str) else subsets:
        if subset not in SUBSET_NAMES:
            raise ValueError(f"subset must be one of {', '.join(SUBSET_NAMES)}, not {subset!r}")
        if SUBSET_NAMES[subset] not in wanted:
            wanted.append(SUBSET_NAMES[subset])
    if not wanted:
        raise ValueError("subsets must name at least one of training, validation, testing")
    if min_videos_per_recipe < 1:
        raise ValueError(f"min_videos_per_recipe must be at least 1, not {min_videos_per_recipe}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")

    root = Path(root).expanduser().resolve()
    plan = ImportPlan()
    problems = plan.problems
    if annotations is None:
        annotations = root / "annotations" / ANNOTATIONS_NAME
        if not annotations.exists() and (root / ANNOTATIONS_NAME).exists():
            annotations = root / ANNOTATIONS_NAME
    annotations = Path(annotations).expanduser().resolve()
    video_root = Path(videos).expanduser().resolve() if videos else root / "raw_videos"

    recipe_types = read_recipe_types(root / "label_foodtype.csv", problems)
    data = _read_json(annotations, problems, '{"database": {video_id: {...}}}')
    database = data.get("database") if isinstance(data, dict) else None
    if data is not None and not isinstance(database, dict):
        problems.append(Problem(str(annotations), 'expected {"database": {video_id: {...}}}, '
                                                  'found no "database" object', key="database"))
    if not recipe_types or not isinstance(database, dict):
        return plan

    candidates: list[_Video] = []
    known_ids: set[str] = set(database)
    total = len(database)
    for done, (video_id, entry) in enumerate(database.items(), 1):
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, total, f"reading {annotations.name}")
        if not isinstance(entry, dict) or "subset" not in entry:
            found = "no 'subset' key" if isinstance(entry, dict) else type(entry).__name__
            problems.append(Problem(str(annotations), f"expected an object with the key 'subset' "
                                                      f"in video {video_id}, found {found}",
                                    key=video_id))
            continue
        if entry["subset"] not in ("training", "validation"):
            problems.append(Problem(str(annotations), f"expected subset 'training' or "
                                                      f"'validation', found {entry['subset']!r}",
                                    key=video_id))
            continue
        if entry["subset"] in wanted:
            video = _check_video(video_id, entry, annotations, recipe_types, problems)
            if video is not None:
                candidates.append(video)
    if "testing" in wanted:
        test_list = root / "splits" / "test_list.txt"
        for recipe_type, video_id in _read_split_list(test_list, problems):
            known_ids.add(video_id)
            if recipe_type not in recipe_types:
                problems.append(Problem(str(test_list), f"expected a recipe type from "
                                                        f"label_foodtype.csv, found "
                                                        f"{recipe_type!r}", key=video_id))
                continue
            candidates.append(_Video(video_id=video_id, subset="testing",
                                     recipe_type=recipe_type, duration_s=None))
    if progress is not None:
        progress(total, total, f"read {annotations.name}")

    by_video: dict[str, ReferenceRecipe] = {}
    by_type: dict[str, ReferenceRecipe] = {}
    if references is not None:
        references = Path(references).expanduser().resolve()
        type_by_name = {label.lower(): type_id for type_id, label in recipe_types.items()}
        for key, (recipe, line) in read_references(references, problems).items():
            type_id = key if key in recipe_types else type_by_name.get(_words(key).lower())
            target, resolved = (by_type, type_id) if type_id else (by_video, key)
            if not type_id and key not in known_ids:
                problems.append(Problem(str(references), "expected a recipe type id, a recipe "
                                                         "name from label_foodtype.csv or a "
                                                         f"video id, found {key!r}",
                                        line=line, key=key))
            elif resolved in target:
                problems.append(Problem(str(references), "expected one reference per recipe "
                                                         "type or video, found a second for "
                                                         f"{resolved}",
                                        line=line, key=key))
            else:
                target[resolved] = recipe

    left_out: list[tuple[str, str]] = []
    too_few = f"in recipes with fewer than {min_videos_per_recipe} videos"
    beyond = f"beyond limit={limit}"
    # Counted in the order the filters apply, so the note reads like the pipeline.
    reasons = dict.fromkeys(["not on disk", "without a reference recipe", too_few, beyond], 0)

    def leave_out(video: _Video, reason: str, why: str) -> None:
        left_out.append((video.video_id, why))
        reasons[reason] += 1

    folder = _VideoFolder(video_root)
    candidates.sort(key=lambda v: (v.recipe_type, v.video_id))
    kept: list[tuple[_Video, Path]] = []
    roots = media_roots(video_root)
    for video in candidates:
        path = folder.find(video)
        has_reference = video.video_id in by_video or video.recipe_type in by_type
        outside = outside_media_roots(path, roots) if path is not None else None
        if outside is not None:
            # A video that links out of the videos folder is refused, not quietly read.
            problems.append(Problem(str(path), outside, key=video.video_id))
        elif path is None:
            leave_out(video, "not on disk", f"not on disk: no {video.subset}/{video.recipe_type}/"
                                            f"{video.video_id} with any of "
                                            f"{', '.join(VIDEO_SUFFIXES)} under {video_root}")
        elif references is not None and require_reference and not has_reference:
            leave_out(video, "without a reference recipe",
                      f"no reference recipe for it or recipe type {video.recipe_type} in "
                      f"{references.name}")
        elif not has_reference and not video.sentences:
            leave_out(video, "without a reference recipe",
                      "no reference recipe and no annotated steps to fall back on")
        else:
            kept.append((video, path))
    per_type = Counter(video.recipe_type for video, _ in kept)
    chosen = []
    for video, path in kept:
        count = per_type[video.recipe_type]
        if count < min_videos_per_recipe:
            leave_out(video, too_few, f"recipe type {video.recipe_type} has {count} videos, "
                                      f"fewer than min_videos_per_recipe={min_videos_per_recipe}")
        elif limit is not None and len(chosen) >= limit:
            leave_out(video, beyond, beyond)
        else:
            chosen.append((video, path))

    samples = []
    sources: Counter[str] = Counter()
    for video, path in chosen:
        recipe_name = recipe_types[video.recipe_type]
        reference = by_video.get(video.video_id) or by_type.get(video.recipe_type)
        if reference is not None:
            answer = format_recipe(reference.name or recipe_name, reference.ingredients,
                                   reference.steps)
            source = "user"
        else:
            answer = format_recipe(recipe_name, [], video.sentences)
            source = "annotated-steps"
        sources[source] += 1
        samples.append(PlannedSample(
            external_id=video.video_id, modality="video", prompt=RECIPE_PROMPT, answer=answer,
            split=SAMPLE_SPLITS[video.subset], media_path=str(path), group=video.recipe_type,
            duration_s=video.duration_s,
            meta={"segments": video.segments, "recipe_type": video.recipe_type,
                  "recipe_name": recipe_name, "subset": video.subset,
                  "reference_source": source},
        ))

    n_recipes = len({sample.group for sample in samples})
    plan.datasets.append(PlannedDataset(
        name=name or f"{SOURCE}-{'-'.join(wanted)}", modality="video", purpose="eval",
        source=SOURCE, root=str(root),
        description=f"YouCook2 {', '.join(wanted)} videos with reference recipes",
        meta={MEDIA_ROOTS_KEY: roots, "subsets": wanted, "annotations": str(annotations),
              "videos": str(video_root),
              "references": str(references) if references is not None else None,
              "require_reference": require_reference,
              "min_videos_per_recipe": min_videos_per_recipe, "limit": limit},
        samples=samples,
    ))
    plan.left_out = left_out
    plan.notes.append(f"{_count(len(samples), 'video')} from {_count(n_recipes, 'recipe')}")
    if samples:
        plan.notes.append(f"references: {sources['user']} from the user's file, "
                          f"{sources['annotated-steps']} from annotated steps")
    if left_out:
        why = ", ".join(f"{count} {reason}" for reason, count in reasons.items() if count)
        plan.notes.append(f"{_count(len(left_out), 'video')} left out: {why}")
    return plan


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
