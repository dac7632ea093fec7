"""A reference recipe beside every variant's latest generation for an eval sample, with judgments
and the filters that find the samples worth reading (judges disagree, variants far apart)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from engine.evaluation.offline_judge import ScorePart

# Variants whose scores differ by more than this (under one judge setting) count as "far apart".
SCORE_GAP = 1.0


@dataclass(frozen=True)
class EvalSampleChoice:
    id: int
    label: str
    eval_set: str
    judges_disagree: bool = False  # some generation got yes from one judge and no from another
    score_spread: tuple[tuple[str, float], ...] = ()  # judge setting → max − min over variants
    judged_twice: bool = False  # some generation has yes/no verdicts from two judge settings

    def spread(self, setting: str | None) -> float:
        return dict(self.score_spread).get(setting, 0.0) if setting else 0.0


@dataclass(frozen=True)
class VariantChoice:
    id: int
    name: str


@dataclass(frozen=True)
class CompareChoices:
    """One eval set's samples with their filter flags, and what can be chosen around them."""

    samples: tuple[EvalSampleChoice, ...]
    variants: tuple[VariantChoice, ...]
    settings: tuple[str, ...] = ()  # "judge · protocol · version", for the score-gap filter
    eval_sets: tuple[tuple[int, str], ...] = ()  # (dataset id, name) of every eval set
    dataset_id: int | None = None  # the eval set the samples come from

    @property
    def eval_set(self) -> str:
        return dict(self.eval_sets).get(self.dataset_id, "") if self.dataset_id is not None else ""


def judge_setting(judge: str, protocol: str, prompt_version: str) -> str:
    return f"{judge} · {protocol} · {prompt_version}"


def filter_samples(samples: tuple[EvalSampleChoice, ...], *, disagree: bool, gap_setting: str | None,
                   ) -> tuple[EvalSampleChoice, ...]:
    """The samples left by the filters: judges disagree, and/or variants more than
    SCORE_GAP apart under `gap_setting` (None: that filter is off)."""
    return tuple(s for s in samples
                 if (not disagree or s.judges_disagree)
                 and (gap_setting is None or s.spread(gap_setting) > SCORE_GAP))


def why_none_left(choices: CompareChoices, *, disagree: bool, gap_setting: str | None) -> str:
    """Why no sample of `choices` passes the filters, naming the filter that leaves none and
    what it needs; the keys that turn the filters off."""
    samples = choices.samples
    reasons = []
    if disagree and not any(s.judges_disagree for s in samples):
        if not any(s.judged_twice for s in samples):
            command = shlex.join(["ddft", "judge", "--judge", "gpt", "--eval-set",
                                  choices.eval_set])
            settings = ", ".join(choices.settings) or "none"
            reasons.append(
                "Judges disagree: no generation here has verdicts from two judges, so none can "
                f"disagree (judge settings seen: {settings}). A second judge adds them: "
                f"`{command}`.")
        else:
            both = sum(1 for s in samples if s.judged_twice)
            noun = "sample" if both == 1 else "samples"
            reasons.append(f"Judges disagree: on the {both} {noun} judged twice the judges "
                           "give the same verdicts.")
    if gap_setting is not None and not any(s.spread(gap_setting) > SCORE_GAP for s in samples):
        scored = [s for s in samples if gap_setting in dict(s.score_spread)]
        if not scored:
            reasons.append(f"Score gap: no sample has scores of two variants under "
                           f"{gap_setting}; j chooses another judge.")
        else:
            noun = "sample" if len(scored) == 1 else "samples"
            reasons.append(f"Score gap: on the {len(scored)} {noun} with scores of two variants "
                           f"under {gap_setting}, none are more than {SCORE_GAP:g} apart.")
    if not reasons:  # each filter leaves samples, but not the same ones
        reasons.append("Each filter alone leaves samples, but no sample passes both.")
    keys = " or ".join(key for key, on in (("d", disagree), ("g", gap_setting is not None)) if on)
    return "No sample passes the filters.\n\n" + "\n\n".join(reasons) + \
        f"\n\nPress {keys} to turn the filter off."


