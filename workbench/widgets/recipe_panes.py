"""The columns of the Compare screen: the reference recipe with one mark per shown variant, and
each variant's generation with its marks and every judge's breakdown of its score."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import PurePath

from rich.text import Text
from textual.widgets import Static

from workbench.data.compare import CompareView, JudgmentLine, VariantSide
from workbench.widgets.hanging import HangingLines, split_marker
from workbench.widgets.timebar import Stack

VERDICT_STYLES = {"yes": "bold green", "no": "bold red", "unparsable": "bold yellow"}
HIT = ("✓", "bold green")
MISS = ("✗", "bold red")
EXTRA = ("+", "bold yellow")
# What the parts of a two-stage judge's score are called in its details (judge_prompts.STAGES).
TWO_STAGE_PARTS = ("ingredients", "steps")


def _marks(marks: Sequence[tuple[str, str] | None]) -> Text:
    text = Text()
    for mark in marks:
        if mark is None:
            text.append(" ")
        else:
            text.append(*mark)
    return text


def _reference_mark(side: VariantSide, line_no: int) -> tuple[str, str] | None:
    marks = side.marks
    if line_no == marks.reference_dish_line:
        return HIT if marks.dish_match else MISS
    if line_no in marks.matched or line_no in marks.steps_covered:
        return HIT
    if line_no in marks.missing or line_no in marks.steps_missed:
        return MISS
    return None


def describe_reference(view: CompareView, shown: Sequence[VariantSide] | None = None) -> HangingLines:
    """The reference with one mark per shown variant before its dish, ingredient and step lines
    (✓ same dish, matched, covered; ✗ another dish, missing, not covered; in the columns'
    order); a line every shown variant has is green, one that every one misses is red. Below
    it, the variants with no generation for this sample and what to run."""
    shown = view.generated if shown is None else tuple(shown)
    rows = HangingLines()
    heading = Text("Reference", style="bold")
    heading.append(f"  {view.external_id}", style="dim")
    rows.add(heading)
    if view.media_path:  # the file's name; the Samples screen shows its whole path
        rows.add(Text(PurePath(view.media_path).name, style="dim"))
    if shown:
        rows.add(Text(f"marks: {' '.join(side.variant.name for side in shown)}", style="dim"))
        rows.add(Text("✓ same dish, matched, covered · ✗ not", style="dim"))
    rows.add("")
    width = len(shown)
    for line_no, line in enumerate(view.reference.splitlines()):
        marks = [_reference_mark(side, line_no) for side in shown]
        marker, body = split_marker(line)
        if not any(marks):
            rows.add(Text(body), Text(" " * (width + 1) + marker))
            continue
        prefix = _marks(marks)
        prefix.append(" " + marker)
        style = "green" if all(m == HIT for m in marks) else \
            "red" if all(m == MISS for m in marks) else ""
        rows.add(Text(body, style=style), prefix)
    missing = view.not_generated
    if missing:
        rows.add("")
        names = ", ".join(side.variant.name for side in missing)
        rows.add(Text(f"No generation for this sample: {names}", style="dim"))
        for side in missing:
            command = shlex.join(["ddft", "generate", "--variant", side.variant.name,
                                  "--eval-set", view.eval_set])
            rows.add(Text(f"`{command}`", style="dim"), "  ")
    return rows


def _generation_mark(side: VariantSide, line_no: int) -> tuple[str, str] | None:
    marks = side.marks
    if line_no == marks.generated_dish_line:
        return HIT if marks.dish_match else MISS
    if line_no in marks.extra or line_no in marks.steps_extra:
        return EXTRA
    return None


def _dish_line(side: VariantSide) -> Text:
    marks = side.marks
    text = Text("dish: ", style="bold")
    if marks.dish_match:
        text.append("✓ the reference's dish", style="green")
    elif marks.generated_dish is None:
        text.append("✗ no dish named", style="red")
    else:
        text.append("✗ not the reference's dish", style="red")
        if marks.reference_dish:
            text.append(f" ({marks.reference_dish})", style="dim")
    return text


def describe_generation(view: CompareView, side: VariantSide, *, raw: bool = False,
                        position: tuple[int, int] | None = None) -> HangingLines:
    """A variant's latest generation, its dish marked ✓/✗ and extra ingredients and steps +,
    what it matched, then each judge's verdict with the parts of its score (and, with `raw`,
    the judge's reply as stored). `position` (i, n): this is variant i of n, cycled with v."""
    rows = HangingLines()
    rows.add(Text(f"Generation · {side.variant.name}", style="bold"))
    generation = side.generation
    if generation is None:
        command = shlex.join(["ddft", "generate", "--variant", side.variant.name,
                              "--eval-set", view.eval_set])
        rows.add("")
        rows.add(Text(f"No generations yet for this variant and sample — run `{command}`.",
                      style="dim"))
        return rows
    place = f" · variant {position[0]} of {position[1]} (v: next)" if position else ""
    rows.add(Text(f"#{generation.id} · {generation.created}{place}", style="dim"))
    rows.add("")
    for line_no, line in enumerate(generation.text.splitlines()):
        mark = _generation_mark(side, line_no)
        marker, body = split_marker(line)
        prefix = Text()
        prefix.append(*(mark or (" ", "")))
        prefix.append(" " + marker)
        rows.add(Text(body, style="yellow" if mark == EXTRA else ""), prefix)
    marks = side.marks
    rows.add("")
    total = len(marks.matched) + len(marks.missing)
    rows.add(Text(f"{side.matched}/{total} reference ingredients matched · "
                  f"{len(marks.extra)} extra", style="dim"))
    steps = len(marks.steps_covered) + len(marks.steps_missed)
    rows.add(Text(f"{side.covered}/{steps} reference steps covered · "
                  f"{len(marks.steps_extra)} extra", style="dim"))
    rows.add(_dish_line(side))
    rows.add("")
    rows.add(Text("judgments", style="bold"))
    if not side.judgments:
        command = shlex.join(["ddft", "judge", "--eval-set", view.eval_set])
        rows.add(Text(f"not judged yet — run `{command}`", style="dim"), "  ")
    for judgment in side.judgments:
        describe_judgment(rows, judgment, raw=raw)
    rows.add("")
    frames = Text("frame times: ", style="bold")
    if generation.frame_times:
        frames.append(", ".join(f"{t:.1f}s" for t in generation.frame_times))
    else:
        frames.append("none recorded", style="dim")
    rows.add(frames)
    if generation.decoding:
        decoding = Text("decoding: ", style="bold")
        decoding.append(", ".join(f"{k}={v}" for k, v in generation.decoding), style="dim")
        rows.add(decoding)
    if side.grounding is not None:
        grounding = Text("grounding: ", style="bold")
        grounding.append(f"{side.grounding.params} — press f for each step's frame", style="dim")
        rows.add(grounding)
    return rows


