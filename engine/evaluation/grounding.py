"""Keyframe grounding: which of the 8 sampled frames each generated recipe step attends to most,
measured from the language model's attention, and how often that frame lies in the step's
annotated segment compared with a frame picked at random.

**Capture.** A stored recipe generation is run again, teacher-forced: the prompt with its
video plus the generated text, in one forward pass with eager attention. A causal decoder's
attention at each position depends only on the positions before it, so every generated token
gets exactly the attention it had while it was being generated (up to the re-tokenisation of
the decoded text). A generated token's attention is taken from the position that predicted
it (the one before it), which is the attention the model had while choosing it. Hooks on the
chosen decoder layers' attention modules reduce each layer's weights at once to the attention
mass every generated token puts on each frame's visual tokens, so only (layers × heads ×
tokens × 8) numbers are kept, never all layers' full L × L matrices at once (about 11 GB in
bfloat16 for the 7B model's 32 layers × 32 heads at 2,300 tokens).

**Visual tokens.** The processor expands the one `<video>` placeholder into frames × tokens
per frame video tokens (8 × 257 for Video-LLaVA-7B, 8 × 17 for the tiny model) and the model
scatters the video features into those positions frame by frame, so frame f owns the f-th
block of `tokens_per_frame` video-token positions.

**Steps.** The generated text's steps are the lines of its steps section, as
`engine.evaluation.recipe.parse_recipe` reads them; a step's tokens are the generated tokens whose
characters overlap its line. Its weight on frame f is the attention mass on f's visual tokens,
averaged over its tokens and the chosen layers and heads; the top-k frames are kept.

**Defaults.** The later half of the decoder layers and every head. Early layers spread their
attention over the whole visual sequence almost uniformly (FastV, Chen et al. 2024, found
attention to image tokens in LLaVA collapses after the first two layers); the middle-to-late
layers are where attention to visual tokens concentrates on what the text refers to. Heads are
averaged rather than picked, since which heads localise differs between models.

**Hit rate.** A grounded step is a hit when one of its top-k frames lies inside the annotated
segment at the same position (generated step i ↔ segment i, the matching of
`engine.evaluation.timestamps`, closed intervals). The baseline is the exact expected hit rate of k
frames drawn at random without replacement among the sampled frames: 1 − C(n−m, k) / C(n, k),
with m of the n frames inside the segment.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from db.errors import UserError
from engine.evaluation.timestamps import Segment, annotated_segments

if TYPE_CHECKING:
    from sqlmodel import Session

# Bump when the capture or the reduction changes: it is part of every grounding's key.
METHOD = "teacher-forced-attention-mass/1"
DEFAULT_LAYERS = "late"
DEFAULT_HEADS = "all"
DEFAULT_TOP_K = 1


class GroundingError(UserError, ValueError):
    """A grounding cannot be computed as asked: a bad layer or head list, a video that no longer
    gives the frames the generation saw, a tokenizer without character offsets."""


# ------------------------------------------------------------------ settings


_SPEC = re.compile(r"^\d+(?:-\d+)?$")


def parse_index_spec(spec: str, n: int | None, what: str) -> tuple[int, ...]:
    """Indices out of `n` from `all`, `late` (the later half) or numbers and ranges such as
    `12-31` or `0,4,8-11`. With `n` None only the form is checked (and `all`/`late` give ()).
    Raises GroundingError naming `what` when the text is malformed or an index is not below
    `n`."""
    text = spec.strip().lower()
    if text == "late" and "head" in what:
        raise GroundingError(f"{what}: expected 'all' or numbers and ranges like 0-7, "
                             f"found {spec!r}")
    if text in ("all", "late"):
        if n is None:
            return ()
        return tuple(range(n)) if text == "all" else tuple(range(n // 2, n))
    chosen: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not _SPEC.match(part):
            named = "'all'" if "head" in what else "'all', 'late'"
            raise GroundingError(f"{what}: expected {named} or numbers and ranges like "
                                 f"12-31, found {spec!r}")
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if first > last:
            raise GroundingError(f"{what}: expected a range from low to high, found {part!r}")
        if n is not None and last >= n:
            raise GroundingError(f"{what}: expected indices from 0 to {n - 1}, found {part!r}")
        chosen.update(range(first, last + 1))
    return tuple(sorted(chosen))


def language_shape(base_model: str) -> tuple[int, int] | None:
    """(decoder layers, attention heads) from a local model directory's config.json, without
    loading the model; None for a hub id or a config that does not say."""
    path = Path(base_model).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
        text = config.get("text_config") or config
        return int(text["num_hidden_layers"]), int(text["num_attention_heads"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_index_spec(spec: str, what: str) -> None:
    """Check the form of a layer or head list before the model's size is known (the CLI).
    Raises GroundingError as parse_index_spec does."""
    parse_index_spec(spec, None, what)


@dataclass(frozen=True)
class GroundingParams:
    """What a grounding is keyed by: the layers and heads averaged and how many frames kept."""

    layers: tuple[int, ...]
    heads: tuple[int, ...]
    top_k: int = DEFAULT_TOP_K
    layers_spec: str = DEFAULT_LAYERS
    heads_spec: str = DEFAULT_HEADS

    @property
    def key(self) -> str:
        blob = json.dumps({"layers": list(self.layers), "heads": list(self.heads),
                           "top_k": self.top_k, "method": METHOD}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "heads": list(self.heads), "top_k": self.top_k,
                "layers_spec": self.layers_spec, "heads_spec": self.heads_spec,
                "method": METHOD}


def resolve_params(*, layers: str, heads: str, top_k: int, n_layers: int, n_heads: int,
                   n_frames: int = 8) -> GroundingParams:
    """The settings for a model with `n_layers` decoder layers of `n_heads` heads.
    Raises GroundingError for a bad list or a top-k outside 1..n_frames."""
    if not 1 <= top_k <= n_frames:
        raise GroundingError(f"top-k: expected 1 to {n_frames} frames, found {top_k}")
    return GroundingParams(layers=parse_index_spec(layers, n_layers, "layers"),
                           heads=parse_index_spec(heads, n_heads, "heads"), top_k=top_k,
                           layers_spec=layers, heads_spec=heads)


def compact_indices(indices: Sequence[int]) -> str:
    """`0-3,8` for [0, 1, 2, 3, 8]."""
    parts: list[str] = []
    for index in sorted(indices):
        if parts and "-" not in parts[-1].split(",")[-1] and int(parts[-1]) == index - 1:
            parts[-1] = f"{parts[-1]}-{index}"
        elif parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == index - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{index}"
        else:
            parts.append(str(index))
    return ",".join(parts)


def describe_params(params: dict[str, Any]) -> str:
    """`layers 16-31 · heads all · top-1` for a stored grounding's params."""
    heads = params.get("heads_spec") if params.get("heads_spec") == "all" else \
        compact_indices(params.get("heads", []))
    return (f"layers {compact_indices(params.get('layers', []))} · heads {heads} · "
            f"top-{params.get('top_k', '?')}")