@dataclass(frozen=True)
class JudgmentLine:
    judge: str
    protocol: str
    prompt_version: str
    score: float | None
    verdict: str
    raw: str = ""  # the judge's reply as stored ("" for the offline judge, which asks no one)
    # What the judge stored beside its score: the offline judge's numbers, a two-stage
    # judge's part scores, an upstream judge's pred, a pairwise judge's two orders.
    details: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def setting(self) -> str:
        return judge_setting(self.judge, self.protocol, self.prompt_version)

    @property
    def offline_parts(self) -> tuple[ScorePart, ...] | None:
        """The offline judge's score in parts (`score_parts`); None for another judge or when
        the judgment stored no numbers."""
        if self.protocol != "offline":
            return None
        from engine.evaluation.offline_judge import score_parts

        return score_parts(self.details)


@dataclass(frozen=True)
class GenerationView:
    id: int
    text: str
    frame_times: tuple[float, ...]
    decoding: tuple[tuple[str, str], ...]
    created: str


@dataclass(frozen=True)
class RecipeMarks:
    """Where a reference and a generation meet, line by line, by
    `engine.evaluation.metrics.read_recipe` (the reading the offline judge scores)."""

    matched: frozenset[int]  # reference line numbers paired with a generated ingredient
    missing: frozenset[int]  # reference line numbers with no generated partner
    extra: frozenset[int]  # generation line numbers with no reference partner
    steps_covered: frozenset[int] = frozenset()  # reference step lines a generated step covers
    steps_missed: frozenset[int] = frozenset()  # reference step lines no generated step covers
    steps_extra: frozenset[int] = frozenset()  # generation step lines covering no reference step
    dish_match: bool = False  # the same dish, as the offline judge's dish_match
    reference_dish: str | None = None
    generated_dish: str | None = None
    reference_dish_line: int | None = None
    generated_dish_line: int | None = None


NO_MARKS = RecipeMarks(frozenset(), frozenset(), frozenset())


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
class TimedStepView:
    """A step of a variant's timestamp answer (`ddft timestamps`) with its times, checked
    against the annotated step at the same position and the video's end."""

    index: int  # 0-based, in the answer's order
    start: float
    end: float
    text: str
    iou: float | None  # temporal IoU with the annotated step at this position; None: none there
    past_end: bool  # a time later than the video's duration
    overlaps: bool  # starts before the previous step ends
    out_of_order: bool  # starts before the previous step starts


@dataclass(frozen=True)
class TimingView:
    """A variant's newest timestamp answer for the sample, as the timestamp report reads it."""

    generation_id: int
    created: str
    steps: tuple[TimedStepView, ...]
    unparsable: int  # lines that were neither a timed step nor a header
    mean_iou: float | None  # over the steps with an annotated step at their position
    missed: int  # annotated steps beyond the answer's last step


def timing_view(generation_id: int, created: str, text: str, segments: tuple[AnnotatedStep, ...],
                duration: float | None) -> TimingView:
    """A timestamp answer's steps, each with its tIoU against the annotated step at the same
    position (the report's in-order matching) and the checks the report counts."""
    from engine.evaluation.timestamps import Segment, parse_timestamped_steps, score_timestamps

    parsed = parse_timestamped_steps(text)
    annotated = [Segment(s.start, s.end, s.sentence) for s in segments]
    score = score_timestamps(parsed, annotated, duration)
    steps = []
    for position, step in enumerate(parsed.steps):
        previous = parsed.steps[position - 1] if position else None
        steps.append(TimedStepView(
            index=step.index, start=step.start, end=step.end, text=step.text,
            iou=score.ious[position] if position < len(score.ious) else None,
            past_end=bool(duration) and max(step.start, step.end) > duration,
            overlaps=previous is not None and step.start < previous.end,
            out_of_order=previous is not None and step.start < previous.start))
    return TimingView(generation_id=generation_id, created=created, steps=tuple(steps),
                      unparsable=len(parsed.unparsable), mean_iou=score.mean_iou,
                      missed=score.missed_segments)


@dataclass(frozen=True)
class VariantSide:
    """One variant's column: its latest generation for the sample and that generation's judgments,
    and for the time view its newest timestamp answer and grounding."""

    variant: VariantChoice
    generation: GenerationView | None
    judgments: tuple[JudgmentLine, ...]
    marks: RecipeMarks
    grounding: GroundingView | None = None
    timing: TimingView | None = None

    @property
    def matched(self) -> int:
        return len(self.marks.matched)

    @property
    def covered(self) -> int:
        return len(self.marks.steps_covered)


