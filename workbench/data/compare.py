"""A reference recipe beside every variant's latest generation for an eval sample, with judgments
and the filters that find the samples worth reading (judges disagree, variants far apart)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# Variants whose scores differ by more than this (under one judge setting) count as "far apart".
SCORE_GAP = 1.0


@dataclass(frozen=True)
class EvalSampleChoice:
    id: int
    label: str
    eval_set: str
    judges_disagree: bool = False  # some generation got yes from one judge and no from another
    score_spread: tuple[tuple[str, float], ...] = ()  # judge setting → max − min over variants


    def spread(self, setting: str | None) -> float:
        return dict(self.score_spread).get(setting, 0.0) if setting else 0.0


@dataclass(frozen=True)
class VariantChoice:
    id: int
    name: str


@dataclass(frozen=True)
class CompareChoices:
    samples: tuple[EvalSampleChoice, ...]
    variants: tuple[VariantChoice, ...]
    settings: tuple[str, ...] = ()  # "judge · protocol · version", for the score-gap filter


def judge_setting(judge: str, protocol: str, prompt_version: str) -> str:
    return f"{judge} · {protocol} · {prompt_version}"


def filter_samples(samples: tuple[EvalSampleChoice, ...], *, disagree: bool, gap_setting: str | None,
                   ) -> tuple[EvalSampleChoice, ...]:
    """The samples left by the filters: judges disagree, and/or variants more than
    SCORE_GAP apart under `gap_setting` (None: that filter is off)."""
    return tuple(s for s in samples
                 if (not disagree or s.judges_disagree)
                 and (gap_setting is None or s.spread(gap_setting) > SCORE_GAP))


@dataclass(frozen=True)
class JudgmentLine:
    judge: str
    protocol: str
    prompt_version: str
    score: float | None
    verdict: str


@dataclass(frozen=True)
class GenerationView:
    id: int
    text: str
    frame_times: tuple[float, ...]
    decoding: tuple[tuple[str, str], ...]
    created: str


@dataclass(frozen=True)
class IngredientMarks:
    """Where ingredient lines of a reference and a generation meet (engine.evaluation.metrics' matching)."""

    matched: frozenset[int]  # reference line numbers paired with a generated ingredient
    missing: frozenset[int]  # reference line numbers with no generated partner
    extra: frozenset[int]  # generation line numbers with no reference partner


NO_MARKS = IngredientMarks(frozenset(), frozenset(), frozenset())


RGB = tuple[int, int, int]
# A grounded frame's thumbnail is this many cells wide (two pixels a cell, one above the other).
THUMB_CELLS = 8


@dataclass(frozen=True)
class AnnotatedStep:
    """An annotated step segment of the sample, with the sampled frames that fall in it."""

    start: float
    end: float
    sentence: str
    frames: tuple[int, ...]  # positions (0-based) among the sampled frames


@dataclass(frozen=True)
class GroundedStep:
    """A generated step, the sampled frame its tokens attend to most, and the annotated step
    at the same position."""

    index: int
    text: str
    frame: int | None  # position (0-based) among the sampled frames; None: nothing grounded
    time: float | None
    weight: float | None  # the frame's share of the step's attention on all sampled frames
    segment: AnnotatedStep | None
    thumb: tuple[tuple[RGB, ...], ...] = ()  # the frame's pixels, rows of THUMB_CELLS
    # With top-k above 1, the other frames kept: (position, time), most attended first.
    also: tuple[tuple[int, float | None], ...] = ()

    @property
    def hit(self) -> bool | None:
        """Whether any kept frame lies in the annotated step (the report's hit)."""
        times = [t for t in (self.time, *(t for _, t in self.also)) if t is not None]
        if self.segment is None or not times:
            return None
        return any(self.segment.start <= t <= self.segment.end for t in times)


@dataclass(frozen=True)
class GroundingView:
    """The newest grounding of a generation (`ddft ground`)."""

    params: str
    n_frames: int
    steps: tuple[GroundedStep, ...]
    strip_note: str = ""  # why there are no thumbnails, when there are none


@dataclass(frozen=True)
class VariantSide:
    """One variant's column: its latest generation for the sample and that generation's judgments."""

    variant: VariantChoice
    generation: GenerationView | None
    judgments: tuple[JudgmentLine, ...]
    marks: IngredientMarks
    grounding: GroundingView | None = None

    @property
    def matched(self) -> int:
        return len(self.marks.matched)


@dataclass(frozen=True)
class CompareView:
    sample_id: int
    external_id: str
    eval_set: str
    reference: str
    media_path: str | None
    sides: tuple[VariantSide, ...]
    segments: tuple[AnnotatedStep, ...] = ()  # the annotated steps, for the grounding view

    @property
    def reference_ingredients(self) -> int:
        from_sides = [len(s.marks.matched) + len(s.marks.missing) for s in self.sides if s.generation]
        return max(from_sides, default=0)


def _ingredient_lines(text: str) -> list[tuple[int, str]]:
    """(line number, ingredient) for each ingredient parse_recipe reads from `text`, in order."""
    from engine.evaluation.recipe import parse_recipe

    lines = text.splitlines()
    found, line_no = [], 0
    for item in parse_recipe(text).ingredients:
        # parse_recipe gives the items in order; find each one's line to mark it in place.
        while line_no < len(lines) and item not in " ".join(lines[line_no].split()):
            line_no += 1
        if line_no == len(lines):
            break
        found.append((line_no, item))
        line_no += 1
    return found


def mark_ingredients(reference: str, generation: str) -> IngredientMarks:
    """Matched and missing reference lines, and extra generation lines, by
    `engine.evaluation.metrics.match_ingredients` (foods read by ingredient_slicer)."""
    # Imported here: engine.evaluation.metrics loads ingredient_slicer, too slow for the app's start.
    from engine.evaluation.metrics import match_ingredients

    ref, gen = _ingredient_lines(reference), _ingredient_lines(generation)
    match = match_ingredients([item for _, item in gen], [item for _, item in ref])
    return IngredientMarks(
        matched=frozenset(ref[i][0] for i, _ in match.pairs),
        missing=frozenset(ref[i][0] for i in match.missing),
        extra=frozenset(gen[j][0] for j in match.extra),
    )


def _latest_generations(session, *, sample_id: int, variants) -> dict[int, object]:
    from db.queries import list_generations

    latest = {}
    for variant in variants:
        generations = list_generations(session, variant_id=variant.id, sample_id=sample_id)
        if generations:
            latest[variant.id] = generations[-1]
    return latest


def _sample_flags(judgments_by_variant: dict[int, list]) -> tuple[bool, tuple[tuple[str, float], ...]]:
    disagree = False
    scores: dict[str, list[float]] = {}
    for judgments in judgments_by_variant.values():
        verdicts = {j.verdict for j in judgments if j.verdict in ("yes", "no")}
        disagree = disagree or len(verdicts) > 1
        for j in judgments:
            if j.score is not None and j.verdict != "unparsable":
                scores.setdefault(judge_setting(j.judge, j.protocol, j.prompt_version), []).append(j.score)
    spread = tuple(sorted((s, max(v) - min(v)) for s, v in scores.items() if len(v) > 1))
    return disagree, spread


def annotated_steps(meta: dict, frame_times: tuple[float, ...]) -> tuple[AnnotatedStep, ...]:
    """The sample's annotated segments in time order, each with the sampled frames inside it."""
    from engine.evaluation.timestamps import annotated_segments

    return tuple(
        AnnotatedStep(s.start, s.end, s.sentence,
                      tuple(f for f, t in enumerate(frame_times) if s.contains(t)))
        for s in annotated_segments(meta)
    )


def _strip_frames(path: str | None, n_frames: int) -> tuple[tuple, str]:
    """The strip's frames at thumbnail size, or () and why not."""
    from workbench.data.frame_strip import FrameStripError, load_frame_strip

    if not path:
        return (), ("no frame strip saved for this video — run `ddft ground` again or "
                    "`ddft data check`")
    try:
        return load_frame_strip(path, n_frames, THUMB_CELLS).frames, ""
    except FrameStripError as exc:
        return (), str(exc)


def grounding_view(steps: list[dict], params: dict, segments: tuple[AnnotatedStep, ...],
                   n_frames: int, strip_path: str | None) -> GroundingView:
    """A stored grounding's steps beside the annotated steps at the same positions, with a
    thumbnail of each step's first frame when the video's strip can be read."""
    from engine.evaluation.grounding import describe_params

    # Without steps there is nothing to draw, and nothing to say about a missing strip.
    frames, note = _strip_frames(strip_path, n_frames) if steps else ((), "")
    shown = []
    for step in steps:
        index = int(step.get("index", len(shown)))
        chosen = step.get("frames") or []
        frame = int(chosen[0]) if chosen else None
        times, weights = step.get("times") or [], step.get("weights") or []
        total = sum(weights)
        also = tuple((int(f), float(times[i]) if i < len(times) else None)
                     for i, f in enumerate(chosen) if i > 0)
        shown.append(GroundedStep(
            index=index, text=str(step.get("text", "")), frame=frame,
            time=float(times[0]) if times else None, also=also,
            weight=weights[frame] / total if frame is not None and total > 0
            and frame < len(weights) else None,
            segment=segments[index] if index < len(segments) else None,
            thumb=frames[frame] if frame is not None and frame < len(frames) else (),
        ))
    return GroundingView(params=describe_params(params), n_frames=n_frames, steps=tuple(shown),
                         strip_note=note)


def _grounding_for(session, generation, segments, sample_meta,
                   workspace: Path | None = None) -> GroundingView | None:
    from db.queries import groundings_for_generation

    stored = groundings_for_generation(session, generation_id=generation.id)
    if not stored:
        return None
    latest = stored[-1]
    strip = next((step.get("strip") for step in latest.steps if step.get("strip")), None)
    if strip is not None and not Path(strip).is_absolute() and workspace is not None:
        strip = str(workspace / strip)  # `ddft ground` stores it relative to the workspace
    if strip is None and sample_meta.get("frame_strip"):
        strip = sample_meta["frame_strip"]  # `ddft data check` saves the same 8 frames
    n_frames = len(generation.frame_times) or 8
    return grounding_view(latest.steps, latest.params, segments, n_frames, strip)


def load_choices(engine: Engine) -> CompareChoices:
    """The samples of every eval dataset, each with its filter flags over the variants' latest
    generations, the variants that can be compared and the judge settings seen."""
    from db.queries import (
        judgments_for_generation,
        list_datasets,
        list_samples,
        list_variants,
    )
    from db.store import session_scope

    with session_scope(engine) as session:
        variants = tuple(VariantChoice(v.id, v.name) for v in list_variants(session))
        samples, settings = [], set()
        for dataset in list_datasets(session, purpose="eval"):
            for sample in list_samples(session, dataset_id=dataset.id, limit=None):
                latest = _latest_generations(session, sample_id=sample.id, variants=variants)
                judged = {vid: judgments_for_generation(session, generation_id=g.id)
                          for vid, g in latest.items()}
                settings |= {judge_setting(j.judge, j.protocol, j.prompt_version)
                             for js in judged.values() for j in js}
                disagree, spread = _sample_flags(judged)
                samples.append(EvalSampleChoice(sample.id, f"{sample.external_id} · {dataset.name}",
                                                dataset.name, disagree, spread))
    return CompareChoices(samples=tuple(samples), variants=variants, settings=tuple(sorted(settings)))


def load_view(engine: Engine, *, sample: EvalSampleChoice,
              variants: tuple[VariantChoice, ...],
              workspace: Path | None = None) -> CompareView | None:
    """The comparison for one sample across `variants`, each by its latest generation;
    None when the sample no longer exists. `workspace` resolves the thumbnails `ddft ground`
    stores relative to it."""
    from db.queries import get_sample, judgments_for_generation
    from db.store import session_scope
    from workbench.data.jobs import format_local

    with session_scope(engine) as session:
        stored = get_sample(session, sample_id=sample.id)
        if stored is None:
            return None
        latest = _latest_generations(session, sample_id=sample.id, variants=variants)
        frame_times = next((tuple(float(t) for t in g.frame_times) for g in latest.values()
                            if g.frame_times),
                           tuple(float(t) for t in stored.meta.get("frame_times") or ()))
        segments = annotated_steps(stored.meta, frame_times)
        sides = []
        for variant in variants:
            generation = latest.get(variant.id)
            if generation is None:
                sides.append(VariantSide(variant, None, (), NO_MARKS))
                continue
            judgments = tuple(
                JudgmentLine(j.judge, j.protocol, j.prompt_version, j.score, j.verdict)
                for j in judgments_for_generation(session, generation_id=generation.id)
            )
            view = GenerationView(
                id=generation.id,
                text=generation.text,
                frame_times=tuple(float(t) for t in generation.frame_times),
                decoding=tuple((str(k), str(v)) for k, v in sorted(generation.decoding.items())),
                created=format_local(generation.created_at),
            )
            sides.append(VariantSide(variant, view, judgments,
                                     mark_ingredients(stored.answer, view.text),
                                     _grounding_for(session, generation, segments, stored.meta,
                                                    workspace)))
        return CompareView(
            sample_id=stored.id,
            external_id=stored.external_id,
            eval_set=sample.eval_set,
            reference=stored.answer,
            media_path=stored.media_path,
            sides=tuple(sides),
            segments=segments,
        )