def describe_judgment(rows: HangingLines, judgment: JudgmentLine, *, raw: bool = False) -> None:
    """One judgment: its setting, score and verdict, then the parts of the score."""
    score = "—" if judgment.score is None else f"{judgment.score:g}"
    line = Text(f"{judgment.setting} · score {score} · ")
    line.append(judgment.verdict or "—", style=VERDICT_STYLES.get(judgment.verdict, "yellow"))
    rows.add(line, "  ")
    for part in judgment_parts(judgment):
        rows.add(Text(part, style="dim"), "    ")
    if raw:
        if judgment.raw:
            rows.add(Text("reply:", style="bold"), "    ")
            rows.add(Text(judgment.raw), "      ")
        else:
            rows.add(Text("no reply stored (the offline judge asks no one; its numbers are "
                          "above)" if judgment.protocol == "offline" else "no reply stored",
                          style="dim"), "    ")


def judgment_parts(judgment: JudgmentLine) -> list[str]:
    """The parts of a judgment's score, from what its judge stored, as lines to show."""
    details = judgment.details
    parts = judgment.offline_parts
    if parts is not None:
        # Each part's points first (what a reader adds up: 4 × weight × the number, on the 1–5
        # scale), then the number they come from.
        lines = []
        for part in parts:
            if part.name == "measurements":
                lines.append(f"measurements +{part.points:.2f}: {part.rate:.0%} with an amount "
                             f"× ingredient F1, weight {part.weight:g}")
            else:
                lines.append(f"{part.name} +{part.points:.2f}: F1 {part.value:.2f} "
                             f"(P {part.precision:.2f}, R {part.recall:.2f}), weight "
                             f"{part.weight:g}")
        lines.append(f"score = 1 + the parts = {1 + sum(p.points for p in parts):.2f} "
                     "(yes from 3.5)")
        return lines
    if judgment.protocol == "offline":
        return ["no parts stored with this judgment (an older offline judge's)"]
    lines = []
    if judgment.verdict == "unparsable":
        lines.append("the reply could not be read — w shows it")
    if judgment.protocol == "two-stage":
        scores = [(name, details.get(name)) for name in TWO_STAGE_PARTS]
        shown = " · ".join(f"{name} {'—' if value is None else f'{value:g}'}"
                           for name, value in scores)
        lines.append(f"{shown} (the score is their mean)")
    elif judgment.protocol == "upstream" and "pred" in details:
        lines.append(f"the judge's own yes/no: {details['pred']}")
    elif judgment.protocol == "pairwise":
        lines.append(f"asked both ways: {details.get('first_order') or '—'} then "
                     f"{details.get('second_order') or '—'} · winner "
                     f"{details.get('winner') or '—'}"
                     + (" · the verdict followed the order" if details.get("position_flip")
                        else ""))
    elif judgment.protocol == "paper":
        lines.append("one 1–5 score for the whole recipe (the paper's judge gives no parts)")
    if details.get("response_model"):
        lines.append(f"model {details['response_model']} · {details.get('tokens_in', 0)} tokens "
                     f"in, {details.get('tokens_out', 0)} out"
                     + (" · from the cache" if details.get("cached") else ""))
    if judgment.raw:
        lines.append("w shows the judge's reply")
    return lines


class RecipePane(Static):
    """One column of the comparison, or a note saying what to run first."""

    def show_text(self, text: Text | HangingLines | Stack) -> None:
        self.update(text)

    def show_note(self, note: str) -> None:
        self.update(Text(note, style="dim"))
