"""Building the synthetic kitchen on disk: images, videos, YouCook2-style annotations, manifest."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from db.errors import UserError
from engine.kitchen.questions import QUESTIONS
from engine.kitchen.recipes import DISHES, Dish, dish_by_slug, format_recipe
from engine.kitchen.render import render_dish_image, render_video

KITCHEN_VERSION = 1
MANIFEST_NAME = "kitchen.json"
ANNOTATIONS_NAME = "annotations.json"
SUBSETS = ("training", "validation")

Progress = Callable[[int, int, str], None]


class KitchenError(UserError, ValueError):
    """A kitchen manifest is missing, unreadable or not in the expected shape."""


@dataclass(frozen=True)
class KitchenDish:
    slug: str
    name: str
    recipe_type: str
    ingredients: tuple[str, ...]
    steps: tuple[str, ...]
    recipe: str  # the dish's recipe in format_recipe's layout: the training target


@dataclass(frozen=True)
class KitchenQuestion:
    question: str
    answer: str


@dataclass(frozen=True)
class KitchenImage:
    path: str  # relative to the kitchen root, with "/" separators
    dish: str  # slug


@dataclass(frozen=True)
class KitchenVideo:
    video_id: str
    dish: str  # slug
    path: str  # relative to the kitchen root, with "/" separators
    subset: str  # "training" or "validation" (held out)
    duration: float  # seconds
    fps: int
    n_frames: int


@dataclass(frozen=True)
class KitchenManifest:
    """What a built kitchen holds; paths in it are relative to `root` (see `resolve`)."""

    root: Path
    version: int
    seed: int
    videos_per_dish: int
    held_out_per_dish: int
    images_per_dish: int
    dishes: tuple[KitchenDish, ...]
    questions: tuple[KitchenQuestion, ...]
    images: tuple[KitchenImage, ...]
    videos: tuple[KitchenVideo, ...]

    @property
    def annotations_path(self) -> Path:
        """The YouCook2-format annotation file for the kitchen's videos."""
        return self.root / ANNOTATIONS_NAME

    def resolve(self, relative: str) -> Path:
        """The absolute path of a file named in the manifest."""
        return (self.root / relative).resolve()

    def videos_in(self, subset: str) -> tuple[KitchenVideo, ...]:
        """The videos of one subset, "training" or "validation"."""
        return tuple(video for video in self.videos if video.subset == subset)

    def dish(self, slug: str) -> KitchenDish:
        """The manifest's entry for a dish. Raises KeyError for a dish not in this kitchen."""
        for dish in self.dishes:
            if dish.slug == slug:
                return dish
        raise KeyError(f"no dish {slug!r} in the kitchen at {self.root}")

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "seed": self.seed,
            "videos_per_dish": self.videos_per_dish,
            "held_out_per_dish": self.held_out_per_dish,
            "images_per_dish": self.images_per_dish,
            "dishes": [_dish_record(dish) for dish in self.dishes],
            "questions": [asdict(q) for q in self.questions],
            "images": [asdict(i) for i in self.images],
            "videos": [asdict(v) for v in self.videos],
        }


def _dish_record(dish: KitchenDish) -> dict:
    return {**asdict(dish), "ingredients": list(dish.ingredients), "steps": list(dish.steps)}


def _kitchen_dish(dish: Dish) -> KitchenDish:
    return KitchenDish(
        slug=dish.slug,
        name=dish.name,
        recipe_type=dish.recipe_type,
        ingredients=dish.ingredients,
        steps=dish.steps,
        recipe=format_recipe(dish),
    )


def _render_seed(seed: int, kind: str, number: int) -> int:
    # Each file gets its own seed so that a render never depends on which others were made.
    return zlib.crc32(f"{seed}:{kind}:{number}".encode())


def _render_item(task: tuple[str, str, int, str]) -> dict:
    """Render one video or image; returns what the manifest needs to know about it."""
    kind, slug, seed, path = task
    dish = dish_by_slug(slug)
    if kind == "image":
        render_dish_image(dish, path, seed=seed)
        return {}
    video = render_video(dish, path, seed=seed)
    return {
        "duration": video.duration_s,
        "fps": video.fps,
        "n_frames": video.n_frames,
        "segments": video.segments,
    }


