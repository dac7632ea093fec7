"""Training presets as TOML files (engine/presets/*.toml), and `KEY=VALUE` overrides on top.

Import-light: no torch. A preset is a flat table of engine.train.TrainConfig fields; a field left
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
from typing import Any

from engine.train import TrainConfig, TrainError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

PRESET_DIR = Path(__file__).with_name("presets")
# Not settable from a preset or an override: free-form notes the run itself fills in.
INTERNAL_FIELDS = ("extra",)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null", "")


def preset_names() -> list[str]:
    """The presets that ship with ddft (file stems in engine/presets/)."""
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
