"""The Compare screen's time view (`f`), its grounding part: each generated step with its
grounded frame, a half-block thumbnail and the annotated step at the same position."""

from __future__ import annotations

from db import queries
from db.queries import add_grounding
from workbench.data.compare import THUMB_CELLS, AnnotatedStep, grounding_view

from .conftest import STRIP_REST, STRIP_TOP, running, settle, variant_column, write_strip

PARAMS = {"layers": list(range(16, 32)), "heads": list(range(32)), "top_k": 1,
          "layers_spec": "late", "heads_spec": "all"}
TIMES = [0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7]


def _ground_tuned(store, strip: str | None) -> None:
    """A grounding of tuned's eval-00 recipe ("1. Beat eggs." / "2. Cook with the tomato."):
    step 1 on frame 2 (1.1 s, inside 0–3 s), step 2 on frame 8 (7.7 s, outside 3–6.5 s)."""
    weights = [[0.1, 0.5, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0], [0, 0, 0, 0, 0, 0, 0.25, 0.75]]
    steps = []
    for index, (text, frame) in enumerate((("Beat eggs.", 1), ("Cook with the tomato.", 7))):
        step = {"index": index, "text": text, "frames": [frame], "frame_indices": [3 * frame],
                "times": [TIMES[frame]], "weights": weights[index]}
        if strip:
            step["strip"] = strip
        steps.append(step)
    with store.session() as session:
        tuned = queries.get_variant(session, name="tuned")
        generation = queries.list_generations(session, variant_id=tuned.id,
                                              sample_id=store.eval_sample_ids[0])[-1]
        add_grounding(session, generation_id=generation.id, params_key="k1", params=PARAMS,
                      steps=steps)


def _pane(app, selector: str) -> str:
    return str(app.screen.query_one(selector).content)




async def test_f_shows_each_steps_frame_beside_the_annotated_step(demo_store):
    _ground_tuned(demo_store, str(write_strip(demo_store.root / "ground.png")))
    async with running(demo_store.url) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        tuned = variant_column(app, "tuned")
        assert "grounding: layers 16-31 · heads all · top-1 — press f" in tuned
        assert "grounding:" not in variant_column(app, "base")

        await pilot.press("f")
        await settle(pilot)
        reference = _pane(app, "#reference")
        assert "Annotated steps  eval-00" in reference
        assert "1. 0–3s beat the eggs\n   frames 1, 2, 3" in reference
        assert "2. 3–6.5s fry the tomato\n   frames 4, 5, 6" in reference
        assert "3. 6.5–9s cook the omelette\n   frames 7, 8" in reference
        tuned = variant_column(app, "tuned")
        assert "1/2 grounded frames inside the annotated step" in tuned
        assert "1. Beat eggs." in tuned and "2. Cook with the tomato." in tuned
        assert "frame 2/8 · 1.1s · 50% attn" in tuned
        assert "annotated 0–3s ✓ inside" in tuned
        assert "frame 8/8 · 7.7s · 75% attn" in tuned
        assert "annotated 3–6.5s ✗ outside" in tuned
        assert "▀" in tuned  # the thumbnails
        base = variant_column(app, "base")
        assert ("Not grounded yet — run `ddft ground --variant base --eval-set kitchen-eval`"
                in base)

        await pilot.press("down")  # eval-01: tuned's generation there is not grounded
        await settle(pilot)
        assert "Not grounded yet" in variant_column(app, "tuned")
        await pilot.press("up", "f")
        await settle(pilot)
        assert "Reference" in _pane(app, "#reference")
        assert "Beat eggs." in variant_column(app, "tuned")


async def test_the_grounding_view_fits_80_by_24_and_says_when_thumbnails_are_missing(demo_store):
    from textual.worker import Worker, WorkerState

    from workbench.app import build_app

    _ground_tuned(demo_store, None)  # no strip saved; eval-00's sample has none either
    failures = []

    def record(message) -> None:
        if isinstance(message, Worker.StateChanged) and message.state == WorkerState.ERROR:
            failures.append(repr(message.worker.error))

    app = build_app(url=demo_store.url)
    async with app.run_test(size=(80, 24), message_hook=record) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        tuned = variant_column(app, "tuned")
        assert "no frame strip saved for this video" in tuned
        assert "frame 2/8 · 1.1s" in tuned and "▀" not in tuned
        (column,) = app.screen.query(".generation")
        assert column.region.height > 0 and column.region.right <= 80
    assert not failures, failures


def test_a_thumbnail_is_the_chosen_frame_of_the_strip(tmp_path):
    strip = str(write_strip(tmp_path / "strip.png"))
    segments = (AnnotatedStep(0.0, 3.0, "beat", (0, 1, 2)),)
    steps = [{"index": 0, "text": "a", "frames": [1], "times": [1.1], "weights": [1] * 8},
             {"index": 1, "text": "b", "frames": [7], "times": [7.7], "weights": [1] * 8}]
    view = grounding_view(steps, PARAMS, segments, 8, strip)
    first, second = view.steps
    assert len(first.thumb[0]) == THUMB_CELLS and len(first.thumb) % 2 == 0
    # Only each strip frame's top pixel row has its own colour (red 30·f); the rest is shared.
    assert first.thumb[-1][0] == second.thumb[-1][0] == STRIP_REST
    assert first.thumb[0][0][0] < second.thumb[0][0][0]
    assert STRIP_TOP[1][0] < STRIP_TOP[7][0]
    assert (first.hit, second.hit, second.segment) == (True, None, None)
    assert first.weight == 1 / 8
    # A grounding without steps has nothing to draw and no missing strip to mention.
    assert grounding_view([], PARAMS, segments, 8, None).strip_note == ""
    assert "no frame strip saved" in grounding_view(steps, PARAMS, segments, 8, None).strip_note


def test_with_top_k_above_one_any_kept_frame_inside_is_a_hit():
    segments = (AnnotatedStep(0.0, 1.0, "heat the oil", (0,)),)
    steps = [{"index": 0, "text": "Heat.", "frames": [7, 0], "times": [7.9, 0.0],
              "weights": [0.3, 0, 0, 0, 0, 0, 0, 0.7]}]
    (step,) = grounding_view(steps, PARAMS, segments, 8, None).steps
    assert (step.frame, step.time, step.also) == (7, 7.9, ((0, 0.0),))
    assert step.hit is True  # as the report counts it: frame 1 (0.0 s) lies in 0–1 s


def test_a_thumbnail_stored_relative_to_the_workspace_is_found_there(demo_store):
    from workbench.data.compare import load_choices, load_view

    (demo_store.root / "thumbs").mkdir()
    write_strip(demo_store.root / "thumbs" / "s.png")
    _ground_tuned(demo_store, "thumbs/s.png")
    choices = load_choices(demo_store.db_engine)
    sample = next(s for s in choices.samples if s.id == demo_store.eval_sample_ids[0])
    view = load_view(demo_store.db_engine, sample=sample, variants=choices.variants,
                     workspace=demo_store.root)
    (tuned,) = [side for side in view.sides if side.variant.name == "tuned"]
    assert tuned.grounding.strip_note == "" and tuned.grounding.steps[0].thumb
