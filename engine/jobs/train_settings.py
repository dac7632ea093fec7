"""Training presets as TOML files (engine/jobs/presets/*.toml), and `KEY=VALUE` overrides on top.

Import-light: no torch. A preset is a flat table of TrainConfig fields; a field left
out keeps TrainConfig's default, and an optional field left out (or given as "none" in an
override) is None.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from dataclasses import dataclass, field, fields
from typing import Any

from db.errors import UserError
from engine.evaluation.frames import DEFAULT_FRAMES


try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

ATTENTION = ("sdpa", "eager")
# The file that marks a model directory as ddft's tiny Video-LLaVA (engine.model.tiny writes it).
TINY_MARKER = "ddft_tiny.json"


def resolve_base(name_or_path: str) -> tuple[str, bool]:
    """The string to hand to from_pretrained, and whether it is a local directory.

    A name that looks like a path (absolute, starting with . or ~, or existing on disk) is
    treated as local; anything else of the form `owner/name` is a hub id. Import-light, so that
    the New run form checks a base without importing the model code.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    looks_local = (
        path.exists()
        or path.is_absolute()
        or text.startswith((".", "~"))
        or text.count("/") != 1
    )
    return (str(path), True) if looks_local else (text, False)


class TrainError(UserError, ValueError):
    """Training cannot start or go on: a bad setting, bad examples, a checkpoint that does not
    match, or out of GPU memory."""


