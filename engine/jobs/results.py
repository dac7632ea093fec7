"""A job's result in words, for a terminal line or a notice: `12 generated, 0 skipped`, never a
Python dict."""

from __future__ import annotations

from typing import Any, Mapping

# The result keys a person reads first, in this order, with their words; every other key that
# holds a number or a short text follows as `key value`.
_LEADING = (
    ("variant", "variant {}"),
    ("steps", "{} steps"),
    ("final_loss", "final loss {:.4f}"),
    ("generated", "{} generated"),
    ("grounded", "{} grounded"),
    ("judged", "{} judged"),
    ("checked", "{} checked"),
    ("ok", "{} ok"),
    ("warned", "{} warned"),
    ("skipped", "{} skipped"),
    ("failed", "{} failed"),
    ("unparsable", "{} unparsable"),
    ("left_out", "{} left out"),
    ("no_recipe", "{} without a recipe"),
)
# Keys too long or too internal for one line (the detail and `ddft jobs show` have them).
_LEFT_OUT = frozenset({"failures", "left_out_samples", "no_recipe_samples", "reasons", "notes",
                       "summary", "adapter_dir", "frames_file", "params_key", "cost_usd",
                       "requests", "cache_hits", "total_steps", "truncated", "padding_fraction",
                       "resumed_from_step", "n_samples", "stopped"})


def describe_result(result: Mapping[str, Any] | None) -> str:
    """`result` as words on one line (`12 generated, 0 skipped`); "no result" when empty. A
    summary the job wrote itself (the judge's, with its cost) is used as it is."""
    if not result:
        return "no result"
    summary = result.get("summary")
    if isinstance(summary, str) and summary:
        return summary
    parts: list[str] = []
    for key, pattern in _LEADING:
        value = result.get(key)
        if value is None:
            continue
        try:
            parts.append(pattern.format(value))
        except (TypeError, ValueError):
            parts.append(f"{key} {value}")
    known = {key for key, _ in _LEADING} | _LEFT_OUT
    for key, value in result.items():
        if key in known or isinstance(value, (dict, list, tuple)):
            continue
        parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts) or "no result"