# ------------------------------------------------------------------ steps as character spans


@dataclass(frozen=True)
class StepSpan:
    index: int
    text: str
    start: int  # character offsets of the step's line in the generated text
    end: int


def step_spans(text: str) -> list[StepSpan]:
    """The steps `parse_recipe` reads from `text`, each with its line's character span."""
    from engine.evaluation.recipe import item_text, parse_recipe

    lines, offset = [], 0
    for line in text.splitlines(keepends=True):
        lines.append((offset, line.rstrip("\r\n")))
        offset += len(line)
    def holds(line: str, item: str) -> bool:
        # The line is the item with its marker ("2. ", "- ", "Step 2:"), or a header whose
        # text after the colon is the item ("Steps: Mix well"); never a mere substring, so a
        # short step cannot land on the title or an ingredient.
        return item_text(line) == item or (":" in line and item_text(line.split(":", 1)[1]) == item)

    spans, cursor = [], 0
    for item in parse_recipe(text).steps:
        # parse_recipe gives the items in order; find each one's line from where the last was.
        while cursor < len(lines) and not holds(lines[cursor][1], item):
            cursor += 1
        if cursor == len(lines):
            break
        start, line = lines[cursor]
        spans.append(StepSpan(len(spans), item, start, start + len(line)))
        cursor += 1
    return spans