def _check_parameters(
    videos_per_dish: int, held_out_per_dish: int, images_per_dish: int, dishes: Sequence[str]
) -> list[str]:
    problems = []
    if videos_per_dish < 1:
        problems.append(f"videos_per_dish must be at least 1, got {videos_per_dish}")
    if not 0 <= held_out_per_dish <= videos_per_dish:
        problems.append(
            f"held_out_per_dish must be between 0 and videos_per_dish ({videos_per_dish}),"
            f" got {held_out_per_dish}"
        )
    if images_per_dish < 0:
        problems.append(f"images_per_dish must be at least 0, got {images_per_dish}")
    known = {dish.slug for dish in DISHES}
    unknown = [slug for slug in dishes if slug not in known]
    if unknown:
        problems.append(f"unknown dishes {unknown} (known: {', '.join(sorted(known))})")
    if not dishes:
        problems.append("no dishes chosen")
    if len(set(dishes)) != len(dishes):
        problems.append(f"dishes named more than once: {list(dishes)}")
    return problems


def _reusable(root: Path, wanted: dict) -> KitchenManifest | None:
    """The existing kitchen at `root` if it was built with exactly these settings and is whole."""
    try:
        manifest = load_manifest(root)
    except KitchenError:
        return None
    if {key: value for key, value in manifest.to_json().items() if key in wanted} != wanted:
        return None
    listed = [image.path for image in manifest.images] + [video.path for video in manifest.videos]
    if not manifest.annotations_path.is_file() or not all(
        (root / path).is_file() for path in listed
    ):
        return None
    return manifest


def _write_json(path: Path, data: dict) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def build_kitchen(
    root: Path,
    *,
    videos_per_dish: int = 4,
    held_out_per_dish: int = 1,
    images_per_dish: int = 3,
    seed: int = 0,
    dishes: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> KitchenManifest:
    """Render the synthetic kitchen under `root` and return its manifest.

    For each dish: `images_per_dish` photos (images/<slug>/<n>.png) and `videos_per_dish`
    videos (videos/<subset>/<recipe_type>/<slug>-<n>.mp4), the last `held_out_per_dish` of
    which go to the "validation" subset; then annotations.json in YouCook2's format and, last,
    kitchen.json. `dishes` limits the kitchen to some slugs (default: all). The result depends
    only on the arguments: an existing kitchen built with the same ones, with all its files
    present, is returned without rendering anything. `progress(done, total, path)` is called
    after each file is written, with the file's path relative to `root`.

    Raises ValueError listing every bad argument, RenderError when a file cannot be written.
    """
    root = Path(root)
    slugs = [dish.slug for dish in DISHES] if dishes is None else list(dishes)
    problems = _check_parameters(videos_per_dish, held_out_per_dish, images_per_dish, slugs)
    if problems:
        raise ValueError("cannot build the kitchen: " + "; ".join(problems))
    chosen = [dish_by_slug(slug) for slug in slugs]
    kitchen_dishes = tuple(_kitchen_dish(dish) for dish in chosen)
    questions = tuple(KitchenQuestion(question=q, answer=a) for q, a in QUESTIONS)

    wanted = {
        "version": KITCHEN_VERSION,
        "seed": seed,
        "videos_per_dish": videos_per_dish,
        "held_out_per_dish": held_out_per_dish,
        "images_per_dish": images_per_dish,
        "dishes": [_dish_record(dish) for dish in kitchen_dishes],
        "questions": [asdict(q) for q in questions],
    }
    existing = _reusable(root, wanted)
    if existing is not None:
        return existing

    # Remove the old manifest first, so that a build interrupted from here on is never taken
    # for a finished one.
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).unlink(missing_ok=True)

    tasks: list[tuple[str, str, int, str]] = []
    images: list[KitchenImage] = []
    planned_videos: list[tuple[Dish, str, str, str]] = []
    for dish in chosen:
        for n in range(videos_per_dish):
            subset = "validation" if n >= videos_per_dish - held_out_per_dish else "training"
            video_id = f"{dish.slug}-{n}"
            relative = f"videos/{subset}/{dish.recipe_type}/{video_id}.mp4"
            tasks.append(("video", dish.slug, _render_seed(seed, "video", n), str(root / relative)))
            planned_videos.append((dish, video_id, relative, subset))
    for dish in chosen:
        for n in range(images_per_dish):
            relative = f"images/{dish.slug}/{n}.png"
            tasks.append(("image", dish.slug, _render_seed(seed, "image", n), str(root / relative)))
            images.append(KitchenImage(path=relative, dish=dish.slug))

    results = _render_all(tasks, root, progress)

    videos, database = [], {}
    for (dish, video_id, relative, subset), rendered in zip(planned_videos, results):
        videos.append(
            KitchenVideo(
                video_id=video_id,
                dish=dish.slug,
                path=relative,
                subset=subset,
                duration=rendered["duration"],
                fps=rendered["fps"],
                n_frames=rendered["n_frames"],
            )
        )
        database[video_id] = {
            "duration": rendered["duration"],
            "subset": subset,
            "recipe_type": dish.recipe_type,
            "annotations": rendered["segments"],
            "video_url": "",
        }
    _write_json(root / ANNOTATIONS_NAME, {"database": database})

    manifest = KitchenManifest(
        root=root,
        version=KITCHEN_VERSION,
        seed=seed,
        videos_per_dish=videos_per_dish,
        held_out_per_dish=held_out_per_dish,
        images_per_dish=images_per_dish,
        dishes=kitchen_dishes,
        questions=questions,
        images=tuple(images),
        videos=tuple(videos),
    )
    _write_json(root / MANIFEST_NAME, manifest.to_json())
    return manifest


