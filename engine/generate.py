"""Batched generation from Video-LLaVA for videos, images and text prompts, yielding each batch as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.media import DEFAULT_FRAMES
from engine.model.loading import MODALITIES, LoadedModel, format_prompt
from engine.model.timeaware import prompt_with_times, time_features


@dataclass(frozen=True)
class GenRequest:
    sample_id: int
    modality: str  # "video", "image" or "text"
    prompt: str  # the user's question, without the conversation format
    media_path: str | None


@dataclass(frozen=True)
class GenFailure:
    """A request whose video or image could not be used, and why, in one line."""

    sample_id: int
    reason: str


@dataclass(frozen=True)
class _Prepared:
    """A request with its media read: the frames (or image) and which frames they are."""

    request: GenRequest
    media: Any = None
    indices: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    duration_s: float | None = None


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


def _modality_groups(
    requests: Sequence[GenRequest], tokenizer: Any
) -> list[list[GenRequest]]:
    """The requests of each modality, sorted by prompt length (then sample id) so that a batch
    pads little. Raises ValueError for an unknown modality or a missing media path."""
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
    groups: list[list[GenRequest]] = []
    for modality in MODALITIES:
        group = [r for r in requests if r.modality == modality]
        lengths = {
            id(r): len(tokenizer(format_prompt(modality, r.prompt))["input_ids"])
            for r in group
        }
        group.sort(key=lambda r: (lengths[id(r)], r.sample_id))
        if group:
            groups.append(group)
    return groups


def plan_requests(
    requests: Sequence[GenRequest], tokenizer: Any, batch_size: int
) -> list[list[GenRequest]]:
    """Batches of one modality each, requests sorted by prompt length within a modality so that
    a batch pads little (as `generate` forms them when every file can be read). Raises
    ValueError for an unknown modality or a missing media path."""
    return [group[i : i + batch_size] for group in _modality_groups(requests, tokenizer)
            for i in range(0, len(group), batch_size)]


REASON_LIMIT = 200


def failure_reason(error: BaseException, media_path: str | None = None) -> str:
    """A MediaError (or another refusal of a sample's media) as the one line stored with the
    sample: its message without the file's path in front (the failure is stored with its
    sample, which names the file), e.g. "video too short: 8 frames needed, it has 3".
    engine.media words the decoder's refusals for people already."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    if media_path:
        for prefix in dict.fromkeys((str(media_path), str(Path(media_path)))):
            if text.startswith(prefix + ": "):
                text = text[len(prefix) + 2 :]
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


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
    on_failure: Callable[[GenFailure], None] | None = None,
) -> Iterator[GenOutput]:
    """Generate an answer for every request, yielding a batch's outputs as soon as it finishes.

    Requests are grouped by modality and sorted by prompt length, so outputs come in that order,
    not the order given; match them by `sample_id`. Decoding is greedy unless `do_sample`
    (temperature and top_p only apply when sampling). Prompts are padded on the left.

    A model trained with frame times (`loaded.time`, read from its adapter) gets them here as
    it got them in training: a video's prompt states its sampled frames' times, and/or the
    frame-time encoder is given them; `GenOutput.prompt` is the prompt as the model saw it.

    Each request's video or image is read before it joins a batch, so with `on_failure` a file
    that cannot be read (or frames the processor refuses) only removes its own request: it is
    handed to `on_failure` with a one-line reason (`failure_reason`), and its batch fills up
    with the next request. Without `on_failure`, raises MediaError naming the file (outputs of
    earlier batches have been yielded by then). Raises ValueError for a malformed request.
    """
    # torch is imported here: the CLI imports this module before it knows whether it will run.
    import torch

    from engine.media import MediaError, load_image, sample_frames
    from engine.model.timeaware import frame_times, times_tensor

    processor, model = loaded.processor, loaded.model
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if do_sample
        else {"do_sample": False}
    )

    def fail(request: GenRequest, error: BaseException) -> None:
        assert on_failure is not None
        on_failure(GenFailure(sample_id=request.sample_id,
                              reason=failure_reason(error, request.media_path)))

    def read(request: GenRequest) -> _Prepared | None:
        """The request with its media read, or None (reported) when it cannot be."""
        try:
            if request.modality == "video":
                sampled = sample_frames(request.media_path, n=num_frames)
                return _Prepared(request, sampled.frames, sampled.indices, sampled.times,
                                 sampled.duration_s)
            if request.modality == "image":
                return _Prepared(request, load_image(request.media_path))
            return _Prepared(request)
        except MediaError as exc:
            if on_failure is None:
                raise
            fail(request, exc)
            return None

    def user_prompt(prepared: _Prepared) -> str:
        # A model trained with its frames' times in the prompt is asked the same way.
        if loaded.time.in_text and prepared.request.modality == "video":
            return prompt_with_times(prepared.request.prompt, prepared.times,
                                     prepared.duration_s)
        return prepared.request.prompt

    def encode(batch: list[_Prepared]) -> dict[str, Any]:
        modality = batch[0].request.modality
        prompts = [format_prompt(modality, user_prompt(p)) for p in batch]
        kwargs: dict[str, Any] = {}
        if modality == "video":
            kwargs["videos"] = [p.media for p in batch]
        elif modality == "image":
            kwargs["images"] = [p.media for p in batch]
            kwargs["return_legacy_image_output"] = False
        return processor(text=prompts, padding=True, return_tensors="pt", **kwargs)

    def run(batch: list[_Prepared]) -> Iterator[GenOutput]:
        try:
            inputs = encode(batch)
        except Exception as exc:  # the processor's own errors: ValueError, TypeError, ...
            if on_failure is None:
                raise
            if len(batch) == 1:
                fail(batch[0].request,
                     MediaError(f"cannot prepare its frames for the model ({exc})"))
                return
            # One request the processor cannot take: alone, each of the others still runs
            # (greedy answers do not depend on the batch).
            for prepared in batch:
                yield from run([prepared])
            return
        modality = batch[0].request.modality
        prompts = [format_prompt(modality, user_prompt(p)) for p in batch]
        times = None
        if loaded.time.embedding and modality == "video":
            times = times_tensor([time_features(p.times, p.duration_s) for p in batch]).to(
                loaded.device)
        inputs = {
            k: v.to(loaded.device, loaded.dtype)
            if v.is_floating_point()
            else v.to(loaded.device)
            for k, v in inputs.items()
        }
        with torch.inference_mode(), frame_times(model, times):
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
        new = out[:, inputs["input_ids"].shape[1] :].cpu()
        for row, prepared in enumerate(batch):
            tokens = new[row].tolist()
            if tokenizer.eos_token_id in tokens:
                tokens = tokens[: tokens.index(tokenizer.eos_token_id) + 1]
            else:
                # Rows that finished early are padded after the batch's longest answer.
                while tokens and tokens[-1] == tokenizer.pad_token_id:
                    tokens.pop()
            yield GenOutput(
                sample_id=prepared.request.sample_id,
                prompt=prompts[row],
                text=tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                frame_indices=list(prepared.indices),
                frame_times=list(prepared.times),
                n_tokens=len(tokens),
            )

    for group in _modality_groups(requests, tokenizer):
        batch: list[_Prepared] = []
        for request in group:
            prepared = read(request)
            if prepared is not None:
                batch.append(prepared)
            if len(batch) == batch_size:
                yield from run(batch)
                batch = []
        if batch:
            yield from run(batch)
