"""Read and write LLaVA / Video-LLaVA instruction JSON: entries with media and conversations."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from db.errors import UserError
from engine.export import write_output_file
from engine.importers.base import (
    MEDIA_ROOTS_KEY,
    ImportPlan,
    PlannedDataset,
    PlannedSample,
    Problem,
    Progress,
    media_roots,
    outside_media_roots,
)

SOURCE = "llava"
PROGRESS_EVERY = 5000
# videollava/constants.py: MAX_VIDEO_LENGTH = 1; a second <video> makes the loader raise.
MAX_VIDEOS = 1
PLACEHOLDERS = {"image": "<image>", "video": "<video>"}
MEDIA_KEYS = ("image", "video")
_ENTRY_KEYS = {"id", "image", "video", "conversations"}
_PLACEHOLDER = re.compile(r"[ \t]*<(?:image|video)>[ \t]*\n?")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class LlavaExportError(UserError, ValueError):
    """Samples that cannot be written as LLaVA JSON; nothing was written. `problems` lists all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


class SampleLike(Protocol):
    external_id: str
    modality: str
    prompt: str
    answer: str
    media_path: str | None
    meta: dict[str, Any]


def strip_placeholders(text: str) -> str:
    """A human turn without its `<image>`/`<video>` placeholders: "<video>\\nWhat is cooked?" →
    "What is cooked?"."""
    return _PLACEHOLDER.sub("", text).strip()


def _line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string {value[:40]!r}"
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _scan_entries(text: str, file: str, problems: list[Problem]) -> list[tuple[int, Any]] | None:
    """(line, entry) for each element of the top-level JSON list, or None after a problem.

    Decodes one element at a time so that a problem can name the line its entry starts on.
    """
    pos = _JSON_SPACE.match(text).end()
    if not text.startswith("[", pos):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(file, f"expected JSON, found {exc.msg.lower()} at column "
                                          f"{exc.colno}", line=exc.lineno))
            return None
        problems.append(Problem(file, f"expected a JSON list of entries, found {_kind(value)}",
                                line=1))
        return None

    def fail(at: int, found: str) -> None:
        line, column = _line_col(text, at)
        problems.append(Problem(file, f"expected {found} at column {column}", line=line))

    decoder = json.JSONDecoder()
    entries: list[tuple[int, Any]] = []
    line, counted = 1, 0
    pos = _JSON_SPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        pos = _JSON_SPACE.match(text, pos + 1).end()
        if pos != len(text):
            fail(pos, "nothing after the list, found more text")
            return None
        return entries
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problems.append(Problem(file, f"expected JSON, found {exc.msg.lower()} at column "
                                          f"{exc.colno}", line=exc.lineno))
            return None
        entries.append((line, value))
        pos = _JSON_SPACE.match(text, end).end()
        if text.startswith(",", pos):
            after = _JSON_SPACE.match(text, pos + 1).end()
            if text.startswith("]", after):
                fail(pos, "another entry or the end of the list, found a trailing comma")
                return None
            pos = after
        elif text.startswith("]", pos):
            pos = _JSON_SPACE.match(text, pos + 1).end()
            if pos != len(text):
                fail(pos, "nothing after the list, found more text")
                return None
            return entries
        else:
            fail(pos, "',' or ']' after an entry, found "
                      + (repr(text[pos:pos + 10]) if pos < len(text) else "the end of the file"))
            return None


class _MediaFiles:
    """Whether media files exist and where they resolve to, listing and resolving each folder
    once: a stat per file is what makes checking LLaVA's 665,000 entries slow."""

    def __init__(self) -> None:
        self._folders: dict[str, tuple[set[str], set[str]]] = {}  # files, links among them
        self._real: dict[str, str] = {}

    def _listing(self, folder: str) -> tuple[set[str], set[str]]:
        if folder not in self._folders:
            try:
                with os.scandir(folder) as entries:
                    listed = [(e.name, e.is_symlink()) for e in entries if not e.is_dir()]
                self._folders[folder] = ({n for n, _ in listed}, {n for n, link in listed if link})
            except OSError:
                self._folders[folder] = (set(), set())
        return self._folders[folder]

    def exists(self, path: str) -> bool:
        folder, name = os.path.split(path)
        return name in self._listing(folder)[0]

    def resolved(self, path: str) -> str:
        """`path` with every link followed (os.path.realpath, its folder resolved once)."""
        folder, name = os.path.split(path)
        if name in self._listing(folder)[1]:
            return os.path.realpath(path)
        if folder not in self._real:
            self._real[folder] = os.path.realpath(folder)
        return os.path.join(self._real[folder], name)


