"""Attention capture for keyframe grounding: a stored generation run again teacher-forced with
hooks on the chosen decoder layers, reduced at once to each generated token's attention mass on
each sampled frame (see engine.evaluation.grounding for the method and the analysis)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.evaluation.grounding import FrameAttention, GroundingError

if TYPE_CHECKING:
    from engine.model.loading import LoadedModel


def frame_token_positions(input_ids: Sequence[int], video_token_id: int,
                          n_frames: int) -> np.ndarray:
    """(n_frames, tokens_per_frame) positions of each frame's visual tokens in the expanded
    input. Raises GroundingError when the video tokens do not split evenly into frames."""
    positions = np.flatnonzero(np.asarray(input_ids) == video_token_id)
    if n_frames < 1 or positions.size == 0 or positions.size % n_frames:
        raise GroundingError(f"expected the video tokens to split into {n_frames} frames, "
                             f"found {positions.size} video tokens")
    return positions.reshape(n_frames, positions.size // n_frames)



_ATTENTION_NAME = re.compile(r"(?:^|\.)language_model\.(?:model\.)?layers\.(\d+)\.self_attn$")


def decoder_attention_modules(model: Any) -> dict[int, Any]:
    """Decoder layer number → its attention module, for a Video-LLaVA model with or without
    a LoRA wrapper (the vision towers' attention is left out)."""
    found = {}
    for name, module in model.named_modules():
        match = _ATTENTION_NAME.search(name)
        if match:
            found[int(match[1])] = module
    return found


def language_config(model: Any) -> Any:
    """The language model's config (layer and head counts) of a model with or without LoRA."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config.text_config


def capture_frame_attention(loaded: LoadedModel, *, prompt: str, text: str, frames: np.ndarray,
                            layers: Sequence[int], heads: Sequence[int],
                            frame_times: Sequence[float] | None = None,
                            duration_s: float | None = None) -> FrameAttention:
    """Run `prompt` (formatted, with its `<video>` placeholder) and the generated `text`
    teacher-forced over `frames` and return each generated token's attention mass on each
    frame's visual tokens, for the chosen decoder layers and heads.

    The model is switched to eager attention, the only implementation that returns weights.
    A model with a frame-time encoder (`loaded.time.embedding`) is given `frame_times` and the
    video's `duration_s`, as when it generated (a prompt with the times in its text carries
    them already). Raises GroundingError when the tokenizer gives no character offsets, the
    prompt's tokens change when the text is appended, the model returns no attention weights,
    or the model needs frame times and none are given.
    """
    # torch is imported here so that `ddft ground --help` and job listing stay light.
    import torch

    from engine.model.timeaware import frame_times as given_times
    from engine.model.timeaware import time_features, times_tensor

    processor, model = loaded.processor, loaded.model
    tokenizer = processor.tokenizer
    times = None
    if getattr(loaded, "time", None) is not None and loaded.time.embedding:
        if not frame_times or len(frame_times) != len(frames):
            raise GroundingError(f"the model has a frame-time encoder: expected the times of "
                                 f"its {len(frames)} frames, found "
                                 f"{len(frame_times or [])}")
        times = times_tensor([time_features(frame_times, duration_s)]).to(loaded.device)
    if not getattr(tokenizer, "is_fast", False):
        raise GroundingError("grounding needs a fast tokenizer (character offsets); "
                             f"found {type(tokenizer).__name__}")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if base.config._attn_implementation != "eager":
        base.set_attn_implementation("eager")
    full = f"{prompt} {text}"
    plain = tokenizer(full, return_offsets_mapping=True)
    answer = [(i, s - len(prompt) - 1, e - len(prompt) - 1)
              for i, (s, e) in enumerate(plain["offset_mapping"]) if s >= len(prompt) and e > s]
    inputs = processor(text=[full], videos=[frames], return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    n_answer = len(answer)
    tail = [plain["input_ids"][i] for i, _, _ in answer]
    if n_answer == 0 or ids[-n_answer:] != tail:
        raise GroundingError("the generated text does not tokenize the same after the prompt; "
                             "cannot tell which tokens it produced")
    blocks = frame_token_positions(ids, base.config.video_token_id, len(frames))
    # A token was chosen from the position before it: that row is its attention while it
    # was being generated.
    answer_pos = torch.arange(len(ids) - n_answer - 1, len(ids) - 1)
    visual = torch.as_tensor(blocks.reshape(-1))
    head_index = torch.as_tensor(list(heads))
    modules = decoder_attention_modules(model)
    captured: dict[int, np.ndarray] = {}

    def hook_for(layer: int):
        def hook(_module, _args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise GroundingError(f"decoder layer {layer} returned no attention weights")
            picked = weights[0].index_select(0, head_index.to(weights.device))
            picked = picked.index_select(1, answer_pos.to(weights.device))
            picked = picked.index_select(2, visual.to(weights.device)).float()
            mass = picked.reshape(len(head_index), n_answer, *blocks.shape).sum(-1)
            captured[layer] = mass.cpu().numpy()
        return hook

    missing = [layer for layer in layers if layer not in modules]
    if missing:
        raise GroundingError(f"layers: the model has no decoder layer {missing[0]} (it has "
                             f"{len(modules)}: 0 to {len(modules) - 1})")
    handles = []
    try:
        for layer in layers:
            handles.append(modules[layer].register_forward_hook(hook_for(layer)))
        batch = {k: v.to(loaded.device, loaded.dtype) if v.is_floating_point()
                 else v.to(loaded.device) for k, v in inputs.items()}
        with torch.inference_mode(), given_times(model, times):
            model(**batch, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    masses = np.stack([captured[layer] for layer in layers]).astype(np.float32)
    return FrameAttention(masses=masses, token_spans=tuple((s, e) for _, s, e in answer),
                          tokens_per_frame=int(blocks.shape[1]))
