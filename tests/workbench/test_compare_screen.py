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
        assert "  Dish: Tomato omelette 0" in reference
        assert "+ - water" in base and "  - salt" in base  # water is extra, salt matched
        assert "+ " not in tuned
        assert "3/4 reference ingredients matched · 0 extra" in tuned
        assert "1/4 reference ingredients matched · 1 extra" in base
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


async def test_a_variant_without_generations_says_what_to_run(demo_store):
    with demo_store.session() as session:
        queries.create_variant(session, name="untried", base_model="/models/tiny")
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        panes = _panes(app)
        assert "No generations yet" in panes["untried"]
        assert "ddft generate --variant untried --eval-set kitchen-eval" in panes["untried"]
        assert "Generation · tuned" in panes["tuned"]
        assert "Dish: Tomato omelette 0" in panes["reference"]
        assert "marks: tuned base\n" in panes["reference"]


async def test_the_columns_share_the_width_and_scroll_only_when_too_narrow(demo_store):
    async with running(demo_store.url) as (app, pilot):  # 160 columns wide
        await pilot.press("3")
        await settle(pilot)
        await pilot.pause()
        columns = list(app.screen.query(".compare-column"))
        assert len(columns) == 3  # the reference and two variants
        assert all(c.region.right <= 160 and c.region.width >= 40 for c in columns)
        await pilot.resize_terminal(100, 40)
        await settle(pilot)
        await pilot.pause()
        # Too narrow for three: each keeps 40 cells and the row scrolls sideways.
        assert all(c.styles.width.value == 40 for c in columns)
        assert app.screen.query_one("#compare-columns").virtual_size.width >= 3 * 40


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
        assert "ddft generate --variant tuned --eval-set spare-eval" in panes["tuned"]

        # Coming back to the screen keeps the choice.
        await pilot.press("1", "3")
        await settle(pilot)
        assert eval_set.selection == spare and len(_shown(app)) == 3
