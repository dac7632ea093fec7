"""Read Tasty Videos (Sener & Yao, ICCV 2019) recipes into an import plan: one video, one recipe."""

from __future__ import annotations

import xml.etree.ElementTree as ET
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

SOURCE = "tasty"
# The official archive keeps the recipe folders one level down, next to SPLITS/.
RECIPES_FOLDER = "ALL_RECIPES_without_videos"
# The archive's videos are recipe_video.mp4; one remuxed into another container is found too.
VIDEO_STEM = "recipe_video"
# csvalignment.dat counts in 5-frame units: the official fs_create_splits.py maps start..end to
# frames start*5-4 .. end*5 (1-based).
FRAMES_PER_UNIT = 5
# Split-file names: SPLITS/split_4022/{TRAIN,VAL,TEST}_4022.txt and split_2511's
# {training,testing}_set.txt.
_SPLIT_PREFIXES = (("train", "train"), ("val", "val"), ("test", "test"))


def split_of(split_file: Path) -> str:
    """The split a split file lists, from its name: TRAIN_4022.txt → "train"; a name that says
    none of train/val/test gives its lower-cased stem."""
    stem = split_file.stem.lower()
    for prefix, split in _SPLIT_PREFIXES:
        if stem.startswith(prefix):
            return split
    return stem


def _text(element: ET.Element | None) -> str:
    if element is None or element.text is None:
        return ""
    return " ".join(element.text.split())


def parse_ingredient(text: str) -> dict[str, str]:
    """One `<ingredient>` as fields: "2 cups;flour, sifted" → amount "2 cups", name "flour",
    preparation "sifted". A third `;` field is a second amount (the official parser reads it so)
    and is kept as "amount_alt"."""
    parts = [part.strip() for part in text.split(";")]
    if len(parts) == 1:
        amount, body, alt = "", parts[0], ""
    else:
        amount, body, alt = parts[0], parts[1], "; ".join(p for p in parts[2:] if p)
    name, _, preparation = body.partition(",")
    fields = {"amount": amount, "name": name.strip(), "preparation": preparation.strip()}
    if alt:
        fields["amount_alt"] = alt
    return fields


def ingredient_line(fields: dict[str, str]) -> str:
    """An ingredient as the recipe text writes it: "2 cups (250 g) flour, sifted"."""
    amount = fields["amount"]
    if fields.get("amount_alt"):
        amount = f"{amount} ({fields['amount_alt']})" if amount else fields["amount_alt"]
    line = " ".join(part for part in (amount, fields["name"]) if part)
    return f"{line}, {fields['preparation']}" if fields["preparation"] else line




def read_split_file(split_file: Path, recipes: Path, plan: ImportPlan) -> list[str]:
    """The slugs a split file lists, in order; a slug without a folder under `recipes` becomes a
    problem naming its line, a repeated slug is left out once."""
    text = read_text_file(split_file, plan.problems, "a split file (one recipe folder name a line)")
    if text is None:
        return []
    slugs: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        slug = line.strip()
        if not slug:
            continue
        if slug in seen:
            reason = f"listed again on line {number} of {split_file.name} (first on line " \
                f"{seen[slug]})"
            plan.left_out.append((slug, reason))
            continue
        seen[slug] = number
        if not (recipes / slug).is_dir():
            plan.problems.append(Problem(str(split_file), f"expected a recipe folder {slug}/ in "
                                                          f"{recipes}, found none", line=number))
            continue
        slugs.append(slug)
    return slugs


def _read_fps(path: Path, problems: list[Problem]) -> float | None:
    text = read_text_file(path, problems, "the video's frames per second (a float on the first line)")
    if text is None:
        return None
    first = text.splitlines()[0].strip() if text.strip() else ""
    try:
        fps = float(first)
    except ValueError:
        fps = None
    if fps is None or not fps > 0 or fps == float("inf"):
        problems.append(Problem(str(path), f"expected a positive number of frames per second, "
                                           f"found {first!r}", line=1))
        return None
    return fps