def _modality(entry: dict) -> str:
    if "video" in entry:
        return "video"
    return "image" if "image" in entry else "text"


def _check_conversations(entry: dict, where: str, file: str, line: int,
                         problems: list[Problem]) -> bool:
    conversations = entry.get("conversations")
    key = f"{where}: conversations"
    hint = " (q/a keys: raw Video-ChatGPT data, not LLaVA conversations)" \
        if {"q", "a"} <= entry.keys() else ""
    if not isinstance(conversations, list) or not conversations:
        found = "none" if conversations in (None, []) else _kind(conversations)
        problems.append(Problem(file, f"expected a list of {{from, value}} turns, found {found}"
                                      + hint, line=line, key=key))
        return False
    for index, turn in enumerate(conversations):
        role = "human" if index % 2 == 0 else "gpt"
        turn_key = f"{key}[{index}]"
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            problems.append(Problem(file, f"expected a turn {{\"from\": ..., \"value\": text}}, "
                                          f"found {_kind(turn)}", line=line, key=turn_key))
            return False
        if turn.get("from") != role:
            problems.append(Problem(file, f"expected roles alternating human, gpt from a human "
                                          f"turn, so {role!r} here, found {turn.get('from')!r}",
                                    line=line, key=f"{turn_key}.from"))
            return False
    if len(conversations) % 2:
        problems.append(Problem(file, f"expected the conversation to end with a gpt turn, found "
                                      f"{len(conversations)} turns ending with a human one",
                                line=line, key=key))
        return False
    return True