# ------------------------------------------------------------------ attention per step


@dataclass(frozen=True)
class FrameAttention:
    """Attention mass of every generated token on every frame, per chosen layer and head."""

    masses: np.ndarray  # (layers, heads, generated tokens, frames), float32
    token_spans: tuple[tuple[int, int], ...]  # each generated token's characters in the text
    tokens_per_frame: int

    @property
    def n_frames(self) -> int:
        return int(self.masses.shape[-1])


def ground_steps(attention: FrameAttention, spans: Sequence[StepSpan], *,
                 frame_indices: Sequence[int], frame_times: Sequence[float],
                 top_k: int = DEFAULT_TOP_K) -> list[dict[str, Any]]:
    """One stored entry per step: its top-k frames (positions among the sampled frames, most
    attended first; ties go to the earlier frame), their video frame numbers and times, and
    its attention mass on every sampled frame."""
    per_token = attention.masses.mean(axis=(0, 1))  # (tokens, frames)
    steps = []
    for span in spans:
        tokens = [i for i, (s, e) in enumerate(attention.token_spans)
                  if s < span.end and e > span.start]
        if not tokens:
            steps.append({"index": span.index, "text": span.text, "frames": [],
                          "frame_indices": [], "times": [], "weights": []})
            continue
        weights = per_token[tokens].mean(axis=0)
        order = [int(f) for f in np.argsort(-weights, kind="stable")[:top_k]]
        steps.append({
            "index": span.index, "text": span.text, "frames": order,
            "frame_indices": [int(frame_indices[f]) for f in order] if frame_indices else [],
            "times": [float(frame_times[f]) for f in order] if frame_times else [],
            "weights": [round(float(w), 6) for w in weights],
        })
    return steps


# ------------------------------------------------------------------ hit rate


def chance_of_hit(n_frames: int, n_inside: int, k: int = 1) -> float:
    """The probability that k frames drawn at random without replacement from `n_frames`
    include at least one of the `n_inside` frames inside the segment."""
    if n_frames < 1 or not 0 <= n_inside <= n_frames or not 1 <= k <= n_frames:
        raise ValueError(f"expected 0 <= inside <= frames and 1 <= k <= frames, found "
                         f"frames={n_frames}, inside={n_inside}, k={k}")
    return 1.0 - math.comb(n_frames - n_inside, k) / math.comb(n_frames, k)


@dataclass(frozen=True)
class StepHit:
    index: int
    hit: bool
    chance: float  # the hit probability of a random pick of as many frames


def step_hits(steps: Sequence[dict[str, Any]], segments: Sequence[Segment],
              frame_times: Sequence[float]) -> list[StepHit]:
    """For each grounded step with an annotated segment at its position: whether one of its
    chosen frames lies in that segment, and the chance of that for a random pick."""
    hits = []
    for step in steps:
        index, times = int(step["index"]), step.get("times") or []
        if index >= len(segments) or not times or not frame_times:
            continue
        segment = segments[index]
        inside = sum(segment.contains(t) for t in frame_times)
        hits.append(StepHit(index, any(segment.contains(t) for t in times),
                            chance_of_hit(len(frame_times), inside, len(times))))
    return hits


