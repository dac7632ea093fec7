"""Keyframe grounding on the tiny model and the synthetic kitchen: settings, the attention
capture's shapes and values, the per-step frame choice, the hit rate, and the ground and
timestamp jobs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from db import queries
from db.models import Generation
from db.queries import groundings_for_generation
from db.store import session_scope
from engine.attention import capture_frame_attention, frame_token_positions
from engine.evaluation.grounding import (
    FrameAttention,
    GroundingError,
    StepSpan,
    chance_of_hit,
    compact_indices,
    ground_steps,
    grounding_report,
    parse_index_spec,
    render_grounding_markdown,
    resolve_params,
    step_hits,
    step_spans,
)
from engine.importers.kitchen import EVAL_SET, import_kitchen
from engine.jobs import create_job, run_job
from engine.kitchen.build import build_kitchen
from engine.media import sample_frames
from engine.model.loading import format_prompt, load_model
from engine.evaluation.recipe import RECIPE_PROMPT
from engine.evaluation.timestamps import TIMESTAMP_PROMPT, Segment, annotated_segments

RECIPE = ("Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\n- 1/2 tsp salt\n"
          "Steps:\n1. Simmer the tomatoes for 20 minutes.\n2. Blend until smooth.")


# ------------------------------------------------------------------ settings


def test_layer_and_head_lists():
    assert parse_index_spec("late", 32, "layers") == tuple(range(16, 32))
    assert parse_index_spec("all", 3, "heads") == (0, 1, 2)
    assert parse_index_spec("12-14", 32, "layers") == (12, 13, 14)
    assert parse_index_spec("0, 4,8-9,4", 32, "layers") == (0, 4, 8, 9)
    assert compact_indices([0, 4, 8, 9, 10]) == "0,4,8-10"


@pytest.mark.parametrize("spec, message", [
    ("12-40", "layers: expected indices from 0 to 31, found '12-40'"),
    ("9-3", "layers: expected a range from low to high, found '9-3'"),
    ("middle", "layers: expected 'all', 'late' or numbers and ranges like 12-31, found 'middle'"),
])
def test_bad_layer_lists_say_what_was_expected(spec, message):
    with pytest.raises(GroundingError, match=message):
        parse_index_spec(spec, 32, "layers")


def test_the_key_follows_the_resolved_setting():
    late = resolve_params(layers="late", heads="all", top_k=1, n_layers=32, n_heads=32)
    listed = resolve_params(layers="16-31", heads="0-31", top_k=1, n_layers=32, n_heads=32)
    assert late.key == listed.key
    assert resolve_params(layers="late", heads="all", top_k=2, n_layers=32,
                          n_heads=32).key != late.key
    with pytest.raises(GroundingError, match="top-k: expected 1 to 8 frames, found 9"):
        resolve_params(layers="all", heads="all", top_k=9, n_layers=3, n_heads=4)


# ------------------------------------------------------------------ steps and positions


def test_steps_are_the_lines_of_the_steps_section():
    spans = step_spans(RECIPE)
    assert [s.text for s in spans] == ["Simmer the tomatoes for 20 minutes.", "Blend until smooth."]
    assert [RECIPE[s.start:s.end] for s in spans] == [
        "1. Simmer the tomatoes for 20 minutes.", "2. Blend until smooth."]
    assert step_spans("Dish: Soup\nIngredients:\n- water") == []


def test_frame_blocks_are_consecutive_runs_of_video_tokens():
    ids = [1, 9, 9, 9, 9, 9, 9, 5, 6]
    assert frame_token_positions(ids, 9, 3).tolist() == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(GroundingError, match="expected the video tokens to split into 4 "
                                             "frames, found 6 video tokens"):
        frame_token_positions(ids, 9, 4)


# ------------------------------------------------------------------ capture on the tiny model


@pytest.fixture(scope="module")
def tiny_loaded(engine_tiny_model):
    return load_model(str(engine_tiny_model), device="cpu")


def test_capture_shapes_and_values_match_the_models_own_attentions(tiny_loaded,
                                                                   engine_media_dir):
    import torch

    sampled = sample_frames(engine_media_dir / "red0.mp4", 8)
    prompt = format_prompt("video", RECIPE_PROMPT)
    layers, heads = (1, 2), (0, 3)
    captured = capture_frame_attention(tiny_loaded, prompt=prompt, text=RECIPE,
                                       frames=sampled.frames, layers=layers, heads=heads)
    tokenizer = tiny_loaded.tokenizer
    n_answer = (len(tokenizer(f"{prompt} {RECIPE}")["input_ids"])
                - len(tokenizer(prompt)["input_ids"]))
    # The tiny model sees 56x56 frames: 4x4 patches + CLS = 17 tokens a frame.
    assert captured.tokens_per_frame == 17
    assert captured.masses.shape == (2, 2, n_answer, 8)
    assert len(captured.token_spans) == n_answer
    assert captured.token_spans[-1][1] == len(RECIPE)

    # The same numbers from transformers' own output_attentions, reduced by hand: the row of
    # the position that predicted each generated token, summed over each frame's 17 tokens.
    inputs = tiny_loaded.processor(text=[f"{prompt} {RECIPE}"], videos=[sampled.frames],
                                   return_tensors="pt")
    with torch.inference_mode():
        out = tiny_loaded.model(**inputs, output_attentions=True, use_cache=False)
    ids = inputs["input_ids"][0].tolist()
    video = [i for i, t in enumerate(ids) if t == tiny_loaded.model.config.video_token_id]
    assert len(video) == 8 * 17
    rows = range(len(ids) - n_answer - 1, len(ids) - 1)
    for li, layer in enumerate(layers):
        attn = out.attentions[layer][0].float().numpy()
        for hi, head in enumerate(heads):
            expected = np.stack([[attn[head, r, video[17 * f:17 * (f + 1)]].sum()
                                  for f in range(8)] for r in rows])
            np.testing.assert_allclose(captured.masses[li, hi], expected, rtol=1e-4, atol=1e-6)


def test_each_step_keeps_the_frames_its_tokens_attend_to_most():
    # Tokens 0-1 belong to step 0 ("ab"), token 2 (characters 1-3, "b\nc") to both steps,
    # token 3 to step 1.
    masses = np.zeros((2, 1, 4, 8), dtype=np.float32)
    masses[:, 0, 0, 5] = 1.0
    masses[:, 0, 1, 2] = 0.8
    masses[:, 0, 2, 2] = 0.6
    masses[0, 0, 3, [1, 6]] = 0.5  # a tie in layer 0 ...
    masses[1, 0, 3, 6] = 0.1  # ... broken by layer 1
    attention = FrameAttention(masses=masses, token_spans=((0, 1), (1, 2), (1, 4), (4, 5)),
                               tokens_per_frame=17)
    spans = [StepSpan(0, "ab", 0, 2), StepSpan(1, "cd", 3, 5)]
    times = [float(t) for t in range(0, 16, 2)]
    indices = list(range(0, 80, 10))
    steps = ground_steps(attention, spans, frame_indices=indices, frame_times=times, top_k=2)
    # Step 0 averages tokens 0, 1, 2: frame 2 gets (0.8 + 0.6) / 3, frame 5 gets 1 / 3.
    assert steps[0]["frames"] == [2, 5]
    assert steps[0]["frame_indices"] == [20, 50] and steps[0]["times"] == [4.0, 10.0]
    assert steps[0]["weights"][2] == pytest.approx(1.4 / 3, abs=1e-6)
    # Step 1: tokens 2 and 3; frame 2 has 0.6 / 2, then frame 6 ((0.5 + 0.1) / 2 / 2) beats
    # frame 1 (0.5 / 2 / 2).
    assert steps[1]["frames"] == [2, 6]
    assert steps[1]["weights"][6] == pytest.approx(0.15) and steps[1]["weights"][1] == 0.125
    one = ground_steps(attention, spans, frame_indices=indices, frame_times=times, top_k=1)
    assert [s["frames"] for s in one] == [[2], [2]]
    flat = FrameAttention(masses=np.ones((1, 1, 4, 8), dtype=np.float32),
                          token_spans=attention.token_spans, tokens_per_frame=17)
    assert ground_steps(flat, spans, frame_indices=indices, frame_times=times)[0]["frames"] == [0]


# ------------------------------------------------------------------ hit rate


@pytest.mark.parametrize("n, inside, k", [(8, 0, 1), (8, 3, 1), (8, 3, 2), (8, 8, 3), (8, 1, 4)])
def test_the_chance_baseline_is_exact(n, inside, k):
    draws = list(itertools.combinations(range(n), k))
    brute = sum(any(f < inside for f in draw) for draw in draws) / len(draws)
    assert chance_of_hit(n, inside, k) == pytest.approx(brute)


def test_hits_against_the_step_at_the_same_position():
    times = [0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7]
    segments = [Segment(0.0, 3.0), Segment(3.0, 6.5), Segment(6.5, 9.0)]
    steps = [{"index": 0, "times": [2.2]},  # inside [0, 3]: hit; 3 of 8 frames inside
             {"index": 1, "times": [7.7]},  # outside [3, 6.5]: miss; 3 inside
             {"index": 2, "times": [6.6]},  # inside [6.5, 9]: hit; 2 inside
             {"index": 3, "times": [0.0]},  # no annotated segment 3: not counted
             {"index": 1, "times": []}]  # nothing grounded: not counted
    hits = step_hits(steps, segments, times)
    assert [(h.index, h.hit) for h in hits] == [(0, True), (1, False), (2, True)]
    assert [h.chance for h in hits] == pytest.approx([3 / 8, 3 / 8, 2 / 8])


# ------------------------------------------------------------------ the jobs, end to end


@pytest.fixture(scope="module")
def kitchen_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen")
    build_kitchen(root, videos_per_dish=1, held_out_per_dish=1, images_per_dish=0, seed=1,
                  dishes=("tomato-soup", "garden-salad"))
    return root


def _kitchen_with_recipes(db_engine, model: Path, root: Path) -> list[int]:
    """The kitchen's eval set, a `tiny` variant and one stored recipe generation per eval video
    (the video's reference recipe, with the frames 8-frame sampling takes)."""
    import_kitchen(db_engine, root)
    ids = []
    with session_scope(db_engine) as session:
        variant = queries.create_variant(session, name="tiny", base_model=str(model))
        dataset = queries.get_dataset(session, name=EVAL_SET)
        for sample in queries.list_samples(session, dataset_id=dataset.id, limit=None):
            sampled = sample_frames(sample.media_path, 8)
            ids.append(queries.add_generation(
                session, variant_id=variant.id, sample_id=sample.id,
                prompt=format_prompt("video", sample.prompt), text=sample.answer,
                params_key="hand", frame_indices=sampled.indices,
                frame_times=sampled.times).id)
    return ids


def _run(db_engine, workspace, kind, params):
    job_id = create_job(db_engine, kind=kind, params=params)
    return run_job(db_engine, job_id, workspace=workspace)


def test_the_ground_job_stores_a_frame_per_step_and_resumes(ddft_store, ddft_workspace,
                                                            engine_tiny_model, kitchen_root):
    generation_ids = _kitchen_with_recipes(ddft_store, engine_tiny_model, kitchen_root)
    params = {"variant": "tiny", "eval_set": EVAL_SET, "layers": "late", "heads": "all",
              "top_k": 1}
    job = _run(ddft_store, ddft_workspace, "ground", params)
    assert job.status == "succeeded" and job.result["grounded"] == 2
    with session_scope(ddft_store) as session:
        for generation_id in generation_ids:
            generation = session.get(Generation, generation_id)
            (grounding,) = groundings_for_generation(session, generation_id=generation_id)
            assert grounding.params["layers"] == [1, 2]  # the later half of 3 layers
            assert grounding.params["heads"] == [0, 1, 2, 3] and grounding.job_id == job.id
            assert [s["text"] for s in grounding.steps] == [s.text for s in
                                                            step_spans(generation.text)]
            for step in grounding.steps:
                (frame,) = step["frames"]
                assert step["frame_indices"] == [generation.frame_indices[frame]]
                assert step["times"] == [generation.frame_times[frame]]
                assert len(step["weights"]) == 8
                assert max(step["weights"]) == step["weights"][frame]
                # Stored relative to the workspace, so the workspace can move.
                assert not Path(step["strip"]).is_absolute()
                assert (ddft_workspace / step["strip"]).is_file()
    again = _run(ddft_store, ddft_workspace, "ground", params)
    assert (again.result["grounded"], again.result["skipped"]) == (0, 2)
    wider = _run(ddft_store, ddft_workspace, "ground", {**params, "top_k": 2})
    assert wider.result["grounded"] == 2 and wider.result["params_key"] != job.result["params_key"]

    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        report = grounding_report(session, dataset_id=dataset.id)
        # The hit rate by hand from what is stored, for the top-1 setting.
        hits = matched = 0
        for generation_id in generation_ids:
            generation = session.get(Generation, generation_id)
            sample = queries.get_sample(session, sample_id=generation.sample_id)
            segments = annotated_segments(sample.meta)
            grounding = groundings_for_generation(session, generation_id=generation_id)[0]
            for step in grounding.steps:
                if step["index"] < len(segments):
                    matched += 1
                    s = segments[step["index"]]
                    hits += s.start <= step["times"][0] <= s.end
    top1 = next(r for r in report.rows if r.params.endswith("top-1"))
    assert (top1.variant, top1.generations, top1.matched, top1.hits) == ("tiny", 2, matched, hits)
    assert 0 < top1.baseline < 1
    assert {r.params for r in report.rows} == {"layers 1-2 · heads all · top-1",
                                              "layers 1-2 · heads all · top-2"}
    assert "| tiny | layers 1-2 · heads all · top-1 | 2 |" in render_grounding_markdown(report)


def test_bad_layers_fail_the_ground_job_before_anything_is_stored(ddft_store, ddft_workspace,
                                                                  engine_tiny_model,
                                                                  kitchen_root):
    from engine.jobs import JobError

    generation_ids = _kitchen_with_recipes(ddft_store, engine_tiny_model, kitchen_root)
    with pytest.raises(JobError, match="layers: expected indices from 0 to 2, found '0-5'"):
        _run(ddft_store, ddft_workspace, "ground",
             {"variant": "tiny", "eval_set": EVAL_SET, "layers": "0-5"})
    with session_scope(ddft_store) as session:
        assert groundings_for_generation(session, generation_id=generation_ids[0]) == []


def test_timestamp_answers_are_their_own_rows_and_resume(ddft_store, ddft_workspace,
                                                         engine_tiny_model, kitchen_root):
    _kitchen_with_recipes(ddft_store, engine_tiny_model, kitchen_root)
    params = {"variant": "tiny", "eval_set": EVAL_SET, "max_new_tokens": 6, "batch_size": 2,
              "task": "timestamps"}
    job = _run(ddft_store, ddft_workspace, "generate", params)
    assert job.result == {"generated": 2, "skipped": 0, "failed": 0}
    with session_scope(ddft_store) as session:
        answers = queries.list_generations(session, task="timestamps")
        recipes = queries.list_generations(session)
    assert len(answers) == 2 and len(recipes) == 2  # the hand-written recipes only
    assert all(TIMESTAMP_PROMPT in a.prompt and len(a.frame_indices) == 8 for a in answers)
    assert {a.params_key for a in answers}.isdisjoint({r.params_key for r in recipes})
    again = _run(ddft_store, ddft_workspace, "generate", params)
    assert again.result == {"generated": 0, "skipped": 2, "failed": 0}

    # Recipes are still keyed as they always were: prompt and decoding, no task.
    from engine.generate import decoding_params
    from engine.jobs.handlers import generation_key

    recipe_params = {key: value for key, value in params.items() if key != "task"}
    job = _run(ddft_store, ddft_workspace, "generate", recipe_params)
    assert job.result == {"generated": 2, "skipped": 0, "failed": 0}
    with session_scope(ddft_store) as session:
        new = [g for g in queries.list_generations(session) if g.params_key != "hand"]
        prompts = {s.id: s.prompt for s in queries.list_samples(session, limit=None)}
    assert len(new) == 2 and {g.task for g in new} == {"recipe"}
    assert {g.params_key for g in new} == {
        generation_key(prompts[g.sample_id], decoding_params(max_new_tokens=6)) for g in new}


def test_a_lora_wrapped_model_is_captured_through_its_wrapper(engine_tiny_model,
                                                              engine_media_dir):
    from engine.attention import decoder_attention_modules
    from engine.model.loading import attach_lora

    loaded = load_model(str(engine_tiny_model), device="cpu")
    loaded.model = attach_lora(loaded.model, r=4, alpha=8, dropout=0.0)
    assert sorted(decoder_attention_modules(loaded.model)) == [0, 1, 2]  # not the vision towers
    sampled = sample_frames(engine_media_dir / "green0.mp4", 8)
    captured = capture_frame_attention(loaded, prompt=format_prompt("video", RECIPE_PROMPT),
                                       text=RECIPE, frames=sampled.frames, layers=(2,),
                                       heads=(0, 1, 2, 3))
    assert captured.masses.shape[:2] == (1, 4) and captured.masses.shape[-1] == 8
    # Each generated token's attention on the 136 visual tokens is a share of one.
    assert (captured.masses.sum(-1) > 0).all() and (captured.masses.sum(-1) <= 1 + 1e-5).all()


def test_a_short_step_is_found_on_its_own_line_not_in_the_title():
    from engine.evaluation.recipe import format_recipe

    text = format_recipe("Mixed salad", ["1 cucumber", "salt"], ["Mix", "Chop the cucumber"])
    spans = step_spans(text)
    assert [text[s.start:s.end] for s in spans] == ["1. Mix", "2. Chop the cucumber"]
