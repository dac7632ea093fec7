"""Giving the model each frame's time: off by default and then plain Video-LLaVA to the bit; in the
prompt's text; as a learned embedding after the projector, trained, saved, reloaded, merged and
used by generation and grounding with identical outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from engine.model.timeaware import (
    ENCODER_FILE,
    TIME_FILE,
    TimeEncoderError,
    TimeSettings,
    attach_time_encoder,
    frame_times,
    frame_times_text,
    time_features,
    times_tensor,
)
from engine.train import (
    TrainConfig,
    TrainError,
    TrainExample,
    encode_example,
    load_media,
    make_accelerator,
    optimizer_step,
    save_checkpoint,
    setup_training,
    with_frame_times,
)

PROMPT = "List the steps with their times."
ANSWER = "1. [0.0s - 1.5s] Chop the onion.\n2. [1.5s - 3.0s] Fry the onion."


def _examples(media: Path) -> list[TrainExample]:
    return [TrainExample("video", PROMPT, ANSWER, str(media / f"{colour}{i}.mp4"), sample_id=n)
            for n, (colour, i) in enumerate((("red", 0), ("green", 0), ("red", 1), ("green", 1)))]


def _video_inputs(loaded, media: Path, prompt: str = PROMPT):
    from engine.media import sample_frames
    from engine.model.loading import format_prompt

    sampled = sample_frames(media / "red0.mp4", n=8)
    inputs = loaded.processor(text=[format_prompt("video", prompt)], videos=[sampled.frames],
                              return_tensors="pt")
    return inputs, times_tensor([time_features(sampled.times, sampled.duration_s)])


def _logits(model, inputs, times):
    with torch.no_grad(), frame_times(model, times):
        return model(**inputs).logits


def test_both_options_are_off_by_default_and_then_encoding_is_plain_video_llava(
        engine_tiny_model, engine_media_dir):
    from engine.jobs.train_settings import load_preset
    from engine.model.loading import load_model

    assert not TrainConfig().time_in_text and not TrainConfig().time_embedding
    for preset in ("tiny", "paper"):
        config = load_preset(preset)
        assert (config.time_in_text, config.time_embedding) == (False, False)
    processor = load_model(str(engine_tiny_model), device="cpu").processor
    [example] = with_frame_times(_examples(engine_media_dir)[:1], 8)
    media = load_media(processor, [example], 8)[example.media_path]
    plain = encode_example(processor, dataclasses.replace(example, frame_times=None), media)
    off = encode_example(processor, example, media, time=TimeSettings())
    assert off == plain and off.time_features is None


def test_an_untrained_encoder_changes_no_output_bit_and_the_optimizer_sees_it_only_when_on(
        engine_tiny_model, engine_media_dir):
    from engine.model.loading import load_model

    loaded = load_model(str(engine_tiny_model), device="cpu")
    inputs, times = _video_inputs(loaded, engine_media_dir)
    before = _logits(loaded.model, inputs, None)
    attach_time_encoder(loaded.model, TimeSettings(embedding=True))
    # Its last layer starts at zero: the visual tokens are what they were, to the bit.
    assert torch.equal(_logits(loaded.model, inputs, times), before)
    with pytest.raises(TimeEncoderError, match="needs each frame's time"):
        _logits(loaded.model, inputs, None)

    def trainable(config):
        model = load_model(str(engine_tiny_model), device="cpu").model
        training = setup_training(model, config, accelerator=make_accelerator("cpu"),
                                  device="cpu", pad_id=0)
        return [n for n, p in training.model.named_parameters() if p.requires_grad]

    off, on = trainable(TrainConfig()), trainable(TrainConfig(time_embedding=True))
    assert not any("frame_time_encoder" in n for n in off)
    assert sorted(set(on) - set(off)) == sorted(
        n for n in on if "frame_time_encoder.modules_to_save" in n) and len(on) > len(off)


def test_time_in_text_states_the_times_of_the_frames_actually_sampled(engine_tiny_model,
                                                                       engine_media_dir):
    from engine.media import sample_frames
    from engine.model.loading import load_model

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    [example] = with_frame_times(_examples(engine_media_dir)[:1], 8)
    sampled = sample_frames(example.media_path, n=8)
    assert list(example.frame_times) == sampled.times and example.duration_s == 3.0
    media = load_media(processor, [example], 8)[example.media_path]
    encoded = encode_example(processor, example, media, time=TimeSettings(in_text=True))
    text = processor.tokenizer.decode(encoded.input_ids, skip_special_tokens=True)
    assert frame_times_text(sampled.times, 3.0) in text
    assert "frame 1 at 0.0s" in text and "frame 8 at 2.9s (video 3.0s)." in text
    with pytest.raises(TrainError, match="has none"):
        encode_example(processor, dataclasses.replace(example, frame_times=None), media,
                       time=TimeSettings(in_text=True))


@pytest.fixture(scope="module")
def time_adapter(engine_tiny_model, engine_media_dir, tmp_path_factory):
    """Three optimizer steps with both options on, saved as a checkpoint; with the in-memory
    model's logits on a video to compare reloads against."""
    from engine.model.loading import load_model
    from engine.train import EncodedExample, collate  # noqa: F401

    loaded = load_model(str(engine_tiny_model), device="cpu")
    config = TrainConfig(batch_size=2, learning_rate=3e-2, projector_learning_rate=3e-3,
                         lora_dropout=0.0, time_in_text=True, time_embedding=True, seed=0)
    examples = with_frame_times(_examples(engine_media_dir), 8)
    media = load_media(loaded.processor, examples, 8)
    timing = TimeSettings.from_config(config)
    encoded = [encode_example(loaded.processor, e, media[e.media_path], time=timing)
               for e in examples]
    training = setup_training(loaded.model, config, accelerator=make_accelerator("cpu"),
                              device="cpu", pad_id=loaded.processor.tokenizer.pad_token_id)
    for step in range(3):
        optimizer_step(training, [(encoded[2 * (step % 2):2 * (step % 2) + 2], media)])
    model = training.model
    model.eval()
    folder = tmp_path_factory.mktemp("time_adapter") / "final"
    save_checkpoint(model, folder, {"config": dataclasses.asdict(config)})
    inputs, times = _video_inputs(loaded, engine_media_dir)
    return folder, _logits(model, inputs, times), model


