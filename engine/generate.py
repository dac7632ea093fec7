"""Batched generation from Video-LLaVA for videos, images and text prompts, yielding each batch as it finishes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engine.media import DEFAULT_FRAMES
from engine.model.loading import MODALITIES, LoadedModel, format_prompt


@dataclass(frozen=True)
class GenRequest:
    sample_id: int
    modality: str  # "video", "image" or "text"
    prompt: str  # the user's question, without the conversation format
    media_path: str | None


@dataclass(frozen=True)
class GenOutput:
    sample_id: int
    prompt: (
        str  # the full formatted prompt the model saw (before placeholder expansion)
    )
    text: str  # the new tokens only, special tokens removed
    frame_indices: list[
        int
    ]  # video frames shown to the model; empty for images and text
    frame_times: list[float]  # their times in seconds
    n_tokens: int  # new tokens generated, the end-of-sequence token included


def decoding_params(
    *,
    max_new_tokens: int = 256,
    num_frames: int = DEFAULT_FRAMES,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> dict[str, Any]:
    """The decoding settings as a plain dict, stored with each generation and used as part of
    its key. Greedy settings leave out temperature and top_p, which greedy decoding ignores, so
    equal decodings give equal dicts."""
    params: dict[str, Any] = {
        "do_sample": do_sample,
        "max_new_tokens": max_new_tokens,
        "num_frames": num_frames,
    }
    if do_sample:
        params.update(temperature=temperature, top_p=top_p)
    return params


def plan_requests(
    requests: Sequence[GenRequest], tokenizer: Any, batch_size: int
) -> list[list[GenRequest]]:
    """Batches of one modality each, requests sorted by prompt length within a modality so that
    a batch pads little. Raises ValueError for an unknown modality or a missing media path."""
    for request in requests:
        if request.modality not in MODALITIES:
            raise ValueError(
                f"sample {request.sample_id}: modality must be one of {', '.join(MODALITIES)}, "
                f"got {request.modality!r}"
            )
        if request.modality != "text" and not request.media_path:
            raise ValueError(
                f"sample {request.sample_id}: {request.modality} request without media_path"
            )
    batches: list[list[GenRequest]] = []
    for modality in MODALITIES:
        group = [r for r in requests if r.modality == modality]
        lengths = {
            id(r): len(tokenizer(format_prompt(modality, r.prompt))["input_ids"])
            for r in group
        }
        group.sort(key=lambda r: (lengths[id(r)], r.sample_id))
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def generate(
    loaded: LoadedModel,
    requests: Sequence[GenRequest],
    *,
    batch_size: int = 4,
    max_new_tokens: int = 256,
    num_frames: int = DEFAULT_FRAMES,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Iterator[GenOutput]:
    """Generate an answer for every request, yielding a batch's outputs as soon as it finishes.

    Requests are grouped by modality and sorted by prompt length, so outputs come in that order,
    not the order given; match them by `sample_id`. Decoding is greedy unless `do_sample`
    (temperature and top_p only apply when sampling). Prompts are padded on the left.

    Raises MediaError naming a video or image that cannot be read (outputs of earlier batches
    have been yielded by then), ValueError for a malformed request.
    """
    # torch is imported here: the CLI imports this module before it knows whether it will run.
    import torch

    from engine.media import load_image, sample_frames

    processor, model = loaded.processor, loaded.model
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if do_sample
        else {"do_sample": False}
    )
    for batch in plan_requests(requests, tokenizer, batch_size):
        modality = batch[0].modality
        prompts = [format_prompt(modality, r.prompt) for r in batch]
        frame_info: list[tuple[list[int], list[float]]] = [([], [])] * len(batch)
        kwargs: dict[str, Any] = {}
        if modality == "video":
            sampled = [sample_frames(r.media_path, n=num_frames) for r in batch]
            frame_info = [(s.indices, s.times) for s in sampled]
            kwargs["videos"] = [s.frames for s in sampled]
        elif modality == "image":
            kwargs["images"] = [load_image(r.media_path) for r in batch]
            kwargs["return_legacy_image_output"] = False
        inputs = processor(text=prompts, padding=True, return_tensors="pt", **kwargs)
        inputs = {
            k: v.to(loaded.device, loaded.dtype)
            if v.is_floating_point()
            else v.to(loaded.device)
            for k, v in inputs.items()
        }
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
        new = out[:, inputs["input_ids"].shape[1] :].cpu()
        for row, request in enumerate(batch):
            tokens = new[row].tolist()
            if tokenizer.eos_token_id in tokens:
                tokens = tokens[: tokens.index(tokenizer.eos_token_id) + 1]
            else:
                # Rows that finished early are padded after the batch's longest answer.
                while tokens and tokens[-1] == tokenizer.pad_token_id:
                    tokens.pop()
            yield GenOutput(
                sample_id=request.sample_id,
                prompt=prompts[row],
                text=tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                frame_indices=list(frame_info[row][0]),
                frame_times=list(frame_info[row][1]),
                n_tokens=len(tokens),
            )
