"""The workbench's pure pieces: recipe marks, empty-filter notes, hanging indents, log tails,
the loss sparkline, labels, formats."""

from __future__ import annotations

from workbench.data.compare import (
    CompareView,
    GenerationView,
    VariantChoice,
    VariantSide,
    mark_recipe,
)
from workbench.data.jobs import format_age, loss_sparkline, tail_lines
from workbench.data.report import format_accuracy, format_score
from workbench.data.samples import SampleFilters, SamplePage

from .conftest import BASE_TEXT, REFERENCE, TUNED_TEXT


def test_ingredient_marks_follow_engine_metrics_matching():
    reference = REFERENCE.format(i=0)  # lines 2..5: eggs, tomato, olive oil, salt
    tuned = mark_recipe(reference, TUNED_TEXT)
    assert (sorted(tuned.matched), sorted(tuned.missing), sorted(tuned.extra)) == ([2, 3, 4], [5], [])
    base = mark_recipe(reference, BASE_TEXT)  # BASE_TEXT line 2 is "- water", line 3 "- salt"
    assert (sorted(base.matched), sorted(base.missing), sorted(base.extra)) == ([5], [2, 3, 4], [2])
    assert mark_recipe("no recipe here", TUNED_TEXT).matched == frozenset()


def test_tail_lines_reads_only_the_end_of_a_long_log(tmp_path):
    log = tmp_path / "long.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail_lines(log, 3) == ("line 99997", "line 99998", "line 99999")
    short = tmp_path / "short.log"
    short.write_text("only\n")
    assert tail_lines(short) == ("only",)


def test_loss_sparkline_falls_from_high_to_low_blocks():
    line = loss_sparkline([(step, 3.0 / step) for step in range(1, 201)], 20)
    assert len(line) == 20 and line[0] == "█" and line[-1] == "▁"
    assert loss_sparkline([(1, 2.0)], 20) == ""


def test_labels_and_formats():
    page = SamplePage(filters=SampleFilters(), offset=50, total=120, rows=tuple(range(50)))  # type: ignore[arg-type]
    assert page.label == "rows 51–100 of 120 · page 2/3" and page.has_next and page.has_prev
    assert SamplePage(filters=SampleFilters(), offset=0, total=0, rows=()).label == "rows 0 of 0"
    assert format_accuracy(100 * 22 / 47) == "46.81%" and format_accuracy(None) == "—"
    assert format_score(2.666) == "2.67" and format_score(None) == "—"
    assert format_age(5) == "5s ago" and format_age(125) == "2m ago" and format_age(7300) == "2h ago"


TOMATO_SOUP = """Dish: Tomato soup
Ingredients:
- 4 tomatoes
- 1 onion
Steps:
1. Chop the tomatoes and the onion.
2. Simmer for twenty minutes.
3. Blend until smooth."""
NOODLE_SOUP = """Dish: Chicken Noodle Soup
Ingredients:
- 2 tomatoes
- 1 chicken
Steps:
1. Chop the tomatoes.
2. Boil the chicken."""


def test_the_wrong_dish_and_each_reference_step_are_marked():


    marks = mark_recipe(TOMATO_SOUP, NOODLE_SOUP)
    assert not marks.dish_match and marks.generated_dish == "Chicken Noodle Soup"
    assert (marks.reference_dish_line, marks.generated_dish_line) == (0, 0)
    # "Chop the tomatoes." holds 2 of the 3 content words of step 1 (chop, tomatoes, onion).
    assert marks.steps_covered == {5} and marks.steps_missed == {6, 7}
    assert marks.steps_extra == {6}  # "Boil the chicken." covers no reference step
    assert (marks.matched, marks.missing, marks.extra) == ({2}, {3}, {3})
    same = mark_recipe(TOMATO_SOUP, TOMATO_SOUP.replace("Tomato soup", "  tomato SOUP "))
    assert same.dish_match and same.steps_covered == {5, 6, 7} and not same.steps_missed
    assert not mark_recipe(TOMATO_SOUP, "junk").dish_match


def test_an_empty_filter_says_which_filter_and_why():
    from workbench.data.compare import CompareChoices, EvalSampleChoice, why_none_left

    one_judge = CompareChoices(
        samples=(EvalSampleChoice(1, "a", "e", score_spread=(("offline · offline · v2", 0.5),)),
                 EvalSampleChoice(2, "b", "e")),
        variants=(), settings=("offline · offline · v2",), eval_sets=((7, "kitchen-eval"),),
        dataset_id=7)
    note = why_none_left(one_judge, disagree=True, gap_setting=None)
    assert note.startswith("No sample passes the filters.")
    assert "no generation here has verdicts from two judges" in note
    assert "ddft judge --judge gpt --eval-set kitchen-eval" in note
    assert note.endswith("Press d to turn the filter off.")
    both = why_none_left(one_judge, disagree=True, gap_setting="offline · offline · v2")
    assert "on the 1 sample with scores of two variants under offline · offline · v2, none are " \
           "more than 1 apart" in both and both.endswith("Press d or g to turn the filter off.")
    assert "no sample has scores of two variants under gpt" in why_none_left(
        one_judge, disagree=False, gap_setting="gpt")
    agreeing = CompareChoices(samples=(EvalSampleChoice(1, "a", "e", judged_twice=True),),
                              variants=())
    assert "on the 1 sample judged twice the judges give the same verdicts" in why_none_left(
        agreeing, disagree=True, gap_setting=None)


def test_a_wrapped_line_goes_on_under_its_text_not_its_marks():
    import io

    from rich.console import Console

    from workbench.widgets.hanging import recipe_lines, split_marker
    from workbench.widgets.recipe_panes import describe_reference

    assert split_marker("2. Fry the tomato") == ("2. ", "Fry the tomato")
    assert split_marker("- 2 eggs") == ("- ", "2 eggs")
    assert split_marker("Step 3: Bake") == ("Step 3: ", "Bake")
    assert split_marker("Dish: Soup") == ("", "Dish: Soup")

    def drawn(renderable, width: int) -> list[str]:
        console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
        console.print(renderable)
        return [line.rstrip() for line in console.export_text().splitlines()]

    lines = drawn(recipe_lines("Steps:\n2. Fry the tomato in the olive oil until soft."), 24)
    assert lines == ["Steps:", "2. Fry the tomato in the", "   olive oil until soft."]
    reference = REFERENCE.format(i=0)
    side = VariantSide(VariantChoice(1, "echo"), GenerationView(1, reference, (), (), "now"), (),
                       mark_recipe(reference, reference))
    view = CompareView(sample_id=1, external_id="eval-00", eval_set="kitchen-eval",
                       reference=reference, media_path=None, sides=(side,))
    lines = drawn(describe_reference(view), 30)
    fry = lines.index("✓ 2. Fry the tomato in the")
    assert lines[fry + 1] == "     olive oil."  # under "Fry", past the mark and the number
