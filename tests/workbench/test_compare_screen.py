"""The Compare screen: the reference beside every variant's generation, marks, judgments, filters."""

from __future__ import annotations

from textual.widgets import OptionList, Select

from db import queries

from .conftest import running, settle


def _panes(app) -> dict[str, str]:
    """Each column's text by its heading: "reference", then the variants' names."""
    screen = app.screen
    panes = {"reference": str(screen.query_one("#reference").content)}
    for pane in screen.query(".generation"):
        text = str(pane.content)
        panes[text.split("\n", 1)[0].split("·")[1].split()[0] if "·" in text else pane.id] = text
    return panes


def _shown(app) -> list[str]:
    options = app.screen.query_one("#compare-samples", OptionList)
    return [str(options.get_option_at_index(i).prompt).split(" ·")[0] for i in range(options.option_count)]


async def test_reference_and_every_variant_side_by_side(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        assert len(_shown(app)) == 10
        panes = _panes(app)
        assert set(panes) == {"reference", "tuned", "base"}  # both variants at once
        reference, tuned, base = panes["reference"], panes["tuned"], panes["base"]
        # Marks per line, in column order (tuned, then base): tuned matches eggs, tomato and
        # olive oil but misses salt; base (water, salt) matches only salt.
        assert "marks: tuned base" in reference
        assert "✓✗ - 2 eggs" in reference and "✓✗ - 1 tbsp olive oil" in reference
        assert "✗✓ - pinch of salt" in reference
        # The reference names "Tomato omelette 0", tuned "Tomato omelette", base "Soup": for
        # the offline judge's dish_match neither is the same dish.
        assert "✗✗ Dish: Tomato omelette 0" in reference
        assert "✗ Dish: Tomato omelette\n" in tuned and "✗ Dish: Soup" in base
        assert "dish: ✗ not the reference's dish (Tomato omelette 0)" in tuned
        # Steps by content words: tuned's "Beat eggs." covers step 1; "Cook with the tomato."
        # covers no reference step (1 of 4 and 1 of 4 content words); base covers none.
        assert "✓✗ 1. Beat the eggs." in reference
        assert "✗✗ 2. Fry the tomato in the olive oil." in reference
        assert "✗✗ 3. Add the eggs and cook until set." in reference
        assert "+ 2. Cook with the tomato." in tuned and "  1. Beat eggs." in tuned
        assert "+ - water" in base and "  - salt" in base  # water is extra, salt matched
        assert "+ -" not in tuned  # no extra ingredient
        assert "3/4 reference ingredients matched · 0 extra" in tuned
        assert "1/3 reference steps covered · 1 extra" in tuned
        assert "1/4 reference ingredients matched · 1 extra" in base
        assert "0/3 reference steps covered · 1 extra" in base
        assert "offline · offline · v1 · score 4 · yes" in tuned
        assert "gpt-3.5-turbo · paper · p1 · score 4 · yes" in tuned
        assert "offline · offline · v1 · score 4 · yes" in base and "gpt" not in base
        assert "frame times: 0.0s, 1.1s, 2.2s" in tuned

        await pilot.press("down", "down", "down", "down", "down")  # eval-05: base unparsable
        await settle(pilot)
        panes = _panes(app)
        assert "Dish: Tomato omelette 5" in panes["reference"]
        assert "offline · offline · v1 · score — · unparsable" in panes["base"]
        assert "offline · offline · v1 · score 3 · no" in panes["tuned"]


async def test_filters_narrow_the_sample_list(demo_store):
    with demo_store.session() as session:
        # A second opinion on tuned's eval-06 that disagrees with the offline judge's yes
        # (4.0), and one on base's eval-00 that agrees with its yes.
        tuned, base = (queries.get_variant(session, name=n) for n in ("tuned", "base"))
        for variant, index, verdict, score in ((tuned, 6, "no", 3.0), (base, 0, "yes", 4.0)):
            generation = queries.list_generations(session, variant_id=variant.id,
                                                  sample_id=demo_store.eval_sample_ids[index])[-1]
            queries.add_judgment(session, generation_id=generation.id, judge="gpt-3.5-turbo",
                                 protocol="paper", prompt_version="p1", score=score,
                                 verdict=verdict, raw="{}")
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        summary = lambda: str(app.screen.query_one("#compare-summary").content)
        assert "10 eval samples · 2 variants" in summary()

        await pilot.press("d")
        await settle(pilot)
        # Only eval-06 has a generation judged yes by one judge and no by another (the GPT
        # judgments on tuned's eval-00..03 agree with the offline ones; see conftest).
        assert _shown(app) == ["eval-06"]
        assert "1 of 10 eval samples" in summary()
        assert "Dish: Tomato omelette 6" in _panes(app)["reference"]

        await pilot.press("d", "g")
        await settle(pilot)
        # The gap judge defaults to the first setting by name, gpt-3.5-turbo · paper · p1;
        # eval-00 is the only sample both variants have a GPT score for, and 4 − 4 = 0.
        assert app.screen.query_one("#compare-judge", Select).selection == "gpt-3.5-turbo · paper · p1"
        assert _shown(app) == []
        assert "No sample passes the filters" in _panes(app)["reference"]
        assert ("Score gap: on the 1 sample with scores of two variants under gpt-3.5-turbo · "
                "paper · p1, none are more than 1 apart") in _panes(app)["reference"]
        assert "Press g to turn the filter off" in _panes(app)["reference"]

        app.screen.query_one("#compare-judge", Select).value = "offline · offline · v1"
        await settle(pilot)
        # Offline scores, base vs tuned per sample: 00 4/4, 01 2/4.5, 02 3.5/2, 03 1.5/5,
        # 04 3/3.5, 05 unparsable/3, 06 4.5/4, 07 2.5/4.5, 08 1/2.5, 09 2/3.5 → more than one
        # point apart: 01 (2.5), 02 (1.5), 03 (3.5), 07 (2), 08 (1.5), 09 (1.5).
        assert _shown(app) == ["eval-01", "eval-02", "eval-03", "eval-07", "eval-08", "eval-09"]
        assert "6 of 10 eval samples" in summary()

        await pilot.press("d")  # both filters: no gap sample has a disagreement
        await settle(pilot)
        assert _shown(app) == []
        await pilot.press("d", "g")
        await settle(pilot)
        assert len(_shown(app)) == 10


async def test_a_variant_without_generations_takes_no_column_and_is_named(demo_store):
    with demo_store.session() as session:
        queries.create_variant(session, name="untried", base_model="/models/tiny")
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        panes = _panes(app)
        assert set(panes) == {"reference", "tuned", "base"}
        assert "No generation for this sample: untried" in panes["reference"]
        assert "ddft generate --variant untried --eval-set kitchen-eval" in panes["reference"]
        assert "Generation · tuned" in panes["tuned"]
        assert "Dish: Tomato omelette 0" in panes["reference"]
        assert "marks: tuned base\n" in panes["reference"]


async def test_the_columns_fit_the_width_and_v_cycles_the_variants_that_do_not(demo_store):
    async with running(demo_store.url) as (app, pilot):  # 160 columns wide
        await pilot.press("3")
        await settle(pilot)
        await pilot.pause()
        columns = list(app.screen.query(".compare-column"))
        assert len(columns) == 3  # the reference and both variants side by side
        assert all(c.region.right <= 160 and c.region.width >= 40 for c in columns)
        assert "variant 1 of" not in _panes(app)["tuned"]

        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        await pilot.pause()
        # Too narrow for three: the reference and one variant, nothing off-screen.
        columns = list(app.screen.query(".compare-column"))
        assert len(columns) == 2 and all(c.region.right <= 80 for c in columns)
        panes = _panes(app)
        assert set(panes) == {"reference", "tuned"}
        assert "variant 1 of 2 (v: next)" in panes["tuned"]
        assert "marks: tuned\n" in panes["reference"]
        assert "✓ - 2 eggs" in panes["reference"]

        await pilot.press("v")
        await settle(pilot)
        panes = _panes(app)
        assert set(panes) == {"reference", "base"}
        assert "variant 2 of 2 (v: next)" in panes["base"]
        assert "marks: base\n" in panes["reference"] and "✗ - 2 eggs" in panes["reference"]

        await pilot.press("down")  # the next sample keeps the variant chosen
        await settle(pilot)
        assert set(_panes(app)) == {"reference", "base"}
        await pilot.press("v")
        await settle(pilot)
        assert set(_panes(app)) == {"reference", "tuned"}

        await pilot.resize_terminal(160, 48)
        await settle(pilot)
        await pilot.pause()
        assert set(_panes(app)) == {"reference", "tuned", "base"}
        await pilot.press("v")  # everything is shown: nothing to cycle
        await settle(pilot)
        assert "Every variant with a generation for this sample is shown (2)" in " ".join(
            str(n.message) for n in app._notifications)


async def test_a_new_sample_is_shown_from_its_top(demo_store):
    async with running(demo_store.url) as (app, pilot):
        await pilot.resize_terminal(80, 24)
        await pilot.press("3")
        await settle(pilot)
        await pilot.pause()
        scrolls = [s for s in app.screen.query(".compare-column") if s.max_scroll_y > 0]
        assert scrolls  # the generation's judgments are below the fold at 80×24
        for scroll in scrolls:
            scroll.scroll_to(y=scroll.max_scroll_y, animate=False, immediate=True)
        assert all(scroll.scroll_y > 0 for scroll in scrolls)
        await pilot.press("down")
        await settle(pilot)
        await pilot.pause()
        assert "Dish: Tomato omelette 1" in _panes(app)["reference"]
        assert [scroll.scroll_y for scroll in app.screen.query(".compare-column")] == [0, 0]
        assert app.screen.query_one("#compare-columns").virtual_size.width <= 80


async def test_each_judgment_shows_the_parts_of_its_score_and_w_its_reply(demo_store):
    from engine.evaluation.offline_judge import score_recipe

    from .conftest import REFERENCE, TUNED_TEXT

    scored = score_recipe(TUNED_TEXT, REFERENCE.format(i=0))
    with demo_store.session() as session:
        tuned = queries.get_variant(session, name="tuned")
        generation = queries.list_generations(session, variant_id=tuned.id,
                                              sample_id=demo_store.eval_sample_ids[0])[-1]
        queries.add_judgment(session, generation_id=generation.id, judge="offline",
                             protocol="offline", prompt_version="offline-v2", score=scored.score,
                             verdict=scored.verdict, raw="", details=scored.details())
        queries.add_judgment(session, generation_id=generation.id, judge="gpt-4o",
                             protocol="two-stage", prompt_version="two-stage-v1", score=3.5,
                             verdict="yes", raw='{"ingredients": "{\'score\': 4}", '
                                               '"steps": "{\'score\': 3}"}',
                             details={"ingredients": 4.0, "steps": 3.0,
                                      "response_model": "gpt-4o-2024", "tokens_in": 900,
                                      "tokens_out": 12, "cached": False})
    # By hand: ingredients P 3/3, R 3/4 → F1 0.857; steps P 1/2, R 1/3 → F1 0.4; every
    # generated ingredient has a quantity → measurements 1 × 0.857.
    assert (scored.ingredient_f1, scored.step_f1, scored.measurement_rate) == (0.8571, 0.4, 1.0)
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        tuned_pane = _panes(app)["tuned"]
        assert "offline · offline · offline-v2 · score 3.7 · yes" in tuned_pane
        # 4 × 0.45 × 0.857 = 1.54; 4 × 0.4 × 0.4 = 0.64; 4 × 0.15 × 1 × 0.857 = 0.51.
        assert "ingredients +1.54: F1 0.86 (P 1.00, R 0.75), weight 0.45" in tuned_pane
        assert "steps +0.64: F1 0.40 (P 0.50, R 0.33), weight 0.4" in tuned_pane
        assert "measurements +0.51: 100% with an amount × ingredient F1, weight 0.15" in tuned_pane
        assert "score = 1 + the parts = 3.70 (yes from 3.5)" in tuned_pane
        # The v1 judgments of the fixture stored no numbers: said, not invented.
        assert "no parts stored with this judgment" in tuned_pane
        assert "gpt-4o · two-stage · two-stage-v1 · score 3.5 · yes" in tuned_pane
        assert "ingredients 4 · steps 3 (the score is their mean)" in tuned_pane
        assert "model gpt-4o-2024 · 900 tokens in, 12 out" in tuned_pane
        assert "{'score': 4}" not in tuned_pane

        await pilot.press("w")
        await settle(pilot)
        tuned_pane = _panes(app)["tuned"]
        assert "reply:" in tuned_pane and "{'score': 4}" in tuned_pane
        assert "no reply stored (the offline judge asks no one" in tuned_pane


def _add_eval_set(store, name: str, n_samples: int, *, judged: bool) -> list[int]:
    """An eval set of `n_samples` samples; with `judged`, both variants' generations of each,
    judged offline."""
    with store.session() as session:
        dataset = queries.get_or_create_dataset(session, name=name, modality="video",
                                                purpose="eval", source="synthetic")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"{name}-{i}", "modality": "video", "split": "test",
             "prompt": "p", "answer": f"Dish: Bread {i}\nIngredients:\n- 1 cup flour\nSteps:\n1. Bake."}
            for i in range(n_samples)])
        ids = [s.id for s in queries.list_samples(session, dataset_id=dataset.id, limit=None)]
        if judged:
            for variant in queries.list_variants(session):
                for sample_id in ids:
                    generation = queries.add_generation(
                        session, variant_id=variant.id, sample_id=sample_id, prompt="p",
                        text="Dish: Bread\nIngredients:\n- flour\nSteps:\n1. Bake.", params_key="k")
                    queries.add_judgment(session, generation_id=generation.id, judge="offline",
                                         protocol="offline", prompt_version="v1", score=3.0,
                                         verdict="no", raw="")
        return ids