def _render_all(
    tasks: list[tuple[str, str, int, str]], root: Path, progress: Progress | None
) -> list[dict]:
    """Render every task in order, reporting each finished file."""
    # Sequential on purpose: threads gain nothing (the per-frame work holds the GIL) and
    # process pools re-import the caller's main module, which breaks unguarded scripts.
    results = []
    for done, task in enumerate(tasks, start=1):
        results.append(_render_item(task))
        if progress is not None:
            progress(done, len(tasks), Path(task[3]).relative_to(root).as_posix())
    return results


def _expect(file: Path, where: str, value, kind):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = getattr(kind, "__name__", str(kind))
        raise KitchenError(
            f"{file}: {where}: expected {expected}, found {type(value).__name__} {value!r:.60}"
        )
    return value


def _entries(file: Path, data: dict, key: str, cls, fields: dict) -> tuple:
    items = _expect(file, key, data.get(key), list)
    entries = []
    for i, item in enumerate(items):
        item = _expect(file, f"{key}[{i}]", item, dict)
        values = {}
        for name, kind in fields.items():
            if name not in item:
                raise KitchenError(f"{file}: {key}[{i}]: missing key {name!r}")
            if kind is tuple:
                values[name] = tuple(
                    _expect(file, f"{key}[{i}].{name}[{j}]", v, str)
                    for j, v in enumerate(_expect(file, f"{key}[{i}].{name}", item[name], list))
                )
            else:
                values[name] = _expect(file, f"{key}[{i}].{name}", item[name], kind)
        entries.append(cls(**values))
    return tuple(entries)


def load_manifest(root: Path) -> KitchenManifest:
    """Read `root/kitchen.json`.

    Raises KitchenError naming the file when it is missing, is not JSON, was written by another
    version of the kitchen, or lacks a key or has a value of the wrong type.
    """
    root = Path(root)
    file = root / MANIFEST_NAME
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KitchenError(
            f"{file}: no kitchen manifest here; build one with build_kitchen"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KitchenError(f"{file}: cannot read the kitchen manifest ({exc})") from None
    except json.JSONDecodeError as exc:
        raise KitchenError(
            f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    data = _expect(file, "the top level", data, dict)
    version = data.get("version")
    if version != KITCHEN_VERSION:
        raise KitchenError(
            f"{file}: version: expected {KITCHEN_VERSION}, found {version!r}; rebuild the kitchen"
        )
    numbers = {
        key: _expect(file, key, data.get(key), int)
        for key in ("seed", "videos_per_dish", "held_out_per_dish", "images_per_dish")
    }
    return KitchenManifest(
        root=root,
        version=version,
        **numbers,
        dishes=_entries(
            file,
            data,
            "dishes",
            KitchenDish,
            {
                "slug": str,
                "name": str,
                "recipe_type": str,
                "ingredients": tuple,
                "steps": tuple,
                "recipe": str,
            },
        ),
        questions=_entries(
            file, data, "questions", KitchenQuestion, {"question": str, "answer": str}
        ),
        images=_entries(file, data, "images", KitchenImage, {"path": str, "dish": str}),
        videos=_entries(
            file,
            data,
            "videos",
            KitchenVideo,
            {
                "video_id": str,
                "dish": str,
                "path": str,
                "subset": str,
                "duration": float,
                "fps": int,
                "n_frames": int,
            },
        ),
    )
