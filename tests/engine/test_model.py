"""The tiny model build, loading through load_model, the processor's token counts, LoRA placement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.model.loading import ModelLoadError, attach_lora, format_prompt, load_model
from engine.model.tiny import MARKER, build_tiny_model

from .conftest import MODEL_CORPUS


def test_format_prompt_matches_video_llava_documentation():
    assert (
        format_prompt("video", "Why is this funny?")
        == "USER: <video>\nWhy is this funny? ASSISTANT:"
    )
    assert (
        format_prompt("image", "What is it?") == "USER: <image>\nWhat is it? ASSISTANT:"
    )
    assert format_prompt("text", "How long?") == "USER: How long? ASSISTANT:"
    with pytest.raises(ValueError, match="audio"):
        format_prompt("audio", "x")


def test_loading_module_does_not_import_torch():
    code = "import sys, engine.model.loading, engine.train, engine.generate; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_tiny_model_round_trips_through_load_model(engine_tiny_model: Path):
    loaded = load_model(str(engine_tiny_model), device="cpu")
    config = loaded.model.config
    tokenizer = loaded.processor.tokenizer
    assert type(loaded.model).__name__ == "VideoLlavaForConditionalGeneration"
    assert loaded.device == "cpu" and str(loaded.dtype) == "torch.float32"
    assert tokenizer.padding_side == "left"
    assert config.image_token_index == tokenizer.convert_tokens_to_ids("<image>")
    assert config.video_token_index == tokenizer.convert_tokens_to_ids("<video>")
    assert (
        config.pad_token_id
        == tokenizer.pad_token_id
        == tokenizer.convert_tokens_to_ids("<pad>")
    )
    assert (
        config.vision_feature_select_strategy == "default"
        and config.vision_feature_layer == -2
    )
    assert (
        config.vision_config.image_size == 56 and config.vision_config.patch_size == 14
    )
    # The tokenizer round-trips text exactly, newlines and runs of spaces included.
    text = "Dish: Tomato Soup\n  - 1/2 tsp salt\n\n1. Simmer  gently.\tDone é"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tiny_build_is_reused_for_the_same_inputs_and_rebuilt_for_others(
    tmp_path: Path,
):
    target = tmp_path / "tiny"
    build_tiny_model(target, MODEL_CORPUS, seed=3)
    weights = target / "model.safetensors"
    first = weights.stat().st_mtime_ns
    assert build_tiny_model(target, MODEL_CORPUS, seed=3) == target
    assert weights.stat().st_mtime_ns == first
    marker = json.loads((target / MARKER).read_text())
    assert marker["seed"] == 3
    build_tiny_model(target, MODEL_CORPUS, seed=4)
    assert json.loads((target / MARKER).read_text())["seed"] == 4
    # No temporary build folders are left beside the model.
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]


def test_load_model_names_the_missing_or_wrong_directory(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="nowhere"):
        load_model(str(tmp_path / "nowhere"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ModelLoadError, match=r"empty: not a Video-LLaVA model directory"
    ):
        load_model(str(tmp_path / "empty"), device="cpu")


def test_processor_expands_eight_frames_to_136_video_tokens(engine_tiny_model: Path):
    loaded = load_model(str(engine_tiny_model), device="cpu")
    processor = loaded.processor
    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 80, 3), dtype=np.uint8)
    out = processor(
        text=[format_prompt("video", "What is cooking?")],
        videos=[frames],
        return_tensors="pt",
    )
    assert int((out["input_ids"] == processor.video_token_id).sum()) == 136
    assert tuple(out["pixel_values_videos"].shape) == (1, 8, 3, 56, 56)
    image = processor(
        text=[format_prompt("image", "What is it?")],
        images=[frames[0]],
        return_tensors="pt",
        return_legacy_image_output=False,
    )
    # "default" drops the CLS token of an image: (56 / 14)^2 = 16 tokens.
    assert int((image["input_ids"] == processor.image_token_id).sum()) == 16


def test_forward_and_backward_on_a_video(engine_tiny_model: Path):
    import torch

    loaded = load_model(str(engine_tiny_model), device="cpu")
    processor, model = loaded.processor, loaded.model
    frames = np.random.default_rng(1).integers(0, 255, (8, 56, 56, 3), dtype=np.uint8)
    inputs = processor(
        text=[format_prompt("video", "Recipe?")], videos=[frames], return_tensors="pt"
    )
    model.train()
    out = model(**inputs, labels=inputs["input_ids"])
    assert torch.isfinite(out.loss) and out.loss.item() > 1.0
    out.loss.backward()
    projector_grad = model.model.multi_modal_projector.linear_1.weight.grad
    assert projector_grad is not None and projector_grad.abs().sum() > 0


def test_lora_trains_only_the_language_model_adapters_and_the_projector(
    engine_tiny_model: Path,
):
    loaded = load_model(str(engine_tiny_model), device="cpu")
    model = attach_lora(loaded.model, r=4, alpha=8, dropout=0.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for name in trainable:
        assert (
            "lora_" in name and ".language_model." in name
        ) or "multi_modal_projector" in name, name
    assert not [
        n
        for n in trainable
        if "vision_tower" in n or "embed_tokens" in n or "lm_head" in n
    ]
    lora_layers = {n.split(".lora_")[0] for n in trainable if "lora_A" in n}
    n_layers = loaded.model.config.text_config.num_hidden_layers
    assert len(lora_layers) == 7 * n_layers  # q, k, v, o, gate, up, down in every layer
    assert any("multi_modal_projector" in n for n in trainable)
