"""A training run as asked for: what the New-run form and `ddft train` build, and the job params.

Import-light (no torch, no transformers): the workbench imports it to show the exact command a
form will run and to check the form before submitting.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.model.tiny import MARKER

TINY_PRESET = "tiny"
PAPER_PRESET = "paper"


def default_preset(base: str) -> str:
    """`tiny` for a directory holding ddft's tiny model, `paper` for anything else."""
    try:
        return TINY_PRESET if (Path(base).expanduser() / MARKER).is_file() else PAPER_PRESET
    except OSError:
        return PAPER_PRESET


def weight_text(weight: float) -> str:
    """A mixture weight as the command line writes it: 1, 0.5, 2.25."""
    weight = float(weight)
    return str(int(weight)) if weight.is_integer() else repr(weight)


def parse_dataset_arg(text: str) -> tuple[str, float]:
    """`NAME` or `NAME=WEIGHT` → (name, weight). Raises ValueError naming the argument when
    the weight is not a number > 0."""
    name, sep, weight = text.rpartition("=")
    if not sep:
        return text, 1.0
    try:
        value = float(weight)
    except ValueError:
        raise ValueError(f"--dataset {text}: expected NAME=WEIGHT with a number > 0, "
                         f"got weight {weight!r}") from None
    if not name or not value > 0 or value == float("inf"):
        raise ValueError(f"--dataset {text}: expected NAME=WEIGHT with a number > 0")
    return name, value


def parse_set_arg(text: str) -> tuple[str, str]:
    """`KEY=VALUE` → (key, value). Raises ValueError when there is no `=` or no key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {text}: expected KEY=VALUE")
    return key.strip(), value


@dataclass
class TrainRequest:
    """One LoRA run: the variant it makes, the base model, a preset, datasets with mixture
    weights, setting overrides, and how many GPUs."""

    variant: str
    base: str
    preset: str = ""
    """A preset name or file; empty picks `tiny` for the tiny model and `paper` otherwise."""
    datasets: dict[str, float] = field(default_factory=dict)
    """Dataset name → mixture weight (1: every included sample once an epoch)."""
    overrides: dict[str, str] = field(default_factory=dict)
    """TrainConfig field → value as text, applied on top of the preset."""
    gpus: int = 1

    def __post_init__(self) -> None:
        if not self.preset:
            self.preset = default_preset(self.base)
        self.datasets = {name: float(w) for name, w in self.datasets.items()}
        self.overrides = {key: str(value) for key, value in self.overrides.items()}

    def command(self) -> list[str]:
        """The `ddft train ...` argv a user could paste to start the same run."""
        argv = ["ddft", "train", "--variant", self.variant, "--base", self.base,
                "--preset", self.preset]
        for name, weight in self.datasets.items():
            argv += ["--dataset", f"{name}={weight_text(weight)}"]
        for key, value in self.overrides.items():
            argv += ["--set", f"{key}={value}"]
        if self.gpus != 1:
            argv += ["--gpus", str(self.gpus)]
        return argv

    def shell(self) -> str:
        """`command()` quoted for a POSIX shell."""
        return shlex.join(self.command())

    def params(self) -> dict[str, Any]:
        """The train job's params (what engine.jobs.handlers.train_task reads)."""
        return {"variant": self.variant, "base": self.base, "preset": self.preset,
                "datasets": dict(self.datasets), "overrides": dict(self.overrides),
                "gpus": self.gpus}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainRequest:
        """The request behind a train job's params."""
        return cls(variant=params["variant"], base=params["base"],
                   preset=params.get("preset", ""),
                   datasets=dict(params.get("datasets") or {}),
                   overrides=dict(params.get("overrides") or {}),
                   gpus=int(params.get("gpus", 1)))

    def problems(self, session: Any) -> list[str]:
        """Everything that would stop the run, checked against the store: a missing or taken
        variant name, an unknown preset, unknown datasets, datasets with no usable samples, bad
        weights, bad override keys or values, a bad GPU count."""
        from db import queries
        from engine.jobs.train_settings import load_preset, override_problems
        from engine.jobs.train_settings import TrainError

        out: list[str] = []
        if not self.variant.strip():
            out.append("variant: a name is needed")
        elif queries.get_variant(session, name=self.variant) is not None:
            out.append(f"variant: a model variant named {self.variant!r} exists already")
        if not self.base.strip():
            out.append("base: a hub id or a model directory is needed")
        else:
            from engine.model.loading import _resolve

            source, local = _resolve(self.base)
            if local and not (Path(source) / "config.json").is_file():
                out.append(f"base: {self.base}: expected a model directory with config.json, "
                           "found none")
        if not self.datasets:
            out.append("datasets: expected at least one, got none")
        usable = 0
        for name, weight in self.datasets.items():
            if not weight > 0:
                out.append(f"dataset {name}: expected a weight > 0, got {weight:g}")
            dataset = queries.get_dataset(session, name=name)
            if dataset is None:
                out.append(f"no dataset named {name} (`ddft data list` shows what is there)")
                continue
            included = queries.count_samples(session, dataset_id=dataset.id, included=True)
            failed = queries.count_samples(session, dataset_id=dataset.id, included=True,
                                           check_status="failed")
            if included - failed <= 0:
                out.append(f"dataset {name}: no included samples that passed the check")
            usable += included - failed
        if self.datasets and not usable and len(self.datasets) > 1:
            out.append("datasets: no included samples in any of them")
        if self.gpus < 1:
            out.append(f"gpus: expected an integer >= 1, got {self.gpus}")
        try:
            config = load_preset(self.preset)
        except TrainError as exc:
            out.append(str(exc))
        else:
            _, bad = override_problems(config, self.overrides)
            out += bad
            if not bad:
                out += [p for p in _config_with(config, self.overrides).problems(self.gpus)
                        if p.startswith("samples_per_step")]
        return out


def _config_with(config: Any, overrides: dict[str, str]) -> Any:
    from engine.jobs.train_settings import apply_overrides

    return apply_overrides(config, overrides)
