"""The Compare screen's time view (`f`): a variant's step times (`ddft timestamps`) on a time
bar under the annotated steps, then each generated step with the frame it attends to most (a
half-block thumbnail, its time and position n/8) beside the annotated step at its position."""

from __future__ import annotations

import shlex

from rich.color import Color
from rich.style import Style
from rich.text import Text

from engine.evaluation.words import plural
from workbench.data.compare import (
    AnnotatedStep,
    CompareView,
    GroundedStep,
    TimedStepView,
    TimingView,
    VariantSide,
)
from workbench.widgets.timebar import Span, Stack, TimeBar, TimeRow

UPPER_HALF = "▀"


def _span(step: AnnotatedStep | TimedStepView) -> str:
    return f"{step.start:g}–{step.end:g}s"


def thumbnail_rows(pixels: tuple[tuple[tuple[int, int, int], ...], ...]) -> list[Text]:
    """A frame's pixels as lines of half blocks: the upper pixel as foreground, the lower as
    background, so each cell shows two pixels."""
    styles: dict[tuple, Style] = {}
    rows = []
    for y in range(0, len(pixels) - 1, 2):
        line = Text()
        for upper, lower in zip(pixels[y], pixels[y + 1]):
            style = styles.get((upper, lower))
            if style is None:
                style = styles[(upper, lower)] = Style(color=Color.from_rgb(*upper),
                                                       bgcolor=Color.from_rgb(*lower))
            line.append(UPPER_HALF, style=style)
        rows.append(line)
    return rows


def _step_facts(step: GroundedStep, n_frames: int) -> list[Text]:
    """The short lines drawn beside a step's thumbnail."""
    if step.frame is None:
        return [Text("no frame: no tokens of this step were found", style="dim")]
    frame = Text(f"frame {step.frame + 1}/{n_frames} · {step.time:.1f}s"
                 if step.time is not None else f"frame {step.frame + 1}/{n_frames}")
    if step.weight is not None:
        frame.append(f" · {100 * step.weight:.0f}% attn", style="dim")
    if step.also:
        frame.append(" · also " + ", ".join(
            f"{f + 1}/{n_frames}" + (f" {t:.1f}s" if t is not None else "") for f, t in step.also),
            style="dim")
    segment = step.segment
    if segment is None:
        return [frame, Text("no annotated step at this position", style="dim")]
    where = Text(f"annotated {_span(segment)} ")
    if step.hit:
        where.append("✓ inside", style="bold green")
    elif step.hit is False:
        where.append("✗ outside", style="bold red")
    return [frame, where, Text(segment.sentence, style="dim")]


def _annotated_row(view: CompareView) -> TimeRow:
    return TimeRow("annotated", tuple(Span(s.start, s.end, n)
                                      for n, s in enumerate(view.segments, 1)))


def _step_flags(step: TimedStepView) -> Text:
    flags = Text()
    if step.iou is not None:
        flags.append(f" · tIoU {step.iou:.2f}", style="bold green" if step.iou >= 0.5 else "dim")
    for flag, shown in (("past the end", step.past_end), ("overlaps the step before", step.overlaps),
                        ("starts before the step before", step.out_of_order)):
        if shown:
            flags.append(f" · {flag}", style="bold red")
    return flags


def _timing_summary(timing: TimingView) -> str:
    parts = [plural(len(timing.steps), "timed step")]
    if timing.mean_iou is not None:
        parts.append(f"mean tIoU {timing.mean_iou:.2f}")
    for count, what in ((sum(s.past_end for s in timing.steps), "past the end"),
                        (sum(s.overlaps for s in timing.steps), "overlapping"),
                        (timing.missed, plural(timing.missed, "annotated step") + " missed"),
                        (timing.unparsable, plural(timing.unparsable, "unreadable line"))):
        if count:
            parts.append(what if what[:1].isdigit() else f"{count} {what}")
    return " · ".join(parts)


