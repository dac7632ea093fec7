"""One reading: on every kitchen eval sample, the Compare screen marks exactly the ingredient
lines, the steps and the dish the offline judge scored, and its breakdown adds up to the score."""

from __future__ import annotations

import pytest

from db import queries
from db.store import open_store, session_scope
from engine.evaluation import offline_judge
from engine.evaluation.offline_judge import score_parts
from engine.evaluation.recipe import format_recipe
from engine.importers.kitchen import EVAL_SET, import_kitchen
from engine.jobs import create_job, run_job
from engine.kitchen.build import build_kitchen
from engine.kitchen.recipes import DISHES
from workbench.data.compare import load_choices, load_view

EXTRA = "1 cup marshmallows"


@pytest.fixture(scope="module")
def kitchen_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen")
    build_kitchen(root, videos_per_dish=1, held_out_per_dish=1, images_per_dish=0, seed=1)
    return root


def _plural(line: str) -> str:
    """The line with its food's last word in the plural ("1 egg" → "1 eggs")."""
    head, comma, rest = line.partition(",")
    words = head.split()
    if not words[-1].endswith("s"):
        words[-1] += "s"
    return " ".join(words) + comma + rest


def perturbed(ingredients: tuple[str, ...], steps: tuple[str, ...], name: str) -> str:
    """The recipe without its first ingredient, every other one pluralised, a counted unit
    moved after its food ("garlic cloves"), the lines in reverse order, and an extra one."""
    kept = [_plural(line).replace("cloves garlic", "garlic cloves") for line in ingredients[1:]]
    return format_recipe(name, kept[::-1] + [EXTRA], steps)


def _lines(text: str, numbers) -> list[str]:
    lines = text.splitlines()
    return sorted(lines[n] for n in numbers)


def test_compare_marks_exactly_the_lines_the_offline_judge_scored(tmp_path, kitchen_root):
    db_engine = open_store(url=f"sqlite:///{tmp_path}/ddft.db")
    import_kitchen(db_engine, kitchen_root)
    dishes = {dish.slug: dish for dish in DISHES}
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        assert len(samples) == len(DISHES)  # one held-out video per dish
        echo = queries.create_variant(session, name="echo", base_model="-")
        changed = queries.create_variant(session, name="perturbed", base_model="-")
        other = queries.create_variant(session, name="other", base_model="-")
        for sample in samples:
            dish = dishes[sample.meta["dish"]]
            # "other" writes the next dish's recipe: another dish, other steps.
            wrong = DISHES[(DISHES.index(dish) + 1) % len(DISHES)]
            for variant, text in ((echo, sample.answer),
                                  (changed, perturbed(dish.ingredients, dish.steps, dish.name)),
                                  (other, format_recipe(wrong.name, wrong.ingredients,
                                                        wrong.steps))):
                queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       prompt=sample.prompt, text=text, params_key="k")
    run_job(db_engine, create_job(db_engine, kind="judge", params={"eval_set": EVAL_SET}),
            workspace=tmp_path)

    choices = load_choices(db_engine)
    assert len(choices.samples) == len(DISHES)
    for choice in choices.samples:
        view = load_view(db_engine, sample=choice, variants=choices.variants)
        with session_scope(db_engine) as session:
            dish = dishes[queries.get_sample(session, sample_id=choice.id).meta["dish"]]
            judged, scores = {}, {}
            for side in view.sides:
                (judgment,) = queries.judgments_for_generation(session,
                                                               generation_id=side.generation.id)
                assert judgment.prompt_version == offline_judge.PROMPT_VERSION
                judged[side.variant.name] = judgment.details
                scores[side.variant.name] = judgment.score
        for side in view.sides:
            scored = judged[side.variant.name]
            lines = scored["ingredient_lines"]
            assert side.marks.matched == {pair["reference"][0] for pair in lines["matched"]}
            assert side.marks.missing == {line for line, _ in lines["missing"]}
            assert side.marks.extra == {line for line, _ in lines["extra"]}
            # The judge's numbers are those sets' shares.
            n_matched = len(side.marks.matched)
            assert scored["ingredient_recall"] == round(
                n_matched / (n_matched + len(side.marks.missing)), 4)
            assert scored["ingredient_precision"] == round(
                n_matched / (n_matched + len(side.marks.extra)), 4)
            # Steps: the covered reference steps are the judge's matched steps.
            marks = side.marks
            n_covered = len(marks.steps_covered)
            assert scored["step_recall"] == round(
                n_covered / (n_covered + len(marks.steps_missed)), 4)
            assert scored["step_precision"] == round(
                n_covered / (n_covered + len(marks.steps_extra)), 4)
            assert scored["dish_match"] == marks.dish_match
            # The breakdown Compare shows adds up to the stored score.
            parts = score_parts(scored)
            assert abs(1 + sum(part.points for part in parts) - scores[side.variant.name]) < 0.01

        echo_side, changed_side, other_side = view.sides
        n = len(dish.ingredients)
        assert len(echo_side.marks.matched) == n and not echo_side.marks.missing
        assert not echo_side.marks.extra and judged["echo"]["ingredient_f1"] == 1.0
        assert len(echo_side.marks.steps_covered) == len(dish.steps)
        assert not echo_side.marks.steps_missed and echo_side.marks.dish_match
        reference_lines = view.reference.splitlines()
        assert reference_lines[echo_side.marks.reference_dish_line] == f"Dish: {dish.name}"
        # Another dish is marked as one, in the judge's details and on the screen alike.
        assert not other_side.marks.dish_match and judged["other"]["dish_match"] is False
        assert other_side.marks.generated_dish == DISHES[(DISHES.index(dish) + 1)
                                                          % len(DISHES)].name
        # Plurals, word order and line order do not matter; the dropped line is missing and
        # the added one extra, in the judge's details and on the screen alike.
        assert len(changed_side.marks.matched) == n - 1
        assert _lines(view.reference, changed_side.marks.missing) == [f"- {dish.ingredients[0]}"]
        assert _lines(changed_side.generation.text, changed_side.marks.extra) == [f"- {EXTRA}"]
    db_engine.dispose()