def read_llava_json(
    path: Path,
    *,
    media_root: Path | None = None,
    image_root: Path | None = None,
    video_root: Path | None = None,
    name: str | None = None,
    split: str = "train",
    progress: Progress | None = None,
) -> ImportPlan:
    """Plan a LLaVA / Video-LLaVA instruction file as samples, one dataset per modality present.

    Each entry is `{"id", "image"?: path or list, "video"?: path or list, "conversations":
    [{"from": "human"|"gpt", "value"}...]}`; entries with neither media key are text. Image paths
    are relative to `image_root`, video paths to `video_root` (Video-LLaVA's --image_folder and
    --video_folder); each defaults to `media_root`, which defaults to the JSON file's folder.
    A sample is the first human/gpt pair (placeholders stripped from the prompt); meta keeps
    the whole conversation (training learns every gpt turn of it: engine.train.TrainExample.
    from_sample; the summary counts the entries of several exchanges and their answers), the original id where the external id differs from it, every media
    path when the entry gave a list, and any other keys, so `export_llava_json` writes the entry
    back. External ids are the entries' ids, or their indices when an id is missing or repeated.
    Datasets are called `name` (default: the file's stem) when the file holds one modality,
    else `<name>-<modality>`; a split other than train makes them eval sets.

    Bad input (not a JSON list, an entry that is not an object, missing or malformed
    conversations, roles not alternating human/gpt from a human turn, both image and video, more
    than one video, placeholders not matching the media, a media path that resolves, links
    followed, outside its root, a missing media file) becomes a Problem
    naming the file, the line the entry starts on and its key, and the entry is left out of the
    plan. Raises nothing.
    """
    path = Path(path).expanduser().resolve()
    file = str(path)
    plan = ImportPlan()
    try:
        # utf-8-sig: a file saved by an editor on Windows may start with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        plan.problems.append(Problem(file, "expected a LLaVA JSON file, found no such file"))
        return plan
    except (OSError, UnicodeDecodeError) as exc:
        plan.problems.append(Problem(file, f"expected a LLaVA JSON file as UTF-8 text, found an "
                                           f"unreadable file ({exc})"))
        return plan
    scanned = _scan_entries(text, file, plan.problems)
    if scanned is None:
        return plan

    base = Path(media_root).expanduser().resolve() if media_root is not None else path.parent
    roots = {
        "image": str(Path(image_root).expanduser().resolve() if image_root is not None else base),
        "video": str(Path(video_root).expanduser().resolve() if video_root is not None else base),
        "text": str(path.parent),
    }
    # Every media path must resolve inside its modality's root: an entry cannot make ddft read
    # a file elsewhere ("../../etc/shadow", "/proc/self/environ", a link out of the folder).
    allowed = {modality: media_roots(root) for modality, root in roots.items()}
    ids = [entry.get("id") for _, entry in scanned if isinstance(entry, dict)]
    id_counts = Counter(str(i) for i in ids if i is not None)
    by_index = len(id_counts) != len(ids)  # some id missing or repeated
    if by_index:
        missing = sum(1 for i in ids if i is None)
        repeated = sum(n for n in id_counts.values() if n > 1)
        plan.notes.append(f"{path.name}: ids missing in {missing} and repeated in {repeated} "
                          f"entries, so external ids are entry indices")

    media_files = _MediaFiles()
    several_images = 0
    multi_turn = answers = 0
    present: list[str] = []
    samples: dict[str, list[PlannedSample]] = {"image": [], "video": [], "text": []}
    total = len(scanned)
    for index, (line, entry) in enumerate(scanned):
        if progress is not None and index % PROGRESS_EVERY == 0:
            progress(index, total, path.name)
        where = f"entry {index}"
        if not isinstance(entry, dict):
            plan.problems.append(Problem(file, f"expected an entry object, found {_kind(entry)}",
                                         line=line, key=where))
            continue
        if entry.get("id") is not None:
            where += f" (id {entry['id']})"
        modality = _modality(entry)
        if modality not in present:
            present.append(modality)
        conversations = entry.get("conversations")
        ok = _check_conversations(entry, where, file, line, plan.problems)
        if "image" in entry and "video" in entry:
            plan.problems.append(Problem(file, "expected an image or a video, found both (a ddft "
                                               "sample holds one modality)", line=line, key=where))
            continue
        relative: list[str] = []
        if modality != "text":
            value = entry[modality]
            if isinstance(value, str) and value:
                relative = [value]
            elif isinstance(value, list) and value and all(
                    isinstance(v, str) and v for v in value):
                relative = list(value)
            else:
                plan.problems.append(Problem(file, f"expected a path or a list of paths, found "
                                                   f"{_kind(value) if value != [] else 'none'}",
                                             line=line, key=f"{where}: {modality}"))
                continue
        if modality == "video" and len(relative) > MAX_VIDEOS:
            plan.problems.append(Problem(file, f"expected at most {MAX_VIDEOS} video "
                                               f"(Video-LLaVA's MAX_VIDEO_LENGTH), found "
                                               f"{len(relative)}",
                                         line=line, key=f"{where}: video"))
            continue
        if not ok:
            continue
        spoken = "\n".join(turn["value"] for turn in conversations)
        counts = {m: spoken.count(token) for m, token in PLACEHOLDERS.items()}
        wrong = [m for m in PLACEHOLDERS if counts[m] != (len(relative) if m == modality else 0)]
        if wrong:
            m = wrong[0]
            expected = len(relative) if m == modality else 0
            plan.problems.append(Problem(file, f"expected {expected} {PLACEHOLDERS[m]} "
                                               f"placeholder(s) for {expected} {m}(s), found "
                                               f"{counts[m]}", line=line,
                                         key=f"{where}: conversations"))
            continue
        absolute = [os.path.normpath(os.path.join(roots[modality], p)) for p in relative]
        outside = [reason for p in absolute if (reason := outside_media_roots(
            p, allowed[modality], resolved=media_files.resolved(p))) is not None]
        if outside:
            plan.problems.append(Problem(file, outside[0], line=line,
                                         key=f"{where}: {modality}"))
            continue
        missing = [p for p in absolute if not media_files.exists(p)]
        if missing:
            plan.problems.append(Problem(file, f"expected the {modality} file {missing[0]}, "
                                               f"found no such file", line=line,
                                         key=f"{where}: {modality}"))
            continue

        external_id = str(index) if by_index else str(entry["id"])
        meta: dict[str, Any] = {"conversations": conversations}
        if "id" in entry and entry["id"] != external_id:
            meta["id"] = entry["id"]
        if isinstance(entry.get(modality), list):
            meta["media_paths"] = absolute
        extra = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
        if extra:
            meta["extra"] = extra
        several_images += len(absolute) > 1
        multi_turn += len(conversations) > 2
        answers += len(conversations) // 2
        samples[modality].append(PlannedSample(
            external_id=external_id,
            modality=modality,
            prompt=strip_placeholders(conversations[0]["value"]),
            answer=conversations[1]["value"],
            split=split,
            media_path=absolute[0] if absolute else None,
            meta=meta,
        ))
    if progress is not None:
        progress(total, total, path.name)

    stem = name or path.stem
    for modality in ("image", "video", "text"):
        if modality not in present:
            continue
        plan.datasets.append(PlannedDataset(
            name=stem if len(present) == 1 else f"{stem}-{modality}",
            modality=modality,
            purpose="train" if split == "train" else "eval",
            source=SOURCE,
            root=roots[modality],
            description=f"LLaVA instruction data ({modality}) from {path.name}",
            meta={"json": file, MEDIA_ROOTS_KEY: allowed[modality]},
            samples=samples[modality],
        ))
    counted = ", ".join(f"{len(samples[m])} {m}" for m in ("image", "video", "text")
                        if m in present)
    plan.notes.append(f"{path.name}: {counted} samples from {total} entries")
    if multi_turn:
        planned = sum(len(samples[m]) for m in samples)
        plan.notes.append(f"{multi_turn} of {planned} entries have more than one exchange; "
                          f"training learns all {answers} gpt answers (a sample shows its "
                          f"first exchange, meta['conversations'] keeps them all)")
    if several_images:
        plan.notes.append(f"{several_images} entries have several images; the sample's media "
                          f"path is the first, meta['media_paths'] holds all")
    return plan


