"""The Compare screen's grounding view: each generated step with the frame it attends to most
(a half-block thumbnail, its time and position n/8) beside the annotated step at its position."""

from __future__ import annotations

import shlex

from rich.color import Color
from rich.style import Style
from rich.text import Text

from workbench.data.compare import AnnotatedStep, CompareView, GroundedStep, VariantSide

UPPER_HALF = "▀"


def _span(step: AnnotatedStep) -> str:
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


def describe_grounding(view: CompareView, side: VariantSide) -> Text:
    """A variant's generated steps, each with its grounded frame and the annotated step at the
    same position; a note saying what to run when the generation is not grounded."""
    text = Text()
    text.append(f"Grounding · {side.variant.name}", style="bold")
    grounding = side.grounding
    if side.generation is None:
        text.append("\n\nNo generations yet for this variant and sample.", style="dim")
        return text
    if grounding is None:
        command = shlex.join(["ddft", "ground", "--variant", side.variant.name,
                              "--eval-set", view.eval_set])
        text.append(f"\n\nNot grounded yet — run `{command}`.", style="dim")
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


def describe_segments(view: CompareView) -> Text:
    """The sample's annotated steps with their times and the sampled frames inside each."""
    text = Text()
    text.append("Annotated steps", style="bold")
    text.append(f"  {view.external_id}\n\n", style="dim")
    if not view.segments:
        text.append("This sample has no annotated step segments.", style="dim")
        return text
    for number, step in enumerate(view.segments, 1):
        text.append(f"{number}. ", style="bold")
        text.append(f"{_span(step)} ")
        text.append(f"{step.sentence}\n")
        if step.frames:
            text.append("   frames " + ", ".join(str(f + 1) for f in step.frames) + "\n",
                        style="dim")
        else:
            text.append("   no sampled frame falls in this step\n", style="yellow")
    return text
