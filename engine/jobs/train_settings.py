"""Training presets as TOML files (engine/jobs/presets/*.toml), `KEY=VALUE` overrides on top, and
the best checkpoint of a run by its validation loss.

Import-light: no torch. A preset is a flat table of TrainConfig fields; a field left
out keeps TrainConfig's default, and an optional field left out (or given as "none" in an
override) is None. TrainConfig's fields carry their constraints (pydantic `Field`s on a plain
dataclass), so one validation reports every problem at once and `setting_schema()` describes
each setting for a form.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import threading
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from db.errors import UserError
from engine.evaluation.frames import DEFAULT_FRAMES

if TYPE_CHECKING:
    from sqlmodel import Session

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

ATTENTION = ("sdpa", "eager")
LOSS_NORMALISATIONS = ("batch", "tokens")
# Experiment trackers a run can report to through accelerate, and the module each needs.
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",),
            "mlflow": ("mlflow",)}
_TRACKER_LIST = "(?:" + "|".join(TRACKERS) + ")"
# The file that marks a model directory as ddft's tiny Video-LLaVA (engine.model.tiny writes it).
TINY_MARKER = "ddft_tiny.json"
# What a checkpoint's train_config.json holds beside the settings (engine.train writes it).
CHECKPOINT_RECORD = "train_config.json"


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
    preset files in engine/jobs/presets/ document the same fields for users.

    Constructing one does not validate it (stored configs are read back as they were);
    `problems()` and the preset and override readers do."""

    # pydantic reads this when it validates the dataclass: unknown keys are errors, attribute
    # docstrings become the schema's descriptions, and inf/nan are not numbers.
    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True,
                                     allow_inf_nan=False)

    lora_r: Annotated[int, Field(ge=1)] = 16
    """LoRA rank on every linear layer of the language model."""
    lora_alpha: Annotated[int, Field(gt=0)] = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """Dropout on the LoRA input."""
    learning_rate: Annotated[float, Field(gt=0)] = 2e-4
    """Peak learning rate of the LoRA weights."""
    projector_learning_rate: Annotated[float, Field(ge=0)] = 2e-5
    """Peak learning rate of the multimodal projector, which is trained in full."""
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    """AdamW weight decay, for both groups."""
    max_steps: Annotated[int, Field(ge=1)] | None = None
    """Optimizer steps to run; when None, `epochs` passes over the data decide."""
    epochs: Annotated[int, Field(ge=1)] = 1
    """Passes over the (weighted) examples when `max_steps` is None."""
    batch_size: Annotated[int, Field(ge=1)] = 4
    """Examples per micro-batch on one device (one modality per batch)."""
    grad_accum: Annotated[int, Field(ge=1)] | None = None
    """Micro-batches per optimizer step on each device; None derives it from
    `samples_per_step`, or uses 1 when that is None too."""
    samples_per_step: Annotated[int, Field(ge=1)] | None = None
    """Samples per optimizer step over all devices (batch_size x grad_accum x gpus); None lets
    `grad_accum` decide."""
    loss_normalisation: Literal["batch", "tokens"] = "batch"
    """How micro-batch losses make a step's loss: "batch" averages over each micro-batch's
    answer tokens and divides by the accumulation count (Video-LLaVA's trainer, transformers
    before 4.46), so every micro-batch weighs the same; "tokens" divides the summed token losses
    by the answer tokens of the whole step on every device (transformers' Trainer since 4.46),
    so every answer token weighs the same."""
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.03
    """Fraction of the steps spent warming the learning rate up linearly from zero."""
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1
    """The cosine schedule ends at this fraction of the peak learning rates."""
    max_grad_norm: Annotated[float, Field(ge=0)] = 1.0
    """Gradient clipping over all trainable parameters; 0 turns it off."""
    seed: int = 0
    """Seeds LoRA initialisation, dropout, the mixture sampling, the data order and the
    held-out validation samples."""
    num_frames: Annotated[int, Field(ge=1)] = DEFAULT_FRAMES
    """Frames sampled uniformly from each video (Video-LLaVA needs 8)."""
    max_length: Annotated[int, Field(ge=8)] | None = None
    """Longest sequence in text tokens, an image or a video counting as one token (Video-LLaVA's
    model_max_length: its 2,056 visual tokens come on top); longer answers are cut (never the
    prompt or the visual tokens). None keeps every token."""
    group_by_length: bool = True
    """Within each modality, put examples of similar length in the same batch (less padding)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: much less memory, about a third slower."""
    attention: Literal["sdpa", "eager"] = "sdpa"
    """Attention kernel: sdpa (PyTorch's scaled-dot-product attention) or eager."""
    fused_optimizer: bool = True
    """Use torch's fused AdamW kernel on CUDA (ignored on CPU)."""
    bf16: bool = True
    """On CUDA: frozen weights and the forward pass in bfloat16, trainable weights and optimizer
    state in float32. CPU always runs float32."""
    val_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    """Fraction of each training dataset held out (chosen with `seed`) to measure a validation
    loss on; 0 trains on every sample and measures none."""
    eval_every: Annotated[int, Field(ge=0)] = 0
    """Measure the validation loss every this many optimizer steps, and always at each
    checkpoint; 0: only at checkpoints."""
    save_every: Annotated[int, Field(ge=0)] = 0
    """Write step-NNNNNN/ checkpoints every this many optimizer steps; 0 writes only final/
    (and the checkpoint a cancel writes)."""
    log_every: Annotated[int, Field(ge=1)] = 1
    """Report loss, learning rate and throughput every this many optimizer steps."""
    report_to: Annotated[str, Field(
        pattern=rf"^\s*(?:none|{_TRACKER_LIST}(?:\s*,\s*{_TRACKER_LIST})*)\s*$",
        json_schema_extra={"expected": "none, or one or more of " + ", ".join(TRACKERS)
                                       + " separated by commas"})] = "none"
    """Experiment trackers that get the run's metrics too (through accelerate), beside the
    store: none, or tensorboard, wandb, mlflow separated by commas; each must be installed."""
    time_in_text: bool = False
    """Start each video prompt with the sampled frames' times ("Frames: frame 1 at 0.0s, ...,
    frame 8 at 41.3s (video 45.0s)."); generation, timestamps and grounding then do the same."""
    time_embedding: bool = False
    """Add a learned embedding of each sampled frame's time (seconds and fraction of the
    duration) to that frame's visual tokens after the projector; the small encoder trains with
    the LoRA adapter and is saved with it. Off: plain Video-LLaVA, which has no notion of time."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the checkpoint (the run id, the data version)."""

    def accumulation(self, world_size: int = 1) -> int:
        """Micro-batches per optimizer step on each of `world_size` devices."""
        if self.grad_accum is not None:
            return self.grad_accum
        if self.samples_per_step is not None:
            return max(1, self.samples_per_step // (self.batch_size * world_size))
        return 1

    def trackers(self) -> list[str]:
        """The tracker names of `report_to`, in order; [] for none."""
        names = [name.strip() for name in self.report_to.split(",")]
        return [name for name in names if name and name != "none"]

    def problems(self, world_size: int = 1) -> list[str]:
        """Every invalid setting, each as `field: expected ..., got ...`: values out of their
        range or of the wrong type, settings that contradict each other on `world_size`
        devices, and trackers that are not installed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in INTERNAL_FIELDS}
        _, out = _validate(values)
        bad = {p.split(":", 1)[0] for p in out}
        return out + [p for p in self._relation_problems(world_size)
                      if p.split(":", 1)[0] not in bad]

    def _relation_problems(self, world_size: int) -> list[str]:
        out: list[str] = []
        batch_ok = isinstance(self.batch_size, int) and self.batch_size >= 1
        accum_ok = self.grad_accum is None or (isinstance(self.grad_accum, int)
                                               and self.grad_accum >= 1)
        if isinstance(self.samples_per_step, int) and self.samples_per_step >= 1 and batch_ok \
                and accum_ok:
            per_pass = self.batch_size * world_size
            if self.grad_accum is None and self.samples_per_step % per_pass:
                out.append(f"samples_per_step: expected a multiple of batch_size x gpus = "
                           f"{per_pass}, got {self.samples_per_step}")
            elif self.grad_accum is not None and per_pass * self.grad_accum != self.samples_per_step:
                out.append(f"samples_per_step: expected batch_size x grad_accum x gpus = "
                           f"{per_pass * self.grad_accum}, got {self.samples_per_step} "
                           "(set one of them to none)")
        if isinstance(self.report_to, str):
            missing = [name for name in self.trackers() if name in TRACKERS
                       and not any(_installed(m) for m in TRACKERS[name])]
            if missing:
                out.append(f"report_to: expected installed trackers, found {', '.join(missing)} "
                           f"not installed (pip install {' '.join(missing)})")
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from stored values; keys that are not fields are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


PRESET_DIR = Path(__file__).with_name("presets")
# Not settable from a preset or an override: free-form notes the run itself fills in.
INTERNAL_FIELDS = ("extra",)
_NONE = ("none", "null", "")


# Building the validator reads TrainConfig's source for the field docstrings (ast.parse), which
# CPython 3.11 cannot do in two threads at once (a worker and the UI thread of the New run form).
_BUILD_LOCK = threading.Lock()


def _adapter() -> TypeAdapter:
    with _BUILD_LOCK:
        return _built_adapter()


@lru_cache(maxsize=1)
def _built_adapter() -> TypeAdapter:
    return TypeAdapter(TrainConfig)


@lru_cache(maxsize=1)
def setting_schema() -> dict[str, dict[str, Any]]:
    """Each setting a preset or an override may give, in TrainConfig's order: its JSON schema
    (from pydantic) plus `default` (as TOML would write it: none for None), `expected` (what a
    value must be, in words), `kind` (integer, number, boolean, string, choice) and
    `description` (the field's doc). What the New run form lists and what error messages say."""
    schema = _adapter().json_schema()
    out: dict[str, dict[str, Any]] = {}
    for f in fields(TrainConfig):
        if f.name in INTERNAL_FIELDS:
            continue
        prop = dict(schema["properties"][f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        variants = prop.get("anyOf", [prop])
        typed = next(v for v in variants if v.get("type") != "null")
        optional = any(v.get("type") == "null" for v in variants)
        if "enum" in typed:
            kind = "choice"
        else:
            kind = {"integer": "integer", "number": "number", "boolean": "boolean"}.get(
                typed.get("type", ""), "string")
        out[f.name] = {
            **prop,
            "kind": kind,
            "optional": optional,
            "default": _toml_value(default),
            "expected": prop.get("expected") or _expected(typed, optional),
            "type_expected": _expected(typed, optional, with_range=False),
            "description": " ".join(str(prop.get("description", "")).split()),
        }
    return out


def _toml_value(value: Any) -> Any:
    """A default as a preset file or an override writes it: none, true, false, or the value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expected(typed: dict[str, Any], optional: bool, *, with_range: bool = True) -> str:
    """A setting's JSON schema in words: "an integer >= 1", "none or an integer >= 1",
    "a number in [0, 1)", "sdpa or eager"."""
    if "enum" in typed:
        return " or ".join(str(v) for v in typed["enum"])
    if "expected" in typed:
        return typed["expected"]
    name = {"integer": "an integer", "number": "a number", "boolean": "true or false"}.get(
        typed.get("type", ""), "a string")
    low = ("[", typed["minimum"]) if "minimum" in typed else (
        ("(", typed["exclusiveMinimum"]) if "exclusiveMinimum" in typed else None)
    high = ("]", typed["maximum"]) if "maximum" in typed else (
        (")", typed["exclusiveMaximum"]) if "exclusiveMaximum" in typed else None)
    if with_range:
        if low and high:
            name += f" in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
        elif low:
            name += f" {'>=' if low[0] == '[' else '>'} {_number(low[1])}"
        elif high:
            name += f" {'<=' if high[0] == ']' else '<'} {_number(high[1])}"
    if optional:
        return f"none or {name}" if with_range else f"{name} or none"
    return name


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _shown(value: Any, kind: str) -> str:
    """How a rejected value is quoted: a number that parsed as one is shown as that number."""
    if isinstance(value, str) and kind in ("integer", "number"):
        try:
            return repr(int(value.strip()) if kind == "integer" else float(value.strip()))
        except ValueError:
            pass
    return repr(value)


def _unknown(key: str) -> str:
    names = list(setting_schema())
    close = difflib.get_close_matches(key, names, n=1)
    return (f"{key}: unknown setting (did you mean {close[0]}?)" if close else
            f"{key}: unknown setting, expected one of {', '.join(names)}")


def _prepared(values: dict[str, Any]) -> dict[str, Any]:
    """Values as pydantic should see them: text stripped, and "none" (or an empty value) for
    None where a setting may be none."""
    schema = setting_schema()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = value.strip()
            if key in schema and schema[key]["optional"] and value.lower() in _NONE:
                value = None
        out[key] = value
    return out


def _validate(values: dict[str, Any]) -> tuple[TrainConfig | None, list[str]]:
    """`values` (settings by name, as TOML, JSON or command-line text gives them) as a
    validated TrainConfig, or None and one message per problem: `key: expected ..., got ...`,
    unknown keys with the closest setting."""
    schema = setting_schema()
    problems: dict[str, str] = {}
    # pydantic's lax mode reads true as 1: a switch given for a number is a mistake.
    for key, value in values.items():
        if isinstance(value, bool) and key in schema and schema[key]["kind"] != "boolean":
            problems[key] = f"{key}: expected {schema[key]['type_expected']}, got {value!r}"
    try:
        config = _adapter().validate_python(_prepared(values))
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return (None, list(problems.values())) if problems else (config, [])
    for error in errors:
        key = str(error["loc"][0]) if error["loc"] else ""
        if key in problems:
            continue  # one message a setting: the first thing wrong with it
        if error["type"] in ("unexpected_keyword_argument", "extra_forbidden") \
                or key not in schema:
            problems[key] = _unknown(key)
            continue
        setting = schema[key]
        ranged = error["type"] in _RANGE_ERRORS or error["type"].startswith(
            ("literal", "string_pattern", "enum"))
        expected = setting["expected"] if ranged else setting["type_expected"]
        problems[key] = f"{key}: expected {expected}, got {_shown(error['input'], setting['kind'])}"
    return None, list(problems.values())


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


def override_problems(config: TrainConfig, overrides: dict[str, Any]) -> tuple[
        TrainConfig, list[str]]:
    """`config` with `overrides` applied as far as they are valid, and every problem found:
    unknown keys, values of the wrong type or out of range, and settings that contradict each
    other (TrainConfig.problems on one device)."""
    current = {f.name: getattr(config, f.name) for f in fields(config)
               if f.name not in INTERNAL_FIELDS}
    internal = [key for key in overrides if key in INTERNAL_FIELDS]
    overrides = {k: v for k, v in overrides.items() if k not in INTERNAL_FIELDS}
    updated, problems = _validate({**current, **overrides})
    problems += [_unknown(key) for key in internal]
    if updated is None:
        bad = {p.split(":", 1)[0] for p in problems}
        updated, _ = _validate({**current, **{k: v for k, v in overrides.items()
                                              if k not in bad}})
        if updated is None:  # what was valid alone is not together; keep the config as it was
            updated = dataclasses.replace(config)
    updated.extra = dict(config.extra)
    bad = {p.split(":", 1)[0] for p in problems}
    problems += [p for p in updated._relation_problems(1) if p.split(":", 1)[0] not in bad]
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


# ---------------------------------------------------------------- the best checkpoint


@dataclass(frozen=True)
class BestCheckpoint:
    """The checkpoint of a run with the lowest validation loss."""

    step: int
    path: str  # the checkpoint folder, as the store's Checkpoint row holds it
    val_loss: float
    final: bool
    id: int | None = None  # the Checkpoint row


def checkpoint_val_loss(folder: Path) -> float | None:
    """The validation loss a checkpoint folder's train_config.json records, or None (no
    held-out samples, an older checkpoint, an unreadable file)."""
    try:
        value = json.loads((Path(folder) / CHECKPOINT_RECORD).read_text()).get("val_loss")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value == value else None


def best_checkpoint(session: Session, *, job_id: int) -> BestCheckpoint:
    """The checkpoint of training job `job_id` with the lowest validation loss (the earliest of
    equal ones). A checkpoint's loss is the one its train_config.json records, else the store's
    `val_loss` metric at its step; checkpoints whose folder is gone do not count.

    Raises TrainError when the job has no checkpoint with a validation loss (it held out no
    samples: val_fraction 0).
    """
    from db import queries  # deferred: the training loop imports this module without a store

    metrics = dict(queries.metric_series(session, job_id=job_id, name="val_loss"))
    candidates: list[BestCheckpoint] = []
    for checkpoint in queries.list_checkpoints(session, job_id=job_id):
        folder = Path(checkpoint.path)
        if not folder.is_dir():
            continue
        loss = checkpoint_val_loss(folder)
        if loss is None:
            loss = metrics.get(checkpoint.step)
        if loss is None:
            continue
        candidates.append(BestCheckpoint(checkpoint.step, checkpoint.path, loss,
                                         checkpoint.final, checkpoint.id))
    if not candidates:
        raise TrainError(f"job {job_id}: no checkpoint has a validation loss (the run held out "
                         "no samples: train with val_fraction > 0)")
    return min(candidates, key=lambda c: (c.val_loss, c.step))