@dataclass(frozen=True)
class CompareView:
    sample_id: int
    external_id: str
    eval_set: str
    reference: str
    media_path: str | None
    sides: tuple[VariantSide, ...]
    segments: tuple[AnnotatedStep, ...] = ()  # the annotated steps, for the time view (f)
    duration: float | None = None  # the video's length in seconds, when known
    frame_times: tuple[float, ...] = ()  # the sampled frames' times, when known

    @property
    def reference_ingredients(self) -> int:
        from_sides = [len(s.marks.matched) + len(s.marks.missing) for s in self.sides if s.generation]
        return max(from_sides, default=0)

    @property
    def generated(self) -> tuple[VariantSide, ...]:
        """The sides with a generation for this sample, in variant order."""
        return tuple(side for side in self.sides if side.generation is not None)

    @property
    def not_generated(self) -> tuple[VariantSide, ...]:
        return tuple(side for side in self.sides if side.generation is None)

    @property
    def timed_or_generated(self) -> tuple[VariantSide, ...]:
        """The sides the time view draws: a recipe or a timestamp answer for this sample."""
        return tuple(side for side in self.sides
                     if side.generation is not None or side.timing is not None)


def mark_recipe(reference: str, generation: str) -> RecipeMarks:
    """Matched and missing reference ingredient lines, covered and missed reference steps,
    extra generation lines and whether the dish is the same, by
    `engine.evaluation.metrics.read_recipe`: the lines the offline judge scores."""
    # Imported here: engine.evaluation.metrics loads ingredient_slicer, too slow for the app's start.
    from engine.evaluation.metrics import read_recipe

    reading = read_recipe(generation, reference)
    lines, steps, dish = reading.ingredients, reading.steps, reading.dish
    return RecipeMarks(
        matched=frozenset(ref.line for ref, _ in lines.matched),
        missing=frozenset(item.line for item in lines.missing),
        extra=frozenset(item.line for item in lines.extra),
        steps_covered=frozenset(ref.line for ref, _ in steps.covered),
        steps_missed=frozenset(item.line for item in steps.missed),
        steps_extra=frozenset(item.line for item in steps.extra),
        dish_match=dish.match,
        reference_dish=dish.reference,
        generated_dish=dish.generated,
        reference_dish_line=dish.reference_line,
        generated_dish_line=dish.generated_line,
    )



def _sample_flags(judgments_by_variant: dict[int, list],
                  ) -> tuple[bool, tuple[tuple[str, float], ...], bool]:
    """Whether judges disagree on some generation, each judge setting's score spread over the
    variants, and whether some generation has yes/no verdicts from two settings."""
    disagree = twice = False
    scores: dict[str, list[float]] = {}
    for judgments in judgments_by_variant.values():
        verdicts = {j.verdict for j in judgments if j.verdict in ("yes", "no")}
        disagree = disagree or len(verdicts) > 1
        settings = {(j.judge, j.protocol, j.prompt_version) for j in judgments
                    if j.verdict in ("yes", "no")}
        twice = twice or len(settings) > 1
        for j in judgments:
            if j.score is not None and j.verdict != "unparsable":
                scores.setdefault(judge_setting(j.judge, j.protocol, j.prompt_version), []).append(j.score)
    spread = tuple(sorted((s, max(v) - min(v)) for s, v in scores.items() if len(v) > 1))
    return disagree, spread, twice


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


def _grounding_for(grounding, generation, segments, sample_meta,
                   workspace: Path | None = None) -> GroundingView | None:
    """The view of a generation's newest stored grounding (None: not grounded)."""
    if grounding is None:
        return None
    strip = next((step.get("strip") for step in grounding.steps if step.get("strip")), None)
    if strip is not None and not Path(strip).is_absolute() and workspace is not None:
        strip = str(workspace / strip)  # `ddft ground` stores it relative to the workspace
    if strip is None and sample_meta.get("frame_strip"):
        strip = sample_meta["frame_strip"]  # `ddft data check` saves the same 8 frames
    n_frames = len(generation.frame_times) or 8
    return grounding_view(grounding.steps, grounding.params, segments, n_frames, strip)