def _relative(path: str, root: Path) -> str | None:
    prefix = os.path.join(str(root), "")
    absolute = os.path.abspath(path)
    if not absolute.startswith(prefix):
        # Only now resolve links: a stat per path is what makes a large export slow.
        absolute = os.path.realpath(path)
    if not absolute.startswith(prefix):
        return None
    return absolute[len(prefix):].replace(os.sep, "/")


def llava_entry(sample: SampleLike, *, media_root: Path) -> tuple[dict[str, Any] | None,
                                                                  list[Problem]]:
    """One sample as a LLaVA entry with media paths relative to `media_root` (resolved), or None
    and the problems that stop it."""
    meta = sample.meta or {}
    sample_id = getattr(sample, "id", None)
    label = f"sample {sample_id} ({sample.external_id})" if sample_id is not None \
        else f"sample {sample.external_id}"
    entry: dict[str, Any] = {"id": meta.get("id", sample.external_id)}
    problems: list[Problem] = []
    media: list[str] = []
    if sample.modality in PLACEHOLDERS:
        if not sample.media_path:
            return None, [Problem(label, f"expected a media path for a {sample.modality} "
                                         f"sample, found none", key="media_path")]
        listed = meta.get("media_paths")
        paths = [sample.media_path, *listed[1:]] if isinstance(listed, list) else \
            [sample.media_path]
        for media_path in paths:
            relative = _relative(media_path, media_root)
            if relative is None:
                problems.append(Problem(label, f"expected a media path under {media_root}, "
                                               f"found {media_path}", key="media_path"))
            media.append(relative)
        if problems:
            return None, problems
        entry[sample.modality] = media if isinstance(listed, list) else media[0]

    token = PLACEHOLDERS.get(sample.modality, "")
    turns = meta.get("conversations")
    if not (isinstance(turns, list) and len(turns) >= 2
            and all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns)):
        turns = [{"from": "human"}, {"from": "gpt"}]
    original = turns[0].get("value", "")
    # The stored turn is written as it was when only its placeholders differ from the prompt,
    # so a placeholder after the question ("...\n<image>") survives a round trip.
    unchanged = (isinstance(original, str) and strip_placeholders(original) == sample.prompt
                 and all(original.count(t) == (len(media) if m == sample.modality else 0)
                         for m, t in PLACEHOLDERS.items()))
    human = original if unchanged else f"{token}\n" * len(media) + sample.prompt
    entry["conversations"] = [{**turns[0], "value": human},
                              {**turns[1], "value": sample.answer}, *turns[2:]]
    entry.update({k: v for k, v in meta.get("extra", {}).items() if k not in _ENTRY_KEYS})
    return entry, []


def export_llava_json(samples: Sequence[SampleLike], out_path: Path, *, media_root: Path) -> int:
    """Write samples as a LLaVA / Video-LLaVA instruction file and return how many.

    Media paths are written relative to `media_root` (pass it as --image_folder/--video_folder);
    the human turn starts with one `<image>\\n` or `<video>\\n` per media file; a sample read by
    `read_llava_json` gets its whole conversation, id and extra keys back. The file is written to
    temporary file created exclusively beside it and moved into place, so a failed export leaves
    any old file as it was (engine.export.write_output_file).

    Raises LlavaExportError, writing nothing, when a media path lies outside `media_root` or an
    image or video sample has none; engine.export.OutputError when `out_path` is a symbolic
    link, a folder, or cannot be written.
    """
    media_root = Path(media_root).expanduser().resolve()
    out_path = Path(out_path).expanduser()
    entries = []
    problems: list[Problem] = []
    for sample in samples:
        entry, found = llava_entry(sample, media_root=media_root)
        problems += found
        if entry is not None:
            entries.append(entry)
    if problems:
        raise LlavaExportError(problems)
    def write(handle) -> None:
        # One entry a line: json's indenting encoder is pure Python, minutes for 665k entries.
        handle.write("[\n")
        handle.write(",\n".join(json.dumps(entry, ensure_ascii=False) for entry in entries))
        handle.write("\n]\n")

    write_output_file(out_path, write, make_folder=True)
    return len(entries)
