"""Exporting a trained variant: its LoRA adapter in peft's format, or a merged model directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from db.errors import UserError

# What a peft adapter folder holds; a checkpoint also holds optimizer and scheduler state, RNG
# states and ddft's own records, none of which belong in an export.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


class ExportError(UserError, ValueError):
    """The variant cannot be exported as asked (no adapter, a folder in the way)."""


def _fresh_target(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir}: folder exists and is not empty; choose a new one")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def _publish(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked by _fresh_target
    os.replace(tmp, out_dir)
    return out_dir


def export_adapter(adapter_path: str | Path, out_dir: Path, *, base_model: str) -> Path:
    """Copy a variant's adapter (peft format, loadable by peft and by transformers'
    `load_adapter`) into `out_dir`, which must be new or empty.

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
        (tmp / "README.md").write_text(
            f"# LoRA adapter exported by ddft\n\nBase model: `{base_model}`\n\n"
            "```python\nfrom peft import PeftModel\n"
            "from transformers import VideoLlavaForConditionalGeneration\n"
            f"base = VideoLlavaForConditionalGeneration.from_pretrained({base_model!r})\n"
            "model = PeftModel.from_pretrained(base, 'PATH_TO_THIS_FOLDER')\n```\n"
        )
        return _publish(tmp, Path(out_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_merged(base_model: str, adapter_path: str | Path, out_dir: Path) -> Path:
    """Load base + adapter, fold the LoRA weights into the base and save the result with its
    processor as an ordinary model directory in `out_dir` (new or empty).

    Raises ExportError for a folder in use; ModelLoadError when base or adapter cannot be opened.
    """
    from engine.model.loading import load_variant

    tmp = _fresh_target(out_dir)
    try:
        loaded = load_variant(base_model, str(adapter_path), device="cpu")
        merged = loaded.model.merge_and_unload()
        merged.save_pretrained(tmp)
        loaded.processor.save_pretrained(tmp)
        return _publish(tmp, Path(out_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