def test_the_default_eval_set_is_the_most_judged_then_the_first():
    from db.compare import EvalSetCount
    from engine.evaluation.report import default_eval_set

    assert default_eval_set([EvalSetCount(1, "a", 0), EvalSetCount(2, "b", 3),
                             EvalSetCount(3, "c", 3)]) == 2
    assert default_eval_set([EvalSetCount(1, "a", 0), EvalSetCount(2, "b", 0)]) == 1
    assert default_eval_set([]) is None


def test_the_loader_lists_only_the_chosen_eval_sets_samples(demo_store):
    from workbench.data.compare import load_choices

    _add_eval_set(demo_store, "spare-eval", 3, judged=False)
    choices = load_choices(demo_store.db_engine)
    names = dict(choices.eval_sets)
    assert list(names.values()) == ["kitchen-eval", "spare-eval"]
    # kitchen-eval has 20 judged generations, spare-eval none: kitchen-eval by default.
    assert names[choices.dataset_id] == "kitchen-eval" and len(choices.samples) == 10
    # Tuned's eval-00..03 carry a GPT verdict beside the offline one (see conftest).
    assert [s.judged_twice for s in choices.samples] == [True] * 4 + [False] * 6
    assert {s.eval_set for s in choices.samples} == {"kitchen-eval"}
    spare = next(i for i, name in names.items() if name == "spare-eval")
    chosen = load_choices(demo_store.db_engine, dataset_id=spare)
    assert [s.label for s in chosen.samples] == ["spare-eval-0", "spare-eval-1", "spare-eval-2"]
    assert chosen.settings == ()  # nothing judged there
    # 22 judged generations (11 samples × 2 variants) outnumber kitchen-eval's 20.
    _add_eval_set(demo_store, "busy-eval", 11, judged=True)
    busy = load_choices(demo_store.db_engine)
    assert busy.eval_set == "busy-eval" and len(busy.samples) == 11


async def test_e_chooses_the_eval_set_whose_samples_are_listed(demo_store):
    _add_eval_set(demo_store, "spare-eval", 3, judged=False)
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        eval_set = app.screen.query_one("#compare-eval-set", Select)
        assert app.screen.choices.eval_set == "kitchen-eval"
        assert len(_shown(app)) == 10

        await pilot.press("e")
        assert app.focused is eval_set
        spare = next(i for i, name in app.screen.choices.eval_sets if name == "spare-eval")
        eval_set.value = spare
        await settle(pilot)
        assert _shown(app) == ["spare-eval-0", "spare-eval-1", "spare-eval-2"]
        assert "3 eval samples · 2 variants" in str(app.screen.query_one("#compare-summary").content)
        panes = _panes(app)
        assert "Dish: Bread 0" in panes["reference"]
        assert set(panes) == {"reference"}  # no variant has a generation here: no column
        assert "No generation for this sample: tuned, base" in panes["reference"]
        assert "ddft generate --variant tuned --eval-set spare-eval" in panes["reference"]

        # Coming back to the screen keeps the choice.
        await pilot.press("1", "3")
        await settle(pilot)
        assert eval_set.selection == spare and len(_shown(app)) == 3
