"""Exporting: a trained variant's LoRA adapter in peft's format or a merged model directory, and
every file a command writes where the user names it (`write_output_file`)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from db.errors import UserError

# What a peft adapter folder holds; a checkpoint also holds optimizer and scheduler state, RNG
# states and ddft's own records, none of which belong in an export.
# ddft_time.json: the frame-time settings of a time-aware adapter (engine/model/timeaware.py).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
                 "ddft_time.json")


class ExportError(UserError, ValueError):
    """The variant cannot be exported as asked (no adapter, a folder in the way)."""


class OutputError(UserError, OSError):
    """A file the user named cannot be written safely (a symbolic link, a folder, no folder
    for it, a full disk); nothing was written."""


def _is_stream(mode: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def write_output_file(path: Path, content: str | Callable[[TextIO], None], *,
                      make_folder: bool = False) -> None:
    """Write a file the user named: `content` is the text, or a function that writes it to the
    open file. A regular file (new or replaced) is written to a temporary file created
    exclusively (O_EXCL, an unguessable name) in the same folder and renamed over the target, so
    a failure leaves no half file and a link planted at a guessable name redirects nothing; a
    new file gets the mode an ordinary write would give, a replaced one keeps its mode. A pipe
    or character device (`/dev/stdout`, a named pipe), named directly or through a link, is
    written straight into. `make_folder` creates missing parent folders.

    Raises OutputError, having written nothing, when `path` is a symbolic link to anything
    else (ddft never writes through a link: it could point at any file the user can write), a
    folder or another non-regular file, when its folder is missing, or when writing fails.
    """
    path = Path(path).expanduser()
    try:
        try:
            own = os.lstat(path)
        except FileNotFoundError:
            own = None
        if own is not None and stat.S_ISLNK(own.st_mode):
            try:
                followed = os.stat(path).st_mode
            except OSError:
                followed = None
            if followed is None or not _is_stream(followed):
                raise OutputError(f"{path} is a symbolic link; ddft does not write through "
                                  "links: give the file itself")
            own = os.stat(path)
        if own is not None and _is_stream(own.st_mode):
            with open(path, "w", encoding="utf-8", newline="") as out:
                out.write(content) if isinstance(content, str) else content(out)
            return
        if own is not None and stat.S_ISDIR(own.st_mode):
            raise OutputError(f"{path} is a folder; give a file name")
        if own is not None and not stat.S_ISREG(own.st_mode):
            raise OutputError(f"cannot write {path}: not a regular file")
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.parent.is_dir():
            raise OutputError(f"cannot write {path}: no folder {path.parent}")
        if own is not None:
            mode = stat.S_IMODE(own.st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(content) if isinstance(content, str) else content(out)
                os.fchmod(out.fileno(), mode)
            # rename() replaces whatever lies at `path` now, a link included, never its target.
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fresh_target(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise ExportError(f"{out_dir} is a symbolic link; ddft does not write through links: "
                          "give a new folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir}: folder exists and is not empty; choose a new one")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def _publish(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked by _fresh_target
    os.replace(tmp, out_dir)
    return out_dir


def model_card(base_model: str, *, relation: str, title: str, usage: str) -> str:
    """A README in the layout of Hugging Face's model cards: YAML front matter naming the base
    model (`base_model`, with `base_model_relation` adapter or merge, so the Hub links the two)
    and `library_name`, then `title` and a usage example. A base that is a local folder, not a
    Hub id, is named in a comment instead: the Hub accepts only ids there."""
    from engine.jobs.train_settings import resolve_base

    source, local = resolve_base(base_model)
    front = ["---"]
    if local:
        front.append(f"# base model: the local folder {json.dumps(source)} (replace with its Hub "
                     "id before uploading)")
    else:
        # A JSON string is a YAML string: any name is quoted safely.
        front.append(f"base_model: {json.dumps(source)}")
        front.append(f"base_model_relation: {relation}")
    front += [f"library_name: {'peft' if relation == 'adapter' else 'transformers'}",
              "tags:", "- ddft", "- video-llava", "- lora" if relation == "adapter" else "- merge",
              "---", ""]
    return "\n".join(front) + f"\n# {title}\n\nBase model: `{base_model}`\n\n{usage}"


def export_adapter(adapter_path: str | Path, out_dir: Path, *, base_model: str) -> Path:
    """Copy a variant's adapter (peft format, loadable by peft and by transformers'
    `load_adapter`) into `out_dir`, which must be new or empty, with a model card naming its
    base model (`model_card`).

    Raises ExportError when the adapter folder holds no peft adapter or `out_dir` is in use.
    """
    source = Path(adapter_path)
    if not (source / "adapter_config.json").is_file():
        raise ExportError(f"{source}: not a peft adapter folder (adapter_config.json missing)")
    tmp = _fresh_target(out_dir)
    try:
        for name in ADAPTER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)
        (tmp / "README.md").write_text(model_card(
            base_model, relation="adapter", title="LoRA adapter exported by ddft",
            usage="```python\nfrom peft import PeftModel\n"
                  "from transformers import VideoLlavaForConditionalGeneration\n"
                  f"base = VideoLlavaForConditionalGeneration.from_pretrained({base_model!r})\n"
                  "model = PeftModel.from_pretrained(base, 'PATH_TO_THIS_FOLDER')\n```\n"))
        return _publish(tmp, Path(out_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stored_dtype(base_model: str):
    """The torch dtype a model's weights are stored in, as its config records it (`dtype`, or
    `torch_dtype` in older configs); float32 when it names none. Raises OSError or ValueError
    when the config cannot be read."""
    # torch and transformers are imported here: the CLI must not wait for them.
    import torch
    from transformers import AutoConfig

    from engine.jobs.train_settings import resolve_base

    source, local = resolve_base(base_model)
    config = AutoConfig.from_pretrained(source, local_files_only=local)
    named = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(named, str):
        named = getattr(torch, named.removeprefix("torch."), None)
    return named if isinstance(named, torch.dtype) else torch.float32


def export_merged(base_model: str, adapter_path: str | Path, out_dir: Path) -> Path:
    """Load base + adapter in the base model's own dtype (`stored_dtype`: bfloat16 for
    Video-LLaVA-7B, so the merge needs the memory of the model as published, not twice it in
    float32), fold the LoRA weights into the base and save the result, in that dtype, with its
    processor and a model card as an ordinary model directory in `out_dir` (new or empty).

    Raises ExportError for a folder in use; ModelLoadError when base or adapter cannot be opened.
    """
    from engine.model.loading import load_variant

    try:
        dtype = stored_dtype(base_model)
    except (OSError, ValueError):
        dtype = None  # load_variant says what is wrong with the base, naming it
    tmp = _fresh_target(out_dir)
    try:
        loaded = load_variant(base_model, str(adapter_path), device="cpu", dtype=dtype)
        merged = loaded.model.merge_and_unload()
        from engine.model.timeaware import save_merged

        # A time-aware adapter's frame-time encoder is kept beside the merged weights.
        note = save_merged(merged, tmp, loaded.time)
        loaded.processor.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(
            base_model, relation="merge", title="Model merged by ddft (base + LoRA adapter)",
            usage="```python\nfrom transformers import VideoLlavaForConditionalGeneration\n"
                  "model = VideoLlavaForConditionalGeneration.from_pretrained("
                  "'PATH_TO_THIS_FOLDER')\n```\n" + (f"\n{note}\n" if note else "")))
        return _publish(tmp, Path(out_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
