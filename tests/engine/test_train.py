"""LoRA training on the tiny model: label masking, batching, loss, callbacks, checkpoints, cancel, errors."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from engine.media import MediaError
from engine.train import (
    IGNORE_INDEX,
    EncodedExample,
    TrainConfig,
    TrainError,
    TrainExample,
    encode_example,
    load_media,
    lr_at,
    plan_batches,
    train_lora,
)

RECIPE = "Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\nSteps:\n1. Simmer the tomatoes."


class Recorder:
    """TrainCallbacks that remembers everything and can cancel after a number of steps."""

    def __init__(self, stop_after: int | None = None):
        self.total = None
        self.logs: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[tuple[int, Path, bool]] = []
        self.stop_after = stop_after

    def on_start(self, total_steps: int, start_step: int = 0) -> None:
        self.total, self.start = total_steps, start_step

    def log(self, step: int, values: dict[str, float]) -> None:
        self.logs.append((step, values))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.logs) >= self.stop_after

    def on_checkpoint(self, step: int, path: Path, final: bool) -> None:
        self.checkpoints.append((step, path, final))


def video_examples(media: Path) -> list[TrainExample]:
    return [
        TrainExample(
            "video",
            "What is the recipe?",
            RECIPE,
            str(media / f"red{i}.mp4"),
            sample_id=i,
        )
        for i in range(2)
    ] + [
        TrainExample(
            "video",
            "What is the recipe?",
            "Dish: Green Salad",
            str(media / f"green{i}.mp4"),
            2 + i,
        )
        for i in range(2)
    ]


def test_prompt_tokens_are_masked_and_the_answer_and_eos_are_labelled(
    engine_tiny_model, engine_media_dir
):
    from engine.model.loading import load_model

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    tokenizer = processor.tokenizer
    examples = [
        TrainExample(
            "video", "What is the recipe?", RECIPE, str(engine_media_dir / "red0.mp4")
        ),
        TrainExample(
            "image",
            "What is the dish in this image?",
            "Tomato Soup",
            str(engine_media_dir / "red.png"),
        ),
        TrainExample(
            "text", "How long should I rest a steak?", "About 5 to 10 minutes.", None
        ),
    ]
    media = load_media(processor, examples, num_frames=8)
    for example, n_media in zip(examples, (136, 16, 0)):
        encoded = encode_example(
            processor, example, media.get(example.media_path or "")
        )
        ids, labels = encoded.input_ids, encoded.labels
        assert len(ids) == len(labels)
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        placeholder = {
            "video": processor.video_token_id,
            "image": processor.image_token_id,
        }
        if n_media:
            assert ids.count(placeholder[example.modality]) == n_media
        answer = [i for i, label in zip(ids, labels) if label != IGNORE_INDEX]
        assert answer == [label for label in labels if label != IGNORE_INDEX]
        assert answer[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(answer[:-1]).strip() == example.answer
        n_prompt = labels.index(
            next(label for label in labels if label != IGNORE_INDEX)
        )
        assert tokenizer.decode(ids[:n_prompt], skip_special_tokens=True).endswith(
            "ASSISTANT:"
        )


def test_batches_never_mix_modalities_and_cover_every_example_once():
    encoded = [
        EncodedExample(m, [1], [1], None)
        for m in ["video"] * 5 + ["image"] * 3 + ["text"] * 4
    ]
    batches = plan_batches(encoded, 2, random.Random(0))
    assert sorted(i for batch in batches for i in batch) == list(range(12))
    for batch in batches:
        assert len({encoded[i].modality for i in batch}) == 1
    assert plan_batches(encoded, 2, random.Random(0)) == batches
    assert plan_batches(encoded, 2, random.Random(1)) != batches


def test_learning_rate_warms_up_then_follows_the_cosine_to_the_floor():
    rates = [lr_at(s, peak=1.0, total=10, warmup=2, min_ratio=0.1) for s in range(10)]
    assert rates[:3] == [0.5, 1.0, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(rates[1:]))
    assert rates[-1] == pytest.approx(0.1)


def test_train_lora_lowers_the_loss_reports_and_writes_reloadable_checkpoints(
    engine_tiny_model, engine_media_dir, tmp_path
):
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    from engine.model.loading import load_variant

    recorder = Recorder()
    config = TrainConfig(
        learning_rate=3e-3,
        projector_learning_rate=3e-3,
        lora_dropout=0.0,
        batch_size=4,
        max_steps=6,
        warmup_ratio=0.0,
        save_every=3,
        seed=0,
    )
    result = train_lora(
        base=str(engine_tiny_model),
        examples=video_examples(engine_media_dir),
        out_dir=tmp_path / "run",
        config=config,
        callbacks=recorder,
    )
    assert recorder.total == 6 and result.steps == 6 and not result.stopped
    assert [step for step, _ in recorder.logs] == [1, 2, 3, 4, 5, 6]
    losses = [values["loss"] for _, values in recorder.logs]
    assert losses[-1] < losses[0] - 1.0, losses
    assert result.final_loss == losses[-1]
    first = recorder.logs[0][1]
    assert first["lr"] == pytest.approx(3e-3) and first[
        "projector_lr"
    ] == pytest.approx(3e-3)
    assert recorder.logs[-1][1]["lr"] < first["lr"]
    assert first["samples_per_s"] > 0 and first["tokens_per_s"] > first["samples_per_s"]

    assert [(s, p.name, f) for s, p, f in recorder.checkpoints] == [
        (3, "step-000003", False),
        (6, "final", True),
    ]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "final",
        "frames.jsonl",
        "step-000003",
    ]
    # The step checkpoint can resume (optimizer, RNG, data position); final/ is the adapter only.
    assert (tmp_path / "run" / "step-000003" / "trainer_state.pt").is_file()
    assert not (tmp_path / "run" / "final" / "trainer_state.pt").exists()
    frames = [json.loads(line) for line in (tmp_path / "run" / "frames.jsonl").read_text().splitlines()]
    assert sorted(Path(f["media_path"]).name for f in frames) == [
        "green0.mp4", "green1.mp4", "red0.mp4", "red1.mp4"]
    assert all(f["frame_indices"] == [0, 3, 7, 10, 13, 16, 20, 23] for f in frames), frames[0]
    final = tmp_path / "run" / "final"
    assert result.adapter_dir == final
    saved_config = json.loads((final / "train_config.json").read_text())
    assert saved_config["step"] == 6 and saved_config["config"]["max_steps"] == 6
    assert saved_config["base"] == str(engine_tiny_model)

    saved = load_file(str(final / "adapter_model.safetensors"))
    assert any("multi_modal_projector" in k for k in saved) and any(
        "lora_B" in k for k in saved
    )
    variant = load_variant(str(engine_tiny_model), str(final), device="cpu")
    reloaded = get_peft_model_state_dict(variant.model)
    assert set(reloaded) == set(saved)
    for key, tensor in saved.items():
        assert torch.equal(reloaded[key], tensor), key
    assert any(t.abs().sum() > 0 for k, t in saved.items() if "lora_B" in k)


def test_should_stop_saves_a_checkpoint_and_stops(
    engine_tiny_model, engine_media_dir, tmp_path
):
    recorder = Recorder(stop_after=2)
    config = TrainConfig(learning_rate=1e-3, batch_size=2, max_steps=50, seed=0)
    result = train_lora(
        base=str(engine_tiny_model),
        examples=video_examples(engine_media_dir),
        out_dir=tmp_path / "run",
        config=config,
        callbacks=recorder,
    )
    assert result.stopped and result.steps == 2
    assert result.adapter_dir == tmp_path / "run" / "step-000002"
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert recorder.checkpoints == [(2, result.adapter_dir, False)]
    assert not (tmp_path / "run" / "final").exists()


def test_mixed_modalities_train_together(engine_tiny_model, engine_media_dir, tmp_path):
    examples = video_examples(engine_media_dir)[:2] + [
        TrainExample(
            "image",
            "What is the dish in this image?",
            "Tomato Soup",
            str(engine_media_dir / "red.png"),
        ),
        TrainExample(
            "image",
            "What is the dish in this image?",
            "Green Salad",
            str(engine_media_dir / "green.png"),
        ),
        TrainExample(
            "text", "How long should I rest a steak?", "About 5 to 10 minutes.", None
        ),
    ]
    recorder = Recorder()
    config = TrainConfig(
        learning_rate=1e-3, batch_size=2, epochs=2, grad_accum=2, seed=0
    )
    result = train_lora(
        base=str(engine_tiny_model),
        examples=examples,
        out_dir=tmp_path / "run",
        config=config,
        callbacks=recorder,
    )
    # 5 examples in batches of 2 by modality: 1 video + 1 image + 1 text = 3 batches an epoch;
    # 6 micro-batches over 2 epochs with 2 per step.
    assert recorder.total == 3 and result.steps == 3
    assert all(values["loss"] > 0 for _, values in recorder.logs)


def test_an_unreadable_video_fails_before_training_naming_the_file(
    engine_tiny_model, engine_media_dir, tmp_path
):
    examples = video_examples(engine_media_dir) + [
        TrainExample(
            "video", "What is the recipe?", RECIPE, str(engine_media_dir / "broken.mp4")
        )
    ]
    recorder = Recorder()
    with pytest.raises(MediaError, match="broken.mp4"):
        train_lora(
            base=str(engine_tiny_model),
            examples=examples,
            out_dir=tmp_path / "run",
            config=TrainConfig(max_steps=2),
            callbacks=recorder,
        )
    assert recorder.total is None and not (tmp_path / "run").exists()


def test_bad_settings_are_reported_together(tmp_path):
    config = TrainConfig(lora_r=0, batch_size=0, warmup_ratio=1.5)
    with pytest.raises(TrainError) as caught:
        train_lora(
            base=str(tmp_path / "no-model"),
            examples=[],
            out_dir=tmp_path,
            config=config,
        )
    message = str(caught.value)
    for name in ("lora_r", "batch_size", "warmup_ratio", "examples"):
        assert name in message


def test_a_long_answer_is_cut_never_the_prompt_and_the_run_counts_the_cuts(
    engine_tiny_model, engine_media_dir, tmp_path
):
    from engine.model.loading import load_model

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    video = TrainExample("video", "What is the recipe?", RECIPE * 3,
                         str(engine_media_dir / "red0.mp4"), sample_id=7)
    media = load_media(processor, [video], num_frames=8)
    whole = encode_example(processor, video, media[video.media_path])
    # max_length counts the video as one token, as Video-LLaVA's model_max_length does: the
    # 136 visual tokens (2,056 at 7B) come on top.
    cut = encode_example(processor, video, media[video.media_path], max_length=65)
    assert not whole.truncated and cut.truncated and len(cut.input_ids) == 65 + 135
    # Every prompt token (136 visual ones included) survives; only the answer's tail is gone.
    assert cut.input_ids == whole.input_ids[:200] and cut.labels == whole.labels[:200]
    assert cut.input_ids.count(processor.video_token_id) == 136
    assert cut.input_ids[-1] != processor.tokenizer.eos_token_id
    with pytest.raises(TrainError, match="sample 7: the prompt is .* tokens with its media "
                                         "counted as one, max_length is 10"):
        encode_example(processor, video, media[video.media_path], max_length=10)

    examples = [TrainExample("text", "Q?", "short", None, 1),
                TrainExample("text", "Q?", RECIPE * 4, None, 2),
                TrainExample("text", "Q?", RECIPE * 5, None, 3)]
    recorder = Recorder()
    recorder.notes = []
    recorder.note = recorder.notes.append
    result = train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "run",
                        config=TrainConfig(max_steps=1, batch_size=3, max_length=48),
                        callbacks=recorder, device="cpu")
    assert result.truncated == 2
    assert any("2 of 3 samples are longer than max_length 48" in n for n in recorder.notes)


def test_length_grouping_pads_less_than_random_batches():
    from engine.train import padding_fraction

    rng = random.Random(0)
    encoded = [EncodedExample(m, [1] * rng.randint(10, 400), [1], None)
               for m in ["video"] * 60 + ["image"] * 60 + ["text"] * 60]
    grouped = plan_batches(encoded, 4, random.Random(1), group_by_length=True)
    shuffled = plan_batches(encoded, 4, random.Random(1), group_by_length=False)
    for batches in (grouped, shuffled):
        assert sorted(i for b in batches for i in b) == list(range(180))
        assert all(len({encoded[i].modality for i in b}) == 1 for b in batches)
    assert padding_fraction(encoded, grouped) < padding_fraction(encoded, shuffled) / 4


def test_mixture_weights_repeat_or_subsample_a_dataset_deterministically():
    from engine.train import mixture_epoch

    encoded = ([EncodedExample("video", [1], [1], None, dataset="v") for _ in range(10)]
               + [EncodedExample("text", [1], [1], None, dataset="t") for _ in range(10)])
    epoch = mixture_epoch(encoded, {"v": 2.0, "t": 0.5}, random.Random(0))
    assert sum(encoded[i].dataset == "v" for i in epoch) == 20
    assert sum(encoded[i].dataset == "t" for i in epoch) == 5
    assert epoch == mixture_epoch(encoded, {"v": 2.0, "t": 0.5}, random.Random(0))
    assert epoch != mixture_epoch(encoded, {"v": 2.0, "t": 0.5}, random.Random(1))


def test_out_of_memory_is_one_clear_error_and_earlier_checkpoints_stay(
    engine_tiny_model, tmp_path, monkeypatch
):
    import torch

    import engine.train as train_module

    real_collate, calls = train_module.collate, []

    def collate_then_run_out(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_collate(*args, **kwargs)

    monkeypatch.setattr(train_module, "collate", collate_then_run_out)
    examples = [TrainExample("text", "Q?", f"Answer {i}.", None, i) for i in range(2)]
    with pytest.raises(TrainError) as caught:
        train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "run",
                   config=TrainConfig(max_steps=4, batch_size=1, save_every=1), device="cpu")
    message = str(caught.value)
    assert "out of GPU memory at step 3" in message and "gradient_checkpointing" in message
    assert "lower batch_size" in message and "step-000002" in message
    assert (tmp_path / "run" / "step-000002" / "trainer_state.pt").is_file()


def test_only_the_main_process_writes(engine_tiny_model, tmp_path):
    from engine.jobs.handlers import distributed_command

    recorder = Recorder()
    examples = [TrainExample("text", "Q?", f"Answer {i}.", None, i) for i in range(2)]
    result = train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "run",
                        config=TrainConfig(max_steps=2, batch_size=1, save_every=1),
                        callbacks=recorder, device="cpu", is_main=False)
    assert result.steps == 2 and not (tmp_path / "run").exists()
    assert recorder.total is None and recorder.logs == [] and recorder.checkpoints == []

    command = distributed_command(12, tmp_path / "ws", 4)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "4"
    assert command[command.index("--module") + 1:] == [
        "engine.jobs.train_worker", "--job", "12", "--workspace", str(tmp_path / "ws")]


def test_gradient_checkpointing_and_eager_attention_give_the_same_losses(
    engine_tiny_model, tmp_path
):
    examples = [TrainExample("text", "How long should I rest a steak?", RECIPE, None, i)
                for i in range(2)]
    curves = []
    for name, extra in (("plain", {}), ("eager", {"gradient_checkpointing": True,
                                                  "attention": "eager"})):
        recorder = Recorder()
        train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / name,
                   config=TrainConfig(max_steps=2, batch_size=2, lora_dropout=0.0,
                                      learning_rate=3e-3, **extra),
                   callbacks=recorder, device="cpu")
        curves.append([v["loss"] for _, v in recorder.logs])
    assert curves[1] == pytest.approx(curves[0], rel=1e-4)
    assert json.loads((tmp_path / "eager" / "final" / "train_config.json").read_text())[
        "attention"] == "eager"


# ---------------------------------------------------------------- streamed media


def test_the_stream_decodes_ahead_and_keeps_only_the_next_batches(engine_tiny_model,
                                                                  engine_media_dir):
    import torch

    from engine.model.loading import load_model
    from engine.train import MediaStream, decode_media, media_shapes

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    paths = [str(engine_media_dir / f"{c}{i}.mp4") for c in ("red", "green") for i in range(2)]
    examples = [TrainExample("video", "What is the recipe?", RECIPE, p) for p in paths]
    shapes = media_shapes(processor, examples, 8)
    # The stand-in has the decoded shape and tells encode_example the same placeholder count.
    real, frames = decode_media(processor, paths[0], "video", 8)
    assert shapes["video"]["pixel_values_videos"].shape == real["pixel_values_videos"].shape
    assert (encode_example(processor, examples[0], shapes["video"]).input_ids
            == encode_example(processor, examples[0], real).input_ids)
    # Micro-batches 0..3: red0; red1; red0 again; green0+green1.
    order = [[(paths[0], "video")], [(paths[1], "video")], [(paths[0], "video")],
             [(paths[2], "video"), (paths[3], "video")]]
    # No cache: only what the next micro-batch needs is held.
    stream = MediaStream(processor, order, 8, shapes, lookahead=1, workers=2, cache_bytes=0)
    decoded: list[str] = []
    decode = stream._decode
    stream._decode = lambda path, modality: decoded.append(path) or decode(path, modality)
    try:
        first = stream.get(0)
        assert torch.equal(first[paths[0]]["pixel_values_videos"], real["pixel_values_videos"])
        assert set(stream.pending) == {paths[1]}  # red0 is needed again at 2, not at 1
        stream.get(1)
        assert set(stream.pending) == {paths[0]}
        stream.get(2)
        last = stream.get(3)
        assert set(last) == {paths[2], paths[3]} and stream.pending == {}
        assert sorted(decoded) == sorted([paths[0], paths[1], paths[0], paths[2], paths[3]])
        # Each video's frames once, in the order first decoded.
        logged = stream.take_frames()
        assert [f["media_path"] for f in logged] == [paths[0], paths[1], paths[2], paths[3]]
        assert logged[0] == frames and stream.take_frames() == []
    finally:
        stream.close()
    # With room for them, files are decoded once and kept for their next use.
    one = real["pixel_values_videos"].numel() * real["pixel_values_videos"].element_size()
    stream = MediaStream(processor, order, 8, shapes, lookahead=1, workers=2,
                         cache_bytes=3 * one)
    decoded.clear()
    decode = stream._decode
    stream._decode = lambda path, modality: decoded.append(path) or decode(path, modality)
    try:
        for index in range(4):
            stream.get(index)
        assert sorted(decoded) == sorted(paths)  # red0 once, though used twice
        # Room for three: red1, used longest ago (red0 was used again at 2), is dropped.
        assert list(stream.cache) == [paths[0], paths[2], paths[3]]
        assert stream.cached_bytes == 3 * one
    finally:
        stream.close()


def test_a_file_decoded_to_another_shape_stops_the_run_naming_it(engine_tiny_model,
                                                                 engine_media_dir):
    import torch

    from engine.model.loading import load_model
    from engine.train import MediaStream

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    path = str(engine_media_dir / "red0.mp4")
    wrong = {"video": {"pixel_values_videos": torch.zeros(8, 3, 32, 32)}}
    stream = MediaStream(processor, [[(path, "video")]], 8, wrong, workers=1)
    try:
        with pytest.raises(TrainError, match="red0.mp4: its video came out of the processor as"):
            stream.get(0)
    finally:
        stream.close()


def test_checked_media_are_not_opened_again_before_the_run(engine_tiny_model, engine_media_dir):
    from engine.model.loading import load_model
    from engine.train import media_shapes

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    good = TrainExample("video", "What is the recipe?", RECIPE, str(engine_media_dir / "red0.mp4"))
    broken = str(engine_media_dir / "broken.mp4")
    unchecked = TrainExample("video", "What is the recipe?", RECIPE, broken)
    with pytest.raises(MediaError, match="broken.mp4: cannot read video"):
        media_shapes(processor, [good, unchecked], 8)
    # `ddft data check` passed it: only its existence is confirmed before the run.
    checked = TrainExample("video", "What is the recipe?", RECIPE, broken, checked=True)
    assert set(media_shapes(processor, [good, checked], 8)) == {"video"}
    missing = TrainExample("image", "What is the dish?", "Soup", str(engine_media_dir / "no.png"),
                           checked=True)
    with pytest.raises(MediaError, match="no.png: no such file"):
        media_shapes(processor, [good, missing], 8)


def test_a_file_dropped_from_a_full_cache_by_its_own_batch_is_decoded_again(monkeypatch):
    import torch

    import engine.train as train

    # Each file decodes to 1 KiB; the cache holds two.
    monkeypatch.setattr(train, "decode_media",
                        lambda processor, path, modality, n: ({"pixel_values": torch.zeros(256)},
                                                              None))
    shapes = {"image": {"pixel_values": torch.zeros(256)}}
    order = [[("A", "image")], [("B", "image")], [("C", "image"), ("A", "image")],
             [("A", "image"), ("B", "image"), ("C", "image")]]
    stream = train.MediaStream(None, order, 8, shapes, lookahead=0, workers=0,
                               cache_bytes=2 * 1024)
    for index, paths in enumerate(order):
        assert set(stream.get(index)) == {path for path, _ in paths}
    assert stream.cached_bytes <= 2 * 1024


def test_a_cublas_allocation_failure_is_out_of_memory_and_other_errors_pass_through(
    engine_tiny_model, tmp_path, monkeypatch
):
    import torch

    import engine.train as train_module
    from engine.train import is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling "
                                         "cublasCreate(handle)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))

    examples = [TrainExample("text", "Q?", "Answer.", None, 0)]
    config = TrainConfig(max_steps=2, batch_size=1)

    def step_raises(error):
        def collate_fails(*args, **kwargs):
            raise error

        monkeypatch.setattr(train_module, "collate", collate_fails)

    step_raises(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"))
    with pytest.raises(TrainError, match="out of GPU memory at step 1 with batch_size 1"):
        train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "cublas",
                   config=config, device="cpu")
    mismatch = RuntimeError("shape mismatch")
    step_raises(mismatch)
    with pytest.raises(RuntimeError) as caught:
        train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "shape",
                   config=config, device="cpu")
    assert caught.value is mismatch  # as raised, not dressed up as out of memory