def _read_alignment(path: Path, problems: list[Problem]) -> list[tuple[int, int]] | None:
    """(start, end) per line in 5-frame units, (-1, -1) for a step not shown; None when a line
    is bad (each bad line is a problem)."""
    text = read_text_file(path, problems, "step alignments (`start,end` a line)")
    if text is None:
        return None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    pairs: list[tuple[int, int]] = []
    ok = True
    for number, line in enumerate(lines, 1):
        fields = line.split(",")
        try:
            start, end = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            start = end = None
        if start is None or end is None or len(fields) != 2:
            problems.append(Problem(str(path), f"expected `start,end` as two integers, found "
                                               f"{line.strip()!r}", line=number))
            ok = False
        elif (start, end) != (-1, -1) and (start < 0 or end < 0):
            problems.append(Problem(str(path), f"expected -1,-1 for a step not shown or two "
                                               f"non-negative values, found {line.strip()!r}",
                                    line=number))
            ok = False
        elif start > end:
            problems.append(Problem(str(path), f"expected start <= end, found {line.strip()!r}",
                                    line=number))
            ok = False
        else:
            pairs.append((start, end))
    return pairs if ok else None


def segment_seconds(start: int, end: int, fps: float) -> list[float]:
    """A step's span in seconds: from the start of frame start*5-4 to the end of frame end*5."""
    first_frame = max(start * FRAMES_PER_UNIT - (FRAMES_PER_UNIT - 1), 1)
    return [round((first_frame - 1) / fps, 3), round(end * FRAMES_PER_UNIT / fps, 3)]


def _items(parent: ET.Element, tag: str, xml_file: str, problems: list[Problem]) -> list[str]:
    items = []
    for index, child in enumerate(parent.findall(tag)):
        text = _text(child)
        if not text:
            problems.append(Problem(xml_file, f"expected text in <{tag}>, found it empty",
                                    key=f"{parent.tag}[{index}]"))
        items.append(text)
    return items


def read_recipe(folder: Path, *, split: str = "train") -> tuple[PlannedSample | None,
                                                                 list[Problem]]:
    """One recipe folder as a planned video sample, or None and the problems that stop it."""
    problems: list[Problem] = []
    slug = folder.name
    xml_path = folder / "recipe.xml"
    xml_file = str(xml_path)
    recipe: ET.Element | None = None
    if not xml_path.is_file() and (folder / "recipe_encoded.xml").is_file():
        problems.append(Problem(xml_file, "expected the decoded recipe, found only "
                                          "recipe_encoded.xml (run the dataset's "
                                          "fs_decode_xml.py first)"))
    else:
        text = read_text_file(xml_path, problems, "the recipe (recipe.xml)")
        if text is not None:
            try:
                recipe = ET.fromstring(text)
            except ET.ParseError as exc:
                line, column = exc.position
                problems.append(Problem(xml_file, f"expected well-formed XML, found "
                                                  f"{exc.msg.split(':')[0]} at column {column + 1}",
                                        line=line))

    title = ""
    ingredients: list[dict[str, str]] = []
    steps: list[str] = []
    annotated: list[str] | None = None
    url = ""
    if recipe is not None:
        url = _text(recipe.find("url"))
        title = _text(recipe.find("title"))
        if not title:
            problems.append(Problem(xml_file, "expected the dish name in <title>, found none",
                                    key="title"))
        container = recipe.find("ingredients")
        texts = _items(container, "ingredient", xml_file, problems) \
            if container is not None else []
        if not texts:
            problems.append(Problem(xml_file, "expected <ingredients> with <ingredient> entries, "
                                              "found none", key="ingredients"))
        ingredients = [parse_ingredient(text) for text in texts if text]
        container = recipe.find("steps_updated")
        if container is not None:
            annotated = _items(container, "steps_updated", xml_file, problems)
        container = recipe.find("steps")
        if container is not None:
            steps = _items(container, "step", xml_file, problems)
        if not annotated and not steps:
            problems.append(Problem(xml_file, "expected <steps_updated> or <steps> with step "
                                              "entries, found none", key="steps"))

    fps = _read_fps(folder / "fps.txt", problems)
    alignment_path = folder / "csvalignment.dat"
    alignment: list[tuple[int, int]] | None = None
    if alignment_path.exists():
        alignment = _read_alignment(alignment_path, problems)
        if alignment is not None and recipe is not None and len(alignment) != len(annotated or []):
            problems.append(Problem(str(alignment_path), f"expected one line per step in "
                                                         f"<steps_updated> "
                                                         f"({len(annotated or [])}), found "
                                                         f"{len(alignment)}"))
    video = next((folder / (VIDEO_STEM + suffix) for suffix in VIDEO_SUFFIXES
                  if (folder / (VIDEO_STEM + suffix)).is_file()), folder / (VIDEO_STEM + ".mp4"))
    if not video.is_file():
        problems.append(Problem(str(video), "expected the recipe's video, found no such file"))
    if problems:
        return None, problems

    annotated = annotated or []
    segments = [
        {"segment": segment_seconds(start, end, fps), "id": index, "sentence": annotated[index]}
        for index, (start, end) in enumerate(alignment or [])
        if (start, end) != (-1, -1)
    ]
    meta: dict[str, Any] = {
        "segments": segments,
        "alignment_raw": [list(pair) for pair in alignment] if alignment is not None else None,
        "fps": fps,
        "url": url,
        "ingredients_structured": ingredients,
    }
    sample = PlannedSample(
        external_id=slug,
        modality="video",
        prompt=RECIPE_PROMPT,
        answer=format_recipe(title, [ingredient_line(i) for i in ingredients],
                             annotated or steps),
        split=split,
        media_path=str(video),
        group=slug,
        meta=meta,
    )
    return sample, []


