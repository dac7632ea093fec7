"""Write a dataset for LLaMA-Factory: its ShareGPT JSON (`conversations` of `from`/`value` turns,
media in `images` / `videos` lists) and the dataset's entry in the `dataset_info.json` beside it,
as LLaMA-Factory's data/README.md documents them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from db.errors import UserError
from engine.export import write_output_file
from engine.importers.llava import LlavaExportError, SampleLike, llava_entry

DATASET_INFO = "dataset_info.json"
# LLaMA-Factory's column for each modality's media; the `<image>` / `<video>` placeholders in the
# human turn are the ones LLaMA-Factory counts against them.
MEDIA_COLUMNS = {"image": "images", "video": "videos"}
# The ShareGPT tags, written out although they are LLaMA-Factory's defaults, so the entry says
# what the file holds.
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
        "assistant_tag": "gpt"}


class DatasetInfoError(UserError, ValueError):
    """The `dataset_info.json` beside the export cannot be read as LLaMA-Factory's registry."""


def llama_factory_entry(sample: SampleLike, *, media_root: Path | None
                        ) -> tuple[dict[str, Any] | None, list]:
    """One sample as a LLaMA-Factory ShareGPT entry: the LLaVA conversation (every turn, with
    one placeholder per media file in the first human turn) and its media as a list, relative
    to `media_root`, or absolute when it is None; or None and the problems that stop it."""
    # Against the filesystem root every path is "inside": the relative path is the absolute
    # one without its leading slash.
    entry, problems = llava_entry(sample, media_root=media_root or Path("/"))
    if entry is None:
        return None, problems
    result: dict[str, Any] = {"conversations": entry["conversations"]}
    for modality, column in MEDIA_COLUMNS.items():
        if modality in entry:
            media = entry[modality]
            media = media if isinstance(media, list) else [media]
            result[column] = media if media_root is not None else ["/" + m for m in media]
    return result, []


def _read_dataset_info(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetInfoError(f"{path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DatasetInfoError(f"{path}: line {exc.lineno}: expected LLaMA-Factory's dataset "
                               f"registry (a JSON object), found invalid JSON ({exc.msg})"
                               ) from None
    if not isinstance(info, dict):
        raise DatasetInfoError(f"{path}: expected LLaMA-Factory's dataset registry (a JSON "
                               f"object of dataset entries), found a JSON "
                               f"{type(info).__name__}")
    return info


def dataset_info_entry(file_name: str, modalities: set[str]) -> dict[str, Any]:
    """The `dataset_info.json` entry of a ShareGPT file holding these modalities' media."""
    columns = {"messages": "conversations"}
    columns.update({MEDIA_COLUMNS[m]: MEDIA_COLUMNS[m] for m in MEDIA_COLUMNS if m in modalities})
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns,
            "tags": dict(TAGS)}


def export_llama_factory(samples: Sequence[SampleLike], out_path: Path, *, name: str,
                         media_root: Path | None = None) -> int:
    """Write samples as LLaMA-Factory ShareGPT JSON at `out_path` and register them as `name`
    in the `dataset_info.json` of the same folder (made when missing; other entries kept, an
    entry of that name replaced). Returns how many entries were written.

    Media paths are relative to `media_root` (give it to LLaMA-Factory as `media_dir`), or
    absolute without it. Both files go through engine.export.write_output_file: no half file.

    Raises LlavaExportError, writing nothing, when a media path lies outside `media_root` or an
    image or video sample has none; DatasetInfoError when the existing `dataset_info.json` is
    not a JSON object; engine.export.OutputError when a file cannot be written.
    """
    out_path = Path(out_path).expanduser()
    root = Path(media_root).expanduser().resolve() if media_root is not None else None
    entries, problems, modalities = [], [], set()
    for sample in samples:
        entry, found = llama_factory_entry(sample, media_root=root)
        problems += found
        if entry is not None:
            entries.append(entry)
            modalities |= {m for m, column in MEDIA_COLUMNS.items() if column in entry}
    if problems:
        raise LlavaExportError(problems)
    info_path = out_path.parent / DATASET_INFO
    # Read before anything is written: a registry that cannot be read stops the export whole.
    info = _read_dataset_info(info_path)
    info[name] = dataset_info_entry(out_path.name, modalities)

    def write(handle) -> None:
        handle.write("[\n")
        handle.write(",\n".join(json.dumps(entry, ensure_ascii=False) for entry in entries))
        handle.write("\n]\n")

    write_output_file(out_path, write, make_folder=True)
    write_output_file(info_path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return len(entries)
