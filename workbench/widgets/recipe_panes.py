"""The columns of the Compare screen: the reference recipe, and each variant's generation."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual.widgets import Static

from workbench.data.compare import CompareView, VariantSide

VERDICT_STYLES = {"yes": "bold green", "no": "bold red", "unparsable": "bold yellow"}


def describe_reference(view: CompareView) -> Text:
    """The reference with one mark per generated variant before each ingredient line
    (✓ matched, ✗ missing, in the columns' order); a line every variant matched is green,
    one that every variant missed is red."""
    text = Text()
    text.append("Reference", style="bold")
    text.append(f"  {view.external_id}\n", style="dim")
    if view.media_path:
        text.append(f"{view.media_path}\n", style="dim")
    generated = [side for side in view.sides if side.generation is not None]
    if generated:
        text.append(f"marks: {' '.join(side.variant.name for side in generated)}\n", style="dim")
    text.append("\n")
    width = len(generated)
    for line_no, line in enumerate(view.reference.splitlines()):
        matched = [line_no in side.marks.matched for side in generated]
        missing = [line_no in side.marks.missing for side in generated]
        if not any(matched) and not any(missing):
            text.append(" " * (width + 1) + f"{line}\n")
            continue
        for hit, miss in zip(matched, missing):
            if hit:
                text.append("✓", style="bold green")
            elif miss:
                text.append("✗", style="bold red")
            else:
                text.append(" ")
        style = "green" if all(matched) else "red" if all(missing) else ""
        text.append(f" {line}\n", style=style)
    return text


def describe_generation(view: CompareView, side: VariantSide) -> Text:
    """A variant's latest generation, extra ingredients marked, then each judge's verdict."""
    text = Text()
    text.append(f"Generation · {side.variant.name}", style="bold")
    generation = side.generation
    if generation is None:
        command = shlex.join(["ddft", "generate", "--variant", side.variant.name,
                              "--eval-set", view.eval_set])
        text.append(f"\n\nNo generations yet for this variant and sample — run `{command}`.",
                    style="dim")
        return text
    text.append(f"  #{generation.id} · {generation.created}\n\n", style="dim")
    for line_no, line in enumerate(generation.text.splitlines()):
        if line_no in side.marks.extra:
            text.append("+ ", style="bold yellow")
            text.append(f"{line}\n", style="yellow")
        else:
            text.append(f"  {line}\n")
    total = len(side.marks.matched) + len(side.marks.missing)
    text.append(f"\n{side.matched}/{total} reference ingredients matched · "
                f"{len(side.marks.extra)} extra\n", style="dim")
    text.append("frame times: ", style="bold")
    if generation.frame_times:
        text.append(", ".join(f"{t:.1f}s" for t in generation.frame_times))
    else:
        text.append("none recorded", style="dim")
    if generation.decoding:
        text.append("\ndecoding: ", style="bold")
        text.append(", ".join(f"{k}={v}" for k, v in generation.decoding), style="dim")
    if side.grounding is not None:
        text.append("\ngrounding: ", style="bold")
        text.append(f"{side.grounding.params} — press f for each step's frame", style="dim")
    text.append("\n\njudgments\n", style="bold")
    if not side.judgments:
        command = shlex.join(["ddft", "judge", "--eval-set", view.eval_set])
        text.append(f"not judged yet — run `{command}`\n", style="dim")
    for judgment in side.judgments:
        score = "—" if judgment.score is None else f"{judgment.score:g}"
        text.append(f"  {judgment.judge} · {judgment.protocol} · {judgment.prompt_version} · "
                    f"score {score} · ")
        text.append(judgment.verdict or "—", style=VERDICT_STYLES.get(judgment.verdict, "yellow"))
        text.append("\n")
    return text


class RecipePane(Static):
    """One column of the comparison, or a note saying what to run first."""

    def show_text(self, text: Text) -> None:
        self.update(text)

    def show_note(self, note: str) -> None:
        self.update(Text(note, style="dim"))