def read_tasty(
    root: Path,
    *,
    split_file: Path | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> ImportPlan:
    """Plan Tasty Videos recipes as video samples that ask for the recipe.

    Layout: one folder per recipe, `root/<slug>/` (or `root/ALL_RECIPES_without_videos/<slug>/`,
    the official archive's layout), holding `recipe.xml` (decoded), `csvalignment.dat`,
    `fps.txt` and `recipe_video.mp4` (or another of engine.media.VIDEO_SUFFIXES). `split_file`
    (e.g. `SPLITS/split_4022/TRAIN_4022.txt`) lists the slugs to import, one a line, and names
    the split; without it every folder is imported as split "train". The answer is
    `format_recipe` of the title, the ingredients with their amounts, and the annotated steps
    (`<steps_updated>`, else `<steps>`); meta keeps the shown steps as YouCook2-style segments
    in seconds, the raw alignment, fps, url and the structured ingredients. A recipe without
    csvalignment.dat (two V1 recipes) has no segments and a null raw alignment.

    The dataset is called `name`, else "tasty" (or "tasty-<split>" with a split file); a val or
    test split is planned as an eval set.

    Bad input (malformed XML, a missing title, ingredients or steps, an alignment that does not
    match the annotated steps or holds a bad pair, a bad fps.txt, a missing video, a split-file
    slug with no folder) becomes a Problem naming the file and line or key, and that recipe is
    left out of the plan. Raises nothing.
    """
    root = Path(root).expanduser().resolve()
    plan = ImportPlan()
    if not root.is_dir():
        plan.problems.append(Problem(str(root), "expected the Tasty Videos folder (one folder per "
                                                "recipe), found no such folder"))
        return plan
    recipes = root / RECIPES_FOLDER if (root / RECIPES_FOLDER).is_dir() else root
    if split_file is not None:
        split_file = Path(split_file).expanduser().resolve()
        split = split_of(split_file)
        if split not in ("train", "val", "test"):
            plan.notes.append(f"{split_file.name} names no train/val/test split; samples get "
                              f"split {split!r}")
        slugs = read_split_file(split_file, recipes, plan)
    else:
        split = "train"
        slugs = sorted(entry.name for entry in recipes.iterdir()
                       if entry.is_dir() and not entry.name.startswith("."))

    samples: list[PlannedSample] = []
    roots = media_roots(root, recipes)
    for done, slug in enumerate(slugs, 1):
        sample, problems = read_recipe(recipes / slug, split=split)
        plan.problems += problems
        outside = outside_media_roots(sample.media_path, roots) if sample is not None else None
        if outside is not None:
            # A slug such as ../.. or a video that links out of the folder.
            plan.problems.append(Problem(str(sample.media_path), outside, key=slug))
        elif sample is not None:
            samples.append(sample)
        if progress is not None:
            progress(done, len(slugs), slug)

    unaligned = sum(1 for s in samples if s.meta["alignment_raw"] is None)
    plan.notes.append(f"{len(samples)} Tasty recipe videos from {len(slugs)} folders"
                      + (f" ({split_file.name})" if split_file is not None else ""))
    if unaligned:
        plan.notes.append(f"{unaligned} recipes have no csvalignment.dat, so no step segments")
    dataset_name = name or (f"{SOURCE}-{split}" if split_file is not None else SOURCE)
    plan.datasets.append(PlannedDataset(
        name=dataset_name,
        modality="video",
        purpose="train" if split == "train" else "eval",
        source=SOURCE,
        root=str(recipes),
        description="Tasty Videos: recipe videos with the recipe and its aligned steps",
        meta={MEDIA_ROOTS_KEY: roots,
              **({"split_file": str(split_file)} if split_file is not None else {})},
        samples=samples,
    ))
    return plan
