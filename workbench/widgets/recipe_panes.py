"""The two sides of the Compare screen: the reference recipe, and a variant's generation."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.data.compare import CompareView


def describe_reference(view: CompareView) -> Text:
    text = Text()
    text.append("Reference", style="bold")
    text.append(f"  {view.external_id}\n", style="dim")
    if view.media_path:
        text.append(f"{view.media_path}\n", style="dim")
    text.append("\n")
    marks = {check.line_no: check for check in view.ingredients}
    for line_no, line in enumerate(view.reference.splitlines()):
        check = marks.get(line_no)
        if check is None:
            text.append(f"  {line}\n")
        elif check.found:
            text.append("✓ ", style="bold green")
            text.append(f"{line}\n")
        else:
            text.append("✗ ", style="bold red")
            text.append(f"{line}\n", style="red")
    if view.ingredients:
        text.append(f"\n{view.covered}/{len(view.ingredients)} reference ingredients named in "
                    f"{view.variant.name}'s recipe (word overlap)\n", style="dim")
    return text


def describe_generation(view: CompareView) -> Text:
    text = Text()
    text.append(f"Generation · {view.variant.name}", style="bold")
    generation = view.generation
    if generation is None:
        text.append("\n\nNo generations yet for this variant and sample — run "
                    f"`ddft generate --variant {view.variant.name} --eval-set {view.eval_set}`.",
                    style="dim")
        return text
    text.append(f"  #{generation.id} · {generation.created}\n\n", style="dim")
    text.append(generation.text)
    text.append("\n\nframe times: ", style="bold")
    if generation.frame_times:
        text.append(", ".join(f"{t:.1f}s" for t in generation.frame_times))
    else:
        text.append("none recorded", style="dim")
    if generation.decoding:
        text.append("\ndecoding: ", style="bold")
        text.append(", ".join(f"{k}={v}" for k, v in generation.decoding), style="dim")
    text.append("\n\njudgments\n", style="bold")
    if not view.judgments:
        text.append(f"not judged yet — run `ddft judge --eval-set {view.eval_set}`\n", style="dim")
    for judgment in view.judgments:
        score = "—" if judgment.score is None else f"{judgment.score:g}"
        verdict_style = {"yes": "bold green", "no": "bold red"}.get(judgment.verdict, "yellow")
        text.append(f"  {judgment.judge} · {judgment.protocol} · {judgment.prompt_version}   score {score}   ")
        text.append(judgment.verdict or "—", style=verdict_style)
        text.append("\n")
    return text


class RecipePane(Static):
    """One side of the comparison, or a note saying what to run first."""

    def show_text(self, text: Text) -> None:
        self.update(text)

    def show_note(self, note: str) -> None:
        self.update(Text(note, style="dim"))