def test_the_encoder_trains_and_reloads_with_the_adapter_to_identical_outputs(
        engine_tiny_model, engine_media_dir, time_adapter):
    from safetensors.torch import load_file

    from engine.model.loading import load_variant

    folder, in_memory, _ = time_adapter
    assert json.loads((folder / TIME_FILE).read_text())["embedding"] is True
    weights = load_file(str(folder / "adapter_model.safetensors"))
    last = [v for k, v in weights.items() if "frame_time_encoder" in k and "net.2.weight" in k]
    assert last and last[0].abs().sum() > 0  # trained away from its zero start
    reloaded = load_variant(str(engine_tiny_model), str(folder), device="cpu")
    assert reloaded.time == TimeSettings(in_text=True, embedding=True)
    inputs, times = _video_inputs(reloaded, engine_media_dir)
    assert torch.equal(_logits(reloaded.model, inputs, times), in_memory)
    # The times matter once trained: other times, other outputs.
    later = times.clone()
    later[..., 0] += 5.0
    assert not torch.equal(_logits(reloaded.model, inputs, later), in_memory)


def test_a_merged_model_keeps_the_encoder_as_an_extra_module(engine_tiny_model,
                                                             engine_media_dir, time_adapter,
                                                             tmp_path):
    from engine.model.loading import ModelLoadError, load_model, load_variant
    from engine.model.timeaware import save_merged

    folder, in_memory, _ = time_adapter
    loaded = load_variant(str(engine_tiny_model), str(folder), device="cpu")
    note = save_merged(loaded.model.merge_and_unload(), tmp_path / "merged", loaded.time)
    loaded.processor.save_pretrained(tmp_path / "merged")
    assert "extra module" in note and ENCODER_FILE in note
    assert (tmp_path / "merged" / ENCODER_FILE).is_file()
    merged = load_model(str(tmp_path / "merged"), device="cpu")
    assert merged.time == TimeSettings(in_text=True, embedding=True)
    inputs, times = _video_inputs(merged, engine_media_dir)
    assert torch.allclose(_logits(merged.model, inputs, times), in_memory, atol=1e-4)
    (tmp_path / "merged" / ENCODER_FILE).unlink()
    with pytest.raises(ModelLoadError, match=f"{ENCODER_FILE}: not found"):
        load_model(str(tmp_path / "merged"), device="cpu")