def load_choices(db_engine: Engine, *, dataset_id: int | None = None) -> CompareChoices:
    """The samples of one eval set (`dataset_id`; when it is None or gone,
    `default_eval_set`'s), each with its filter flags over the variants' latest generations,
    the variants that can be compared and the judge settings seen. Four statements, however
    many samples and variants there are."""
    from db.compare import eval_sets_judged, latest_judgments, sample_labels
    from engine.evaluation.report import default_eval_set
    from db.queries import list_variants
    from db.store import session_scope

    with session_scope(db_engine) as session:
        variants = tuple(VariantChoice(v.id, v.name) for v in list_variants(session))
        counted = eval_sets_judged(session)
        eval_sets = tuple((e.id, e.name) for e in counted)
        if dataset_id not in dict(eval_sets):
            dataset_id = default_eval_set(counted)
        if dataset_id is None:
            return CompareChoices(samples=(), variants=variants)
        labels = sample_labels(session, dataset_id=dataset_id)
        judged = latest_judgments(session, dataset_id=dataset_id)
    by_sample: dict[int, dict[int, list]] = {}
    seen = set()
    for judgment in judged:
        by_sample.setdefault(judgment.sample_id, {}).setdefault(judgment.variant_id, []).append(
            judgment)
        seen.add((judgment.judge, judgment.protocol, judgment.prompt_version))
    name = dict(eval_sets)[dataset_id]
    samples = []
    for label in labels:
        disagree, spread, twice = _sample_flags(by_sample.get(label.id, {}))
        samples.append(EvalSampleChoice(label.id, label.external_id, name, disagree, spread,
                                        twice))
    settings = {judge_setting(*setting) for setting in seen}
    return CompareChoices(samples=tuple(samples), variants=variants,
                          settings=tuple(sorted(settings)), eval_sets=eval_sets,
                          dataset_id=dataset_id)


def load_view(db_engine: Engine, *, sample: EvalSampleChoice,
              variants: tuple[VariantChoice, ...],
              workspace: Path | None = None) -> CompareView | None:
    """The comparison for one sample across `variants`, each by its latest generation;
    None when the sample no longer exists. `workspace` resolves the thumbnails `ddft ground`
    stores relative to it. Five statements, however many variants there are."""
    from db.compare import judgments_by_generation, latest_generations, latest_groundings
    from db.queries import get_sample
    from db.store import session_scope
    from workbench.data.jobs import format_local

    with session_scope(db_engine) as session:
        stored = get_sample(session, sample_id=sample.id)
        if stored is None:
            return None
        latest = latest_generations(session, sample_id=sample.id,
                                    variant_ids=[v.id for v in variants])
        generation_ids = [g.id for g in latest.values()]
        judged = judgments_by_generation(session, generation_ids=generation_ids)
        grounded = latest_groundings(session, generation_ids=generation_ids)
        timed = latest_generations(session, sample_id=sample.id,
                                   variant_ids=[v.id for v in variants], task="timestamps")
        frame_times = next((tuple(float(t) for t in latest[v.id].frame_times)
                            for v in variants if v.id in latest and latest[v.id].frame_times),
                           tuple(float(t) for t in stored.meta.get("frame_times") or ()))
        segments = annotated_steps(stored.meta, frame_times)
        duration = float(stored.duration_s) if stored.duration_s else None
        sides = []
        for variant in variants:
            answer = timed.get(variant.id)
            timing = (timing_view(answer.id, format_local(answer.created_at), answer.text,
                                  segments, duration) if answer is not None else None)
            generation = latest.get(variant.id)
            if generation is None:
                sides.append(VariantSide(variant, None, (), NO_MARKS, timing=timing))
                continue
            judgments = tuple(JudgmentLine(j.judge, j.protocol, j.prompt_version, j.score,
                                           j.verdict, j.raw or "", dict(j.details or {}))
                              for j in judged[generation.id])
            view = GenerationView(
                id=generation.id,
                text=generation.text,
                frame_times=tuple(float(t) for t in generation.frame_times),
                decoding=tuple((str(k), str(v)) for k, v in sorted(generation.decoding.items())),
                created=format_local(generation.created_at),
            )
            sides.append(VariantSide(variant, view, judgments,
                                     mark_recipe(stored.answer, view.text),
                                     _grounding_for(grounded.get(generation.id), generation,
                                                    segments, stored.meta, workspace),
                                     timing))
        return CompareView(
            sample_id=stored.id,
            external_id=stored.external_id,
            eval_set=sample.eval_set,
            reference=stored.answer,
            media_path=stored.media_path,
            sides=tuple(sides),
            segments=segments,
            duration=duration,
            frame_times=frame_times,
        )