def describe_step_times(view: CompareView, side: VariantSide) -> Stack:
    """A variant's newest timestamp answer: its steps on a time bar under the annotated steps,
    then each step with its times, its tIoU with the annotated step at its position and what
    the timestamp report flags; what to run when there is none."""
    head = Text("Step times", style="bold")
    timing = side.timing
    if timing is None:
        command = shlex.join(["ddft", "timestamps", "--variant", side.variant.name,
                              "--eval-set", view.eval_set])
        head.append(f"\nNo step times yet — run `{command}`.", style="dim")
        return Stack(head)
    head.append(f"  #{timing.generation_id} · {timing.created}\n", style="dim")
    head.append(_timing_summary(timing), style="dim")
    generated = TimeRow("generated", tuple(Span(s.start, s.end, s.index + 1)
                                           for s in timing.steps))
    bar = TimeBar((_annotated_row(view), generated), duration=view.duration)
    steps = Text()
    if not timing.steps:
        steps.append("No timed step could be read from this answer.", style="dim")
    for number, step in enumerate(timing.steps):
        if number:
            steps.append("\n")
        steps.append(f"{step.index + 1}. ", style="bold")
        steps.append(f"{_span(step)} {step.text}")
        steps.append_text(_step_flags(step))
    return Stack(head, bar, steps)


def describe_grounding(view: CompareView, side: VariantSide) -> Text:
    """A variant's generated steps, each with its grounded frame and the annotated step at the
    same position; a note saying what to run when the generation is not grounded."""
    text = Text()
    text.append("Grounding", style="bold")
    grounding = side.grounding
    if side.generation is None:
        text.append("\nNo recipe generated yet for this variant and sample.", style="dim")
        return text
    if grounding is None:
        command = shlex.join(["ddft", "ground", "--variant", side.variant.name,
                              "--eval-set", view.eval_set])
        text.append(f"\nNot grounded yet — run `{command}`.", style="dim")
        return text
    text.append(f"  #{side.generation.id} · {grounding.params}\n", style="dim")
    if grounding.strip_note:
        text.append(f"{grounding.strip_note}\n", style="dim")
    if not grounding.steps:
        text.append("\nNo steps could be read from this generation.", style="dim")
        return text
    hits = [s.hit for s in grounding.steps if s.hit is not None]
    if hits:
        text.append(f"{sum(hits)}/{len(hits)} grounded frames inside the annotated step\n",
                    style="dim")
    for step in grounding.steps:
        text.append(f"\n{step.index + 1}. {step.text}\n", style="bold")
        thumb = thumbnail_rows(step.thumb) if step.thumb else []
        facts = _step_facts(step, grounding.n_frames)
        width = len(thumb[0]) if thumb else 0
        for row in range(max(len(thumb), len(facts))):
            if thumb:
                text.append_text(thumb[row] if row < len(thumb) else Text(" " * width))
                text.append(" ")
            if row < len(facts):
                text.append_text(facts[row])
            text.append("\n")
    return text


def describe_times(view: CompareView, side: VariantSide, *,
                   position: tuple[int, int] | None = None) -> Stack:
    """The time view of a variant's column: its step times, then its recipe's grounding."""
    place = f" · variant {position[0]} of {position[1]} (v: next)" if position else ""
    return Stack(Text.assemble((f"Times · {side.variant.name}", "bold"), (place, "dim"), "\n"),
                 describe_step_times(view, side), Text(""), describe_grounding(view, side))


def describe_segments(view: CompareView) -> Stack:
    """The sample's annotated steps on a time bar with the sampled frames, then each with its
    times and the sampled frames inside it."""
    head = Text("Annotated steps", style="bold")
    head.append(f"  {view.external_id}\n", style="dim")
    if not view.segments:
        head.append("\nThis sample has no annotated step segments.", style="dim")
        return Stack(head)
    bar = TimeBar((_annotated_row(view),), duration=view.duration, frames=view.frame_times)
    text = Text()
    for number, step in enumerate(view.segments, 1):
        text.append(f"{number}. ", style="bold")
        text.append(f"{_span(step)} ")
        text.append(f"{step.sentence}\n")
        if step.frames:
            text.append("   frames " + ", ".join(str(f + 1) for f in step.frames) + "\n",
                        style="dim")
        else:
            text.append("   no sampled frame falls in this step\n", style="yellow")
    text.rstrip()
    return Stack(head, bar, Text(""), text)
