"""Batched greedy generation on the tiny model: equal to unbatched, frame provenance, per-batch yields."""

from __future__ import annotations

import pytest

from engine.generate import GenRequest, decoding_params, generate
from engine.media import MediaError, uniform_indices
from engine.model.loading import load_model


@pytest.fixture(scope="module")
def engine_loaded(engine_tiny_model):
    return load_model(str(engine_tiny_model), device="cpu")


def mixed_requests(media) -> list[GenRequest]:
    return [
        GenRequest(
            1,
            "video",
            "What is the recipe for the dish in this video?",
            str(media / "red0.mp4"),
        ),
        GenRequest(2, "video", "Recipe?", str(media / "green0.mp4")),
        GenRequest(
            3,
            "video",
            "Tell me how to cook what you see, step by step.",
            str(media / "red1.mp4"),
        ),
        GenRequest(
            4, "image", "What is the dish in this image?", str(media / "green.png")
        ),
        GenRequest(5, "image", "Dish?", str(media / "red.png")),
        GenRequest(6, "text", "How long should I rest a steak after cooking it?", None),
        GenRequest(7, "text", "Why salt water?", None),
    ]


def test_batched_greedy_equals_unbatched_greedy(engine_loaded, engine_media_dir):
    requests = mixed_requests(engine_media_dir)
    batched = {
        o.sample_id: o
        for o in generate(engine_loaded, requests, batch_size=3, max_new_tokens=12)
    }
    single = {
        o.sample_id: o
        for o in generate(engine_loaded, requests, batch_size=1, max_new_tokens=12)
    }
    assert sorted(batched) == list(range(1, 8))
    for sample_id, out in single.items():
        assert batched[sample_id].text == out.text, sample_id
        assert batched[sample_id].n_tokens == out.n_tokens
        assert 0 < out.n_tokens <= 12
    assert len({o.text for o in single.values()}) > 1  # the inputs do steer the output


def test_outputs_carry_the_prompt_and_the_frames_shown(engine_loaded, engine_media_dir):
    requests = mixed_requests(engine_media_dir)
    outputs = list(generate(engine_loaded, requests, batch_size=4, max_new_tokens=4))
    # Grouped by modality, shortest prompt first within one.
    assert [o.sample_id for o in outputs] == [2, 1, 3, 5, 4, 7, 6]
    by_id = {o.sample_id: o for o in outputs}
    expected = uniform_indices(24, 8)
    assert by_id[1].frame_indices == expected == [0, 3, 7, 10, 13, 16, 20, 23]
    assert by_id[1].frame_times == [i / 8 for i in expected]
    assert (
        by_id[1].prompt
        == "USER: <video>\nWhat is the recipe for the dish in this video? ASSISTANT:"
    )
    assert by_id[4].frame_indices == [] and by_id[6].frame_times == []
    assert (
        by_id[6].prompt
        == "USER: How long should I rest a steak after cooking it? ASSISTANT:"
    )


def test_outputs_come_per_batch_so_a_failure_keeps_earlier_results(
    engine_loaded, engine_media_dir
):
    requests = [
        GenRequest(1, "video", "Recipe?", str(engine_media_dir / "red0.mp4")),
        GenRequest(2, "video", "Recipe, please?", str(engine_media_dir / "green0.mp4")),
        GenRequest(
            3,
            "video",
            "The recipe for this dish, please?",
            str(engine_media_dir / "broken.mp4"),
        ),
    ]
    stream = generate(engine_loaded, requests, batch_size=2, max_new_tokens=3)
    done = [next(stream), next(stream)]
    assert [o.sample_id for o in done] == [1, 2]
    with pytest.raises(MediaError, match="broken.mp4"):
        next(stream)


def test_unknown_modality_is_refused(engine_loaded):
    with pytest.raises(ValueError, match="audio"):
        list(generate(engine_loaded, [GenRequest(1, "audio", "x", None)]))


def test_decoding_params_describe_only_what_matters():
    assert decoding_params() == {
        "do_sample": False,
        "max_new_tokens": 256,
        "num_frames": 8,
    }
    assert decoding_params(temperature=0.7) == decoding_params()
    sampled = decoding_params(
        do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=64
    )
    assert sampled == {
        "do_sample": True,
        "max_new_tokens": 64,
        "num_frames": 8,
        "temperature": 0.7,
        "top_p": 0.9,
    }


def test_a_file_that_cannot_be_read_removes_only_itself_from_its_batch(
    engine_loaded, engine_media_dir, monkeypatch
):
    from engine.generate import GenFailure

    batches: list[int] = []
    model_generate = engine_loaded.model.generate

    def counting_generate(**inputs):
        batches.append(inputs["input_ids"].shape[0])
        return model_generate(**inputs)

    monkeypatch.setattr(engine_loaded.model, "generate", counting_generate)

    requests = [
        GenRequest(1, "video", "Recipe?", str(engine_media_dir / "red0.mp4")),
        GenRequest(2, "video", "Recipe, please?", str(engine_media_dir / "broken.mp4")),
        GenRequest(3, "video", "The recipe, please?", str(engine_media_dir / "green0.mp4")),
        GenRequest(4, "image", "Dish?", str(engine_media_dir / "broken.mp4")),
        GenRequest(5, "image", "What dish?", str(engine_media_dir / "red.png")),
    ]
    failures: list[GenFailure] = []
    outputs = list(generate(engine_loaded, requests, batch_size=2, max_new_tokens=6,
                            on_failure=failures.append))
    # The broken video's batch took the next video instead: 1 and 3 ran together.
    assert [o.sample_id for o in outputs] == [1, 3, 5] and batches == [2, 1]
    assert [f.sample_id for f in failures] == [2, 4]
    video, image = (f.reason for f in failures)
    assert video.startswith("cannot read video") and image.startswith("cannot read image")
    assert str(engine_media_dir) not in video + image  # the sample names the file
    alone = {o.sample_id: o.text for o in generate(engine_loaded, [requests[0], requests[2]],
                                                   batch_size=1, max_new_tokens=6)}
    assert {o.sample_id: o.text for o in outputs if o.sample_id != 5} == alone