def test_an_exported_adapter_carries_the_encoder_and_its_settings(engine_tiny_model,
                                                                  engine_media_dir,
                                                                  time_adapter, tmp_path):
    from engine.export import export_adapter
    from engine.model.loading import ModelLoadError, load_variant

    folder, in_memory, _ = time_adapter
    out = export_adapter(folder, tmp_path / "export", base_model=str(engine_tiny_model))
    assert (out / TIME_FILE).is_file()
    exported = load_variant(str(engine_tiny_model), str(out), device="cpu")
    inputs, times = _video_inputs(exported, engine_media_dir)
    assert torch.equal(_logits(exported.model, inputs, times), in_memory)
    # Without its settings file the adapter is refused, never loaded without its encoder.
    (out / TIME_FILE).unlink()
    with pytest.raises(ModelLoadError, match=f"frame-time encoder but no {TIME_FILE}"):
        load_variant(str(engine_tiny_model), str(out), device="cpu")


def test_generation_and_grounding_give_a_time_trained_model_its_frame_times(
        engine_tiny_model, engine_media_dir, time_adapter):
    from engine.attention import capture_frame_attention
    from engine.evaluation.grounding import GroundingError
    from engine.generate import GenRequest, generate
    from engine.media import sample_frames
    from engine.model.loading import load_variant

    folder, _, _ = time_adapter
    loaded = load_variant(str(engine_tiny_model), str(folder), device="cpu")
    requests = [GenRequest(n, "video", PROMPT, str(engine_media_dir / f"{c}{i}.mp4"))
                for n, (c, i) in enumerate((("red", 0), ("green", 0)))]
    batched = {o.sample_id: o for o in generate(loaded, requests, batch_size=2,
                                                max_new_tokens=8)}
    alone = {o.sample_id: o for r in requests for o in generate(loaded, [r], max_new_tokens=8)}
    assert {k: v.text for k, v in batched.items()} == {k: v.text for k, v in alone.items()}
    output = batched[0]
    assert frame_times_text(output.frame_times, 3.0) in output.prompt

    sampled = sample_frames(engine_media_dir / "red0.mp4", n=8)
    text = output.text or "Chop."
    with pytest.raises(GroundingError, match="frame-time encoder"):
        capture_frame_attention(loaded, prompt=output.prompt, text=text, frames=sampled.frames,
                                layers=[2], heads=[0])
    attention = capture_frame_attention(loaded, prompt=output.prompt, text=text,
                                        frames=sampled.frames, layers=[2], heads=[0],
                                        frame_times=sampled.times,
                                        duration_s=sampled.duration_s)
    assert attention.masses.shape[-1] == 8


def test_a_broken_time_settings_file_is_one_line_naming_it(engine_tiny_model, time_adapter,
                                                           tmp_path):
    import shutil

    from engine.model.loading import ModelLoadError, load_variant

    folder, _, _ = time_adapter
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / TIME_FILE).write_text('{"embedding": "yes"}')
    with pytest.raises(ModelLoadError, match=rf"{TIME_FILE}: embedding: expected true or "
                                             "false, found 'yes'"):
        load_variant(str(engine_tiny_model), str(copy), device="cpu")