@dataclass(frozen=True)
class GroundingRow:
    """One variant's grounding hit rate under one capture setting."""

    variant: str
    params: str  # describe_params of the setting
    params_key: str
    generations: int
    steps: int  # grounded steps
    matched: int  # steps with an annotated segment at their position
    hits: int
    baseline: float | None  # mean chance over the matched steps

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.matched if self.matched else None

    @property
    def interval(self) -> tuple[float, float] | None:
        from engine.evaluation.stats import wilson_interval

        return wilson_interval(self.hits, self.matched) if self.matched else None

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {"variant": self.variant, "params": self.params, "params_key": self.params_key,
                "generations": self.generations, "steps": self.steps, "matched": self.matched,
                "hits": self.hits, "hit_rate": self.hit_rate, "baseline": self.baseline,
                "hit_rate_95ci": list(interval) if interval else None}


@dataclass(frozen=True)
class GroundingReport:
    eval_set: str
    rows: tuple[GroundingRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"eval_set": self.eval_set,
                "matching": "in order: generated step i with annotated segment i",
                "baseline": "expected hit rate of the same number of frames picked uniformly "
                            "at random among the sampled frames (exact)",
                "rows": [row.to_dict() for row in self.rows]}


def grounding_row(variant: str, params: dict[str, Any], params_key: str,
                  grounded: Sequence[tuple[Sequence[dict[str, Any]], Sequence[Segment],
                                           Sequence[float]]]) -> GroundingRow:
    """Aggregate (steps, segments, sampled frame times) of each grounded generation."""
    hits = [h for steps, segments, times in grounded for h in step_hits(steps, segments, times)]
    return GroundingRow(
        variant=variant, params=describe_params(params), params_key=params_key,
        generations=len(grounded),
        steps=sum(1 for steps, _, _ in grounded for s in steps if s.get("frames")),
        matched=len(hits), hits=sum(h.hit for h in hits),
        baseline=sum(h.chance for h in hits) / len(hits) if hits else None,
    )


def grounding_report(session: Session, *, dataset_id: int) -> GroundingReport:
    """Per variant and capture setting, the hit rate of the groundings of its recipe
    generations on the eval set against the random-frame baseline, with counts."""
    from db import queries

    dataset = queries.get_dataset_by_id(session, dataset_id=dataset_id)
    variants = {v.id: v.name for v in queries.list_variants(session)}
    groups: dict[tuple[int, str], list] = defaultdict(list)
    params: dict[str, dict[str, Any]] = {}
    for grounding, generation, sample in queries.recipe_groundings(session, dataset_id=dataset_id):
        groups[(generation.variant_id, grounding.params_key)].append(
            (grounding.steps, annotated_segments(sample.meta), generation.frame_times))
        params[grounding.params_key] = grounding.params
    rows = tuple(grounding_row(variants[variant_id], params[key], key, grounded)
                 for (variant_id, key), grounded in sorted(groups.items()))
    return GroundingReport(eval_set=dataset.name if dataset else str(dataset_id), rows=rows)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def render_grounding_markdown(report: GroundingReport) -> str:
    lines = [f"## Keyframe grounding on {report.eval_set}", ""]
    if not report.rows:
        command = shlex.join(["ddft", "ground", "--variant", "NAME", "--eval-set",
                              report.eval_set])
        lines.append(f"No groundings yet: run `{command}`.")
        return "\n".join(lines)
    lines += [("| Variant | Setting | Generations | Grounded steps | Matched | Hits | Hit rate "
               "| 95% CI | Random baseline |"),
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report.rows:
        interval = row.interval
        ci = f"[{_pct(interval[0])}, {_pct(interval[1])}]" if interval else "—"
        lines.append(f"| {row.variant} | {row.params} | {row.generations} | {row.steps} "
                     f"| {row.matched} | {row.hits} | {_pct(row.hit_rate)} | {ci} "
                     f"| {_pct(row.baseline)} |")
    lines += ["", ("A hit: a chosen frame lies in the annotated segment of the step at the same "
              "position. The baseline is the exact expected hit rate of as many frames picked "
              "at random among the 8 sampled; the interval (Wilson) ignores that steps of one "
              "video are not independent.")]
    return "\n".join(lines)
