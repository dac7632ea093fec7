"""The New run form's data: its defaults from the store, its fields as a TrainRequest, help on the
training settings from their schema, and starting the run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from workbench.data.jobs import JobsUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PRESETS = ("tiny", "paper")


class RunRequestUnavailable(RuntimeError):
    """engine.jobs.requests cannot be imported, so the form cannot build a `ddft train` command."""


# The time options of a run (engine.model.timeaware), each a checkbox in the form: the key it
# sets to true and what the checkbox says.
TIME_OPTIONS = (("time_in_text", "frame times in the prompt's text"),
                ("time_embedding", "a learned frame-time embedding"))


@dataclass(frozen=True)
class TrainDataset:
    name: str
    modality: str
    task: str = "recipe"  # "timestamps": the timestamp task (`ddft data timestamps`)

    @property
    def label(self) -> str:
        return f"{self.name}  ({self.modality}, step times)" if self.task == "timestamps" \
            else f"{self.name}  ({self.modality})"

    @property
    def checked(self) -> bool:
        """Ticked when the form opens: the recipe task's datasets; a timestamp task is chosen."""
        return self.task != "timestamps"


@dataclass(frozen=True)
class RunFormDefaults:
    variant: str  # a name no variant or run has taken yet
    base: str  # the base of the newest variant without an adapter; "" when there is none
    bases: tuple[str, ...]  # every base model the store knows, newest first
    preset: str
    datasets: tuple[TrainDataset, ...]
    request_error: str | None  # why TrainRequest is unavailable, None when it loaded


@dataclass(frozen=True)
class RunForm:
    """The form's fields as typed."""

    variant: str
    base: str
    preset: str
    datasets: tuple[tuple[str, bool, str], ...]  # name, checked, weight as typed
    overrides: str
    gpus: str
    time_options: tuple[str, ...] = ()  # the TIME_OPTIONS keys ticked


def train_request_class() -> type:
    """engine.jobs.requests.TrainRequest. Raises RunRequestUnavailable when it cannot be imported."""
    try:
        from engine.jobs.requests import TrainRequest
    except ImportError as exc:
        raise RunRequestUnavailable(f"engine.jobs.requests is not available ({exc})") from exc
    return TrainRequest


def load_run_form(db_engine: Engine) -> RunFormDefaults:
    """The form's starting values. Also imports engine.jobs.requests here, in a worker thread,
    so that typing in the form never waits on an import."""
    from db.queries import list_datasets, list_jobs, list_variants
    from db.store import session_scope

    request_error: str | None = None
    try:
        train_request_class()
        _schema()  # built here, in the worker, so that typing an override never waits on it
    except RunRequestUnavailable as exc:
        request_error = str(exc)
    with session_scope(db_engine) as session:
        variants = list_variants(session)
        taken = {v.name for v in variants}
        taken |= {str(job.params.get("variant")) for job in list_jobs(session, kind="train")}
        bases: list[str] = []
        for variant in reversed(variants):  # newest first
            if variant.adapter_path is None and variant.base_model not in bases:
                bases.append(variant.base_model)
        datasets = tuple(TrainDataset(d.name, d.modality, str((d.meta or {}).get("task", "recipe")))
                         for d in list_datasets(session, purpose="train"))
    number = 1
    while f"lora-{number}" in taken:
        number += 1
    base = bases[0] if bases else ""
    preset = "paper"
    if request_error is None and base:
        # The module's own rule: `tiny` for a directory holding ddft's tiny model, else `paper`.
        from engine.jobs.requests import default_preset

        preset = default_preset(base)
    return RunFormDefaults(variant=f"lora-{number}", base=base, bases=tuple(bases), preset=preset,
                           datasets=datasets,
                           request_error=request_error)


def _schema() -> dict[str, dict[str, Any]]:
    """The training settings' schema (engine.jobs.train_settings.setting_schema), {} when
    engine.jobs cannot be imported."""
    try:
        from engine.jobs.train_settings import setting_schema
    except ImportError:
        return {}
    return setting_schema()


def _first_sentence(text: str, limit: int = 90) -> str:
    """The first sentence of a setting's description, cut at `limit` characters."""
    head, dot, _ = text.partition(". ")
    head += "." if dot else ""
    return head if len(head) <= limit else head[:limit - 1].rstrip() + "…"


def settings_help(overrides: str) -> Text:
    """What the overrides box can set, from the settings' schema: for each known key typed in
    `overrides` (`key=value` lines) what it expects, its default and what it does; with none
    typed, the names of every setting."""
    schema = _schema()
    if not schema:
        return Text("")
    typed = []
    for line in overrides.splitlines():
        key = line.partition("=")[0].strip()
        if key in schema and key not in typed:
            typed.append(key)
    text = Text()
    if not typed:
        text.append("settings: ", style="bold")
        text.append(", ".join(schema))
        return text
    for index, key in enumerate(typed):
        setting = schema[key]
        if index:
            text.append("\n")
        text.append(key, style="bold")
        text.append(f": {setting['expected']}; default {setting['default']}. ")
        text.append(_first_sentence(setting["description"]))
    return text


def parse_form(form: RunForm) -> tuple[dict[str, Any] | None, list[str]]:
    """The TrainRequest arguments of `form`, or None and one problem per field that cannot be
    read (a weight or GPU count that is not a number, an override line without `=`)."""
    problems: list[str] = []
    datasets: dict[str, float] = {}
    for name, checked, typed in form.datasets:
        if not checked:
            continue
        try:
            weight = float(typed)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight):
            problems.append(f"weight of {name}: expected a number, found {typed.strip()!r}")
            continue
        datasets[name] = weight
    overrides: dict[str, str] = {}
    for number, line in enumerate(form.overrides.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            problems.append(f"overrides line {number}: expected key=value, found {line!r}")
            continue
        overrides[key.strip()] = value.strip()
    for key in form.time_options:
        if key in overrides:
            problems.append(f"{key} is ticked and also typed in the overrides "
                            f"({key}={overrides[key]}); keep one")
            continue
        overrides[key] = "true"
    try:
        gpus = int(form.gpus)
    except ValueError:
        problems.append(f"GPUs: expected a whole number, found {form.gpus.strip()!r}")
        gpus = 1
    if problems:
        return None, problems
    return {"variant": form.variant.strip(), "base": form.base.strip(), "preset": form.preset.strip(),
            "datasets": datasets, "overrides": overrides, "gpus": gpus}, []


def check_request(db_engine: Engine, request: Any) -> list[str]:
    """What `request.problems` finds against the store (unknown datasets, a taken name, …)."""
    from db.store import session_scope

    with session_scope(db_engine) as session:
        return list(request.problems(session))


def start_run(db_engine: Engine, request: Any, *, variant: str, workspace: Path) -> int:
    """Create the run's job and start it detached; returns the job id. Raises JobsUnavailable
    when engine.jobs is missing, and engine.jobs.JobError when the job cannot start."""
    try:
        from engine.jobs import submit
    except ImportError as exc:
        raise JobsUnavailable(f"cannot start the run: engine.jobs is not available ({exc})") from exc
    return submit(db_engine, request, workspace=workspace, title=f"train {variant}")