@dataclass
class TrainConfig:
    """Hyper-parameters of a LoRA run. Stored as train_config.json in every checkpoint; the
    preset files in engine/jobs/presets/ document the same fields for users."""

    lora_r: int = 16
    """LoRA rank on every linear layer of the language model."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    learning_rate: float = 2e-4
    """Peak learning rate of the LoRA weights."""
    projector_learning_rate: float = 2e-5
    """Peak learning rate of the multimodal projector, which is trained in full."""
    weight_decay: float = 0.0
    """AdamW weight decay, for both groups."""
    max_steps: int | None = None
    """Optimizer steps to run; when None, `epochs` passes over the data decide."""
    epochs: int = 1
    """Passes over the (weighted) examples when `max_steps` is None."""
    batch_size: int = 4
    """Examples per micro-batch on one device (one modality per batch)."""
    grad_accum: int | None = None
    """Micro-batches per optimizer step on each device; None derives it from
    `samples_per_step`, or uses 1 when that is None too."""
    samples_per_step: int | None = None
    """Samples per optimizer step over all devices (batch_size x grad_accum x gpus); None lets
    `grad_accum` decide."""
    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming the learning rate up linearly from zero."""
    min_lr_ratio: float = 0.1
    """The cosine schedule ends at this fraction of the peak learning rates."""
    max_grad_norm: float = 1.0
    """Gradient clipping over all trainable parameters; 0 turns it off."""
    seed: int = 0
    """Seeds LoRA initialisation, dropout, the mixture sampling and the data order."""
    num_frames: int = DEFAULT_FRAMES
    """Frames sampled uniformly from each video (Video-LLaVA needs 8)."""
    max_length: int | None = None
    """Longest sequence in text tokens, an image or a video counting as one token (Video-LLaVA's
    model_max_length: its 2,056 visual tokens come on top); longer answers are cut (never the
    prompt or the visual tokens). None keeps every token."""
    group_by_length: bool = True
    """Within each modality, put examples of similar length in the same batch (less padding)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: much less memory, about a third slower."""
    attention: str = "sdpa"
    """Attention kernel: sdpa (PyTorch's scaled-dot-product attention) or eager."""
    fused_optimizer: bool = True
    """Use torch's fused AdamW kernel on CUDA (ignored on CPU)."""
    bf16: bool = True
    """On CUDA: frozen weights and the forward pass in bfloat16, trainable weights and optimizer
    state in float32. CPU always runs float32."""
    save_every: int = 0
    """Write step-NNNNNN/ checkpoints every this many optimizer steps; 0 writes only final/
    (and the checkpoint a cancel writes)."""
    log_every: int = 1
    """Report loss, learning rate and throughput every this many optimizer steps."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the checkpoint (the run id, the data version)."""

    def accumulation(self, world_size: int = 1) -> int:
        """Micro-batches per optimizer step on each of `world_size` devices."""
        if self.grad_accum is not None:
            return self.grad_accum
        if self.samples_per_step is not None:
            return max(1, self.samples_per_step // (self.batch_size * world_size))
        return 1

    def problems(self, world_size: int = 1) -> list[str]:
        """Every invalid setting, each as `field: expected ..., got ...`."""
        out: list[str] = []

        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                out.append(f"{name}: expected {expected}, got {getattr(self, name)!r}")

        need(self.lora_r >= 1, "lora_r", "an integer >= 1")
        need(self.lora_alpha > 0, "lora_alpha", "a number > 0")
        need(0 <= self.lora_dropout < 1, "lora_dropout", "a number in [0, 1)")
        need(self.learning_rate > 0, "learning_rate", "a number > 0")
        need(self.projector_learning_rate >= 0, "projector_learning_rate", "a number >= 0")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(self.max_steps is None or self.max_steps >= 1, "max_steps",
             "none or an integer >= 1")
        need(self.epochs >= 1, "epochs", "an integer >= 1")
        need(self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(self.grad_accum is None or self.grad_accum >= 1, "grad_accum",
             "none or an integer >= 1")
        need(self.samples_per_step is None or self.samples_per_step >= 1, "samples_per_step",
             "none or an integer >= 1")
        if self.samples_per_step and self.batch_size >= 1 and (
            self.grad_accum is None or self.grad_accum >= 1
        ):
            per_pass = self.batch_size * world_size
            if self.grad_accum is None and self.samples_per_step % per_pass:
                out.append(f"samples_per_step: expected a multiple of batch_size x gpus = "
                           f"{per_pass}, got {self.samples_per_step}")
            elif self.grad_accum is not None and per_pass * self.grad_accum != self.samples_per_step:
                out.append(f"samples_per_step: expected batch_size x grad_accum x gpus = "
                           f"{per_pass * self.grad_accum}, got {self.samples_per_step} "
                           "(set one of them to none)")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio", "a number in [0, 1)")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "a number in [0, 1]")
        need(self.max_grad_norm >= 0, "max_grad_norm", "a number >= 0")
        need(self.num_frames >= 1, "num_frames", "an integer >= 1")
        need(self.max_length is None or self.max_length >= 8, "max_length", "none or >= 8")
        need(self.attention in ATTENTION, "attention", " or ".join(ATTENTION))
        need(self.save_every >= 0, "save_every", "an integer >= 0")
        need(self.log_every >= 1, "log_every", "an integer >= 1")
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from stored values; keys that are not fields are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


PRESET_DIR = Path(__file__).with_name("presets")
# Not settable from a preset or an override: free-form notes the run itself fills in.
INTERNAL_FIELDS = ("extra",)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null", "")


def preset_names() -> list[str]:
    """The presets that ship with ddft (file stems in engine/jobs/presets/)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def preset_path(name_or_path: str | Path) -> Path:
    """The file behind a preset name (`paper`, `tiny`) or a path to a .toml file.
    Raises TrainError when neither exists."""
    text = str(name_or_path)
    if text in preset_names():
        return PRESET_DIR / f"{text}.toml"
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise TrainError(f"preset {text!r}: expected one of {', '.join(preset_names())} or a path "
                     "to a .toml file, found neither")


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)
            if f.name not in INTERNAL_FIELDS}


def _describe(kind: Any) -> str:
    base, optional = _unwrap(kind)
    name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[base]
    return f"{name} or none" if optional else name


def _unwrap(kind: Any) -> tuple[type, bool]:
    """(the base type, whether None is allowed) of `int`, `int | None` and the like."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


def _parse(value: Any, kind: Any) -> Any:
    """`value` (a string from the command line, or a TOML/JSON value) as a value of `kind`.
    Raises ValueError when it is not one."""
    base, optional = _unwrap(kind)
    if isinstance(value, str):
        text = value.strip()
        if optional and text.lower() in _NONE:
            return None
        if base is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if base is int:
            return int(text)
        if base is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
        return value
    if value is None and optional:
        return None
    if base is bool and isinstance(value, bool):
        return value
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is str and isinstance(value, str):
        return value
    raise ValueError


def override_problems(config: TrainConfig, overrides: dict[str, Any]) -> tuple[
        TrainConfig, list[str]]:
    """`config` with `overrides` applied as far as they parse, and every problem found: unknown
    keys, values of the wrong type, and settings that TrainConfig.problems rejects."""
    types_by_name = _field_types()
    problems: list[str] = []
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in types_by_name:
            close = difflib.get_close_matches(key, list(types_by_name), n=1)
            problems.append(f"{key}: unknown setting (did you mean {close[0]}?)" if close else
                            f"{key}: unknown setting, expected one of "
                            f"{', '.join(types_by_name)}")
            continue
        try:
            changes[key] = _parse(value, types_by_name[key])
        except (ValueError, TypeError):
            problems.append(f"{key}: expected {_describe(types_by_name[key])}, got {value!r}")
    updated = dataclasses.replace(config, **changes)
    # Range checks on what parsed; a key that did not parse has said its piece already.
    bad = {p.split(":", 1)[0] for p in problems}
    problems += [p for p in updated.problems() if p.split(":", 1)[0] not in bad]
    return updated, problems


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of `config` with `overrides` ({"key": "value"}, strings parsed to each field's
    type; "none" clears an optional field). Raises TrainError listing every unknown key and bad
    value, each with what was expected and what was found."""
    updated, problems = override_problems(config, overrides)
    if problems:
        raise TrainError("bad training settings: " + "; ".join(problems))
    return updated


def load_preset(name_or_path: str | Path) -> TrainConfig:
    """The TrainConfig of a shipped preset (`paper`, `tiny`) or of a preset file.

    Raises TrainError naming the file for unreadable TOML, unknown keys and bad values (every
    problem in one message).
    """
    path = preset_path(name_or_path)
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrainError(f"{path}: not a readable TOML preset ({exc})") from None
    nested = [k for k, v in values.items() if isinstance(v, dict)]
    problems = [f"{k}: expected a setting, found a table [{k}]" for k in nested]
    config, more = override_problems(
        TrainConfig(), {k: v for k, v in values.items() if k not in nested})
    problems += more
    if problems:
        raise TrainError(f"{path}: " + "; ".join(problems))
    return config
