"""LoRA fine-tuning of Video-LLaVA on per-modality examples: a resumable loop on accelerate.

Why a plain loop and not transformers' `Trainer`: two requirements of ddft that Trainer blocks
without overriding its private methods.

1. A crash must never leave a checkpoint that looks complete. `Trainer._save_checkpoint` writes
   `checkpoint-N/` in place, file by file (adapter, then optimizer, then RNG, then
   trainer_state.json), and `get_last_checkpoint` picks the highest `checkpoint-N` by name, so a
   kill between the adapter and the optimizer state resumes from half a checkpoint. Here a
   checkpoint is written to a hidden temporary folder and renamed into place in one step.
2. Resume must replay exactly the batch plan an uninterrupted run would have used: batches of
   one modality, length-bucketed, drawn from datasets by mixture weights, with the same loss
   curve to the last bit on the tiny model. Trainer rebuilds its sampler on resume and fast
   forwards the dataloader by re-collating every skipped batch; here the plan for the whole run
   is computed once from the seed and a checkpoint stores an index into it (and a digest of it,
   so a resume on changed data fails loudly instead of drifting).

The loop still uses the ecosystem for the parts that are not ddft-specific: accelerate for the
process group, device placement, DistributedDataParallel and `no_sync` during accumulation;
peft for LoRA; torch's fused AdamW on CUDA; SDPA attention; gradient checkpointing from
transformers.

Supports: video, image and text examples in one run (one modality per batch, batches grouped by
length to keep padding small), mixture weights per dataset, gradient accumulation, linear
warm-up then cosine with separate learning rates for LoRA and the projector, `step-NNNNNN/`
checkpoints every `save_every` steps (adapter, projector, optimizer and scheduler state, RNG
states, data position) and `final/` at the end, resume from the last complete checkpoint,
cancellation through `callbacks.should_stop()` (a checkpoint, then return), data-parallel runs
under `accelerate launch` with only the main process writing anything; every assistant turn of a
multi-turn conversation learned (`TrainExample.turns`); a validation loss on a held-out fraction
of each dataset, every `eval_every` steps and at each checkpoint (recorded there, so that
`best_checkpoint` can pick one); the step's loss weighed per micro-batch (Video-LLaVA's trainer)
or per answer token (transformers' Trainer since 4.46); experiment trackers through accelerate.

Raises: TrainError for bad settings or examples (every problem in one message), for a prompt
that does not fit `max_length`, for a checkpoint that does not match the run, and for running
out of GPU memory; MediaError naming an unreadable media file; ModelLoadError when the base
cannot be opened.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from engine.jobs.train_settings import (  # noqa: F401  (best_checkpoint: engine.train's too)
    BestCheckpoint,
    TrainConfig,
    TrainError,
    best_checkpoint,
)
from engine.media import DEFAULT_FRAMES
from engine.model.loading import MODALITIES, format_prompt
from engine.model.timeaware import TimeSettings, prompt_with_times
from engine.model.timeaware import time_features as time_features_of

if TYPE_CHECKING:  # annotations only: torch is imported inside the functions that run
    import torch

IGNORE_INDEX = -100
FRAME_TIMES = "frame_times"  # collate's key for the time features (not a model input)
CONFIG_FILE = "train_config.json"
STATE_FILE = "trainer_state.pt"
FRAMES_FILE = "frames.jsonl"
STATE_FORMAT = 1
# Length grouping sorts this many batches' worth of examples at a time (as transformers'
# LengthGroupedSampler does with its mega-batches): enough to pair similar lengths, small enough
# that the order still changes from epoch to epoch.
GROUP_BATCHES = 32

Modality = Literal["image", "video", "text"]


@dataclass
class TrainExample:
    """One instruction example: a prompt about an image, a video or nothing, and the answer,
    then any further exchanges of the same conversation (`turns`), each trained as well."""

    modality: Modality
    prompt: str
    answer: str
    media_path: str | None
    sample_id: int | None = None
    dataset: str | None = None  # the dataset it came from; mixture weights are keyed by it
    # `ddft data check` opened its media already: training does not check it again.
    checked: bool = False
    # The exchanges after the first, as (human turn, assistant turn): a LLaVA conversation of
    # six turns is a prompt and answer plus two more pairs.
    turns: tuple[tuple[str, str], ...] = ()
    # A video's sampled frame times and its duration, for a run that gives the model time
    # (TrainConfig.time_in_text, time_embedding); the run finds them when they are None.
    frame_times: tuple[float, ...] | None = None
    duration_s: float | None = None

    @classmethod
    def from_sample(cls, sample: Any, *, dataset: str | None = None) -> TrainExample:
        """The example of a stored Sample: its prompt and answer, and the later exchanges of
        the conversation its meta keeps (`meta["conversations"]`, as the LLaVA importer stores
        it), so that every assistant turn is trained, as Video-LLaVA's own preprocessing does."""
        return cls(modality=sample.modality, prompt=sample.prompt, answer=sample.answer,
                   media_path=sample.media_path, sample_id=sample.id, dataset=dataset,
                   checked=getattr(sample, "check_status", None) in ("ok", "warn"),
                   turns=later_turns(getattr(sample, "meta", None)))


def later_turns(meta: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The (human, gpt) exchanges after the first of a conversation stored in a sample's meta
    (`{"conversations": [{"from", "value"}, ...]}`), placeholders stripped from the human
    turns; () when there are none or the conversation is not in that shape."""
    turns = (meta or {}).get("conversations")
    if not isinstance(turns, list) or len(turns) < 4:
        return ()
    from engine.importers.llava import strip_placeholders

    pairs = []
    for human, gpt in zip(turns[2::2], turns[3::2]):
        if not (isinstance(human, dict) and isinstance(gpt, dict)
                and isinstance(human.get("value"), str) and isinstance(gpt.get("value"), str)):
            return ()
        pairs.append((strip_placeholders(human["value"]), gpt["value"]))
    return tuple(pairs)


class TrainCallbacks(Protocol):
    """What a training run reports to (a console progress bar, the job table). Only the main
    process of a data-parallel run calls them."""

    def on_start(self, total_steps: int, start_step: int = 0) -> None:
        """Called once before the first step; `start_step` > 0 when resuming."""

    def log(self, step: int, values: dict[str, float]) -> None:
        """`values` holds loss, lr, projector_lr, grad_norm, samples_per_s, tokens_per_s,
        padding_fraction, and gpu_memory_gb on CUDA."""

    def should_stop(self) -> bool:
        """True to cancel: the run saves a checkpoint of where it is and returns."""

    def on_checkpoint(self, step: int, path: Path, final: bool) -> None: ...

    # Optional: `note(message)` receives one-line reports for the log (answers cut, resume).


@dataclass
class TrainResult:
    adapter_dir: Path  # the last checkpoint written: final/, or step-NNNNNN/ when stopped
    steps: int
    final_loss: float  # mean loss over the last logging window
    stopped: bool  # True when should_stop() ended the run early
    truncated: int = 0  # examples whose answer was cut to fit max_length
    padding_fraction: float = 0.0  # pad tokens / all token slots, over the steps this run made
    resumed_from: int = 0  # the step the run continued from (0: a fresh start)
    total_steps: int = 0


@dataclass
class EncodedExample:
    """An example as token ids, with labels that keep only the answers."""

    modality: str
    input_ids: list[int]
    labels: list[int]
    media_path: str | None
    truncated: bool = False
    dataset: str | None = None
    # Per frame [seconds, fraction of the duration], for the time embedding; None without it.
    time_features: list[list[float]] | None = None

    @property
    def answer_tokens(self) -> int:
        """The tokens the loss is taken over: labelled positions after the first (a causal LM
        predicts token t from the tokens before it, so the first label is never a target)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


def lr_at(step: int, *, peak: float, total: int, warmup: int, min_ratio: float) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine to
    `min_ratio * peak` at the last step."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


# ---------------------------------------------------------------- data


def decode_media(
    processor: Any, path: str, modality: str, num_frames: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Pixel inputs of one image or video as the processor makes them (`pixel_values_videos` or
    `pixel_values`, without the batch dimension), and for a video the record of the frames
    used (path, frame indices, frame times). Raises MediaError naming an unreadable file."""
    from engine.media import load_image, sample_frames

    if modality == "video":
        sampled = sample_frames(path, n=num_frames)
        out = processor.video_processor(videos=[sampled.frames], return_tensors="pt")
        frames = {"media_path": path, "frame_indices": list(sampled.indices),
                  "frame_times": [round(t, 4) for t in sampled.times]}
        return {"pixel_values_videos": out["pixel_values_videos"][0]}, frames
    out = processor.image_processor(images=[load_image(path)], return_tensors="pt",
                                    return_legacy_image_output=False)
    # transformers before 5.23 names an image's pixels `pixel_values_images` (and its model
    # takes them under that name); later releases `pixel_values`. Keep the processor's name.
    key = "pixel_values" if "pixel_values" in out else "pixel_values_images"
    return {key: out[key][0]}, None


def _media_of(examples: list[TrainExample]) -> dict[str, str]:
    """Media path -> modality, in first-use order. Raises TrainError for a video or image
    example without a media path."""
    paths: dict[str, str] = {}
    for index, example in enumerate(examples):
        if example.modality == "text":
            continue
        if not example.media_path:
            raise TrainError(f"example {index} ({example.modality}): media_path is empty")
        paths.setdefault(example.media_path, example.modality)
    return paths


def load_media(
    processor: Any,
    examples: list[TrainExample],
    num_frames: int,
    frame_log: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Pixel inputs for every distinct media file, each decoded once: path -> processor output
    without text (`pixel_values_videos` or `pixel_values`). When `frame_log` is given, one
    record per video (path, frame indices, frame times) is appended to it. For a handful of
    files (tests, benchmarks); a run streams its media (`MediaStream`).

    Raises MediaError naming the first file that is missing or unreadable, or TrainError when a
    video or image example has no media path.
    """
    media: dict[str, dict[str, Any]] = {}
    for path, modality in _media_of(examples).items():
        media[path], frames = decode_media(processor, path, modality, num_frames)
        if frames is not None and frame_log is not None:
            frame_log.append(frames)
    return media


def media_shapes(
    processor: Any, examples: list[TrainExample], num_frames: int
) -> dict[str, dict[str, Any]]:
    """For each media modality in `examples`, an all-zero stand-in of the processor's output,
    made by decoding that modality's first file: the processor resizes and crops every image
    and video to one size, so the stand-in tells `encode_example` how many placeholder tokens
    each one becomes without decoding them all. Also checks that every media file exists and
    that those not `checked` open.

    Raises MediaError naming the first missing or unreadable file, TrainError for an image or
    video example without a media path.
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from engine.media import MediaError, check_media

    paths = _media_of(examples)
    checked = {e.media_path for e in examples if e.checked and e.media_path}
    for path in paths:
        if not os.path.isfile(path):
            raise MediaError(f"{path}: no such file")
    # Files `ddft data check` has not opened are opened now (headers and frame counts only),
    # so a broken one stops the run before its first step rather than hours into it.
    unchecked = [(path, modality) for path, modality in paths.items() if path not in checked]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for _ in pool.map(lambda item: check_media(item[0], item[1], num_frames), unchecked):
            pass
    shapes: dict[str, dict[str, Any]] = {}
    for path, modality in paths.items():
        if modality not in shapes:
            decoded, _ = decode_media(processor, path, modality, num_frames)
            shapes[modality] = {key: torch.zeros_like(value) for key, value in decoded.items()}
    return shapes


def with_frame_times(examples: list[TrainExample], num_frames: int) -> list[TrainExample]:
    """`examples` with every video's sampled frame times and duration filled in, as
    engine.media.sample_frames will take them (the uniform rule over the frame count and rate
    read from the file's header, nothing decoded); an example that has `num_frames` times
    already keeps them. Raises MediaError naming a video that cannot be opened."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from engine.media import MediaError, probe_video
    from engine.model.timeaware import uniform_frame_times

    wanted = sorted({e.media_path for e in examples if e.modality == "video" and e.media_path
                     and (not e.frame_times or len(e.frame_times) != num_frames)})

    def timing(path: str) -> tuple[list[float], float]:
        info = probe_video(path)
        if info.n_frames < num_frames:
            raise MediaError(f"{path}: video too short: {num_frames} frames needed, it has "
                             f"{info.n_frames}")
        return uniform_frame_times(info.n_frames, info.fps, num_frames)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(wanted, pool.map(timing, wanted)))
    out = []
    for e in examples:
        if e.media_path in found:
            times, duration = found[e.media_path]
            e = dataclasses.replace(e, frame_times=tuple(times), duration_s=duration)
        out.append(e)
    return out


class _Inline:
    """An executor that runs each task at once in the calling thread."""

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever asks for the result, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, **_: Any) -> None:
        pass


# Decoded media kept for reuse by later epochs: the synthetic kitchen's 48 videos and 12 images
# take 20 MB at the tiny model's size, FoodX-251's 130,000 images 80 GB at the real one.
MEDIA_CACHE_BYTES = 2 * 2**30


class MediaStream:
    """The media of a run's micro-batches, decoded in background threads just before they are
    needed. What the next `lookahead` micro-batches need is held, and besides it the most
    recently used files up to `cache_bytes`, so a small dataset is decoded once for all its
    epochs while a run over 100,000 images needs no more memory than the cache.

    `workers` 0 decodes in the calling thread, when it is asked for (what a CPU run wants: its
    math already uses every core, and decoding threads beside it made 150 tiny-model steps take
    33–37 s instead of 22 s); None picks up to four threads.

    `order` is the sequence of micro-batches this process trains on, each as the media paths
    (and modalities) of its examples. `get(i)` returns path -> pixel inputs for micro-batch i of
    `order`, waiting for it if need be, and starts decoding the ones after it. Frames used by
    videos are collected for frames.jsonl (`take_frames`). A file that cannot be read raises
    MediaError from `get`; a file whose pixels come out in another shape than `shapes` says
    raises TrainError.
    """

    def __init__(self, processor: Any, order: list[list[tuple[str, str]]], num_frames: int,
                 shapes: dict[str, dict[str, Any]], *, lookahead: int = 8,
                 workers: int | None = None, cache_bytes: int = MEDIA_CACHE_BYTES) -> None:
        from collections import OrderedDict
        from concurrent.futures import ThreadPoolExecutor

        self.processor, self.order, self.num_frames = processor, order, num_frames
        self.shapes = shapes
        self.lookahead = max(1, lookahead)
        self.cache_bytes = cache_bytes
        self.pool: Any = (_Inline() if workers == 0 else
                          ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1),
                                             thread_name_prefix="ddft-media"))
        self.pending: dict[str, Any] = {}  # path -> Future of (pixels, frames), in flight or held
        self.cache: OrderedDict[str, dict[str, Any]] = OrderedDict()  # least recent first
        self.cached_bytes = 0
        self.frames: list[dict[str, Any]] = []
        self.seen_videos: set[str] = set()

    def _decode(self, path: str, modality: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        pixels, frames = decode_media(self.processor, path, modality, self.num_frames)
        for key, value in pixels.items():
            expected = self.shapes[modality][key].shape
            if value.shape != expected:
                raise TrainError(f"{path}: its {modality} came out of the processor as "
                                 f"{tuple(value.shape)}, the run's others as {tuple(expected)}")
        return pixels, frames

    def _want(self, index: int) -> None:
        if index >= len(self.order):
            return
        for path, modality in self.order[index]:
            if path not in self.pending and path not in self.cache:
                self.pending[path] = self.pool.submit(self._decode, path, modality)

    @staticmethod
    def _size(pixels: dict[str, Any]) -> int:
        return sum(v.numel() * v.element_size() for v in pixels.values())

    def _keep(self, path: str, pixels: dict[str, Any]) -> None:
        size = self._size(pixels)
        if size > self.cache_bytes:
            return
        self.cache[path] = pixels
        self.cached_bytes += size
        while self.cached_bytes > self.cache_bytes:
            _, dropped = self.cache.popitem(last=False)
            self.cached_bytes -= self._size(dropped)

    def get(self, index: int) -> dict[str, dict[str, Any]]:
        for ahead in range(index, index + self.lookahead + 1):
            self._want(ahead)
        batch = self.order[index]
        for path, _ in batch:  # this batch's cached files are the last to be dropped
            if path in self.cache:
                self.cache.move_to_end(path)
        out: dict[str, dict[str, Any]] = {}
        for path, modality in batch:
            if path in out:
                continue
            if path in self.cache:
                self.cache.move_to_end(path)
                out[path] = self.cache[path]
                continue
            future = self.pending.pop(path, None)
            if future is None:  # dropped from a full cache by this batch's own new files
                future = self.pool.submit(self._decode, path, modality)
            pixels, frames = future.result()
            out[path] = pixels
            self._keep(path, pixels)
            if frames is not None and path not in self.seen_videos:
                self.seen_videos.add(path)
                self.frames.append(frames)
        return out

    def take_frames(self) -> list[dict[str, Any]]:
        """Frame records of videos decoded for the first time since the last call."""
        frames, self.frames = self.frames, []
        return frames

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def encode_example(
    processor: Any,
    example: TrainExample,
    media: dict[str, Any] | None,
    max_length: int | None = None,
    *,
    time: TimeSettings | None = None,
) -> EncodedExample:
    """Token ids of `format_prompt(...) + " " + answer + eos`, then for each later exchange
    `USER: {prompt} ASSISTANT: {answer}` + eos (Video-LLaVA's conversation template, whose
    turns are separated by `</s>`), with every prompt token (media placeholders included)
    labelled -100 so that only the answers and their eos are learned: every assistant turn, as
    Video-LLaVA's preprocessing trains them.

    A sequence longer than `max_length` (counting an image or a video as one token, as
    Video-LLaVA's own training does) loses its end (later exchanges, then the end of the first
    answer and its eos), never the first prompt or a visual token; the result says
    `truncated=True`. `media` is the example's entry from `load_media` (None for text).

    With `time` (a run's TimeSettings), a video example's `frame_times` and `duration_s` are
    used: stated at the start of its prompt (`in_text`, engine.model.timeaware's format) and
    kept as time features for the frame-time encoder (`embedding`). Raises TrainError when the
    prompt alone leaves no room for a single answer token, or when time is asked for and a
    video example has no frame times.
    """
    tokenizer = processor.tokenizer
    prompt = example.prompt
    time_features = None
    if time is not None and time.any and example.modality == "video":
        if not example.frame_times:
            raise TrainError(f"sample {example.sample_id}: the run gives the model frame times, "
                             "and this video has none")
        if time.in_text:
            prompt = prompt_with_times(example.prompt, example.frame_times, example.duration_s)
        if time.embedding:
            time_features = time_features_of(example.frame_times, example.duration_s)
    prompt_text = format_prompt(example.modality, prompt)
    token = {"video": processor.video_token, "image": processor.image_token}.get(example.modality)
    if token is not None:
        # The processor's own rule for how many placeholders one image/video becomes.
        inputs = {kind: pixels[None] for kind, pixels in media.items()}
        if example.modality == "video":
            expanded = processor.replace_video_token(inputs, 0)
        else:
            expanded = processor.replace_image_token(inputs, 0)
        prompt_text = prompt_text.replace(token, expanded, 1)
    prompt_ids = tokenizer(prompt_text)["input_ids"]
    full_ids = tokenizer(prompt_text + " " + example.answer)["input_ids"]
    # Sub-word merges across the prompt/answer boundary could make the prompt ids differ from
    # the start of the full ids; mask the common prefix only, so no answer token is hidden.
    n_prompt = 0
    for a, b in zip(prompt_ids, full_ids):
        if a != b:
            break
        n_prompt += 1
    input_ids = list(full_ids) + [tokenizer.eos_token_id]
    labels = [IGNORE_INDEX] * n_prompt + input_ids[n_prompt:]
    for human, gpt in example.turns:
        # After `</s>` the tokenizer starts afresh, so each exchange is tokenized on its own.
        turn_text = format_prompt("text", human)
        turn_prompt = tokenizer(turn_text, add_special_tokens=False)["input_ids"]
        turn_full = tokenizer(turn_text + " " + gpt, add_special_tokens=False)["input_ids"]
        shared = 0
        for a, b in zip(turn_prompt, turn_full):
            if a != b:
                break
            shared += 1
        turn_ids = list(turn_full) + [tokenizer.eos_token_id]
        input_ids += turn_ids
        labels += [IGNORE_INDEX] * shared + turn_ids[shared:]
    truncated = False
    if max_length is not None:
        # The expanded placeholders beyond the first come on top of max_length.
        media_id = tokenizer.convert_tokens_to_ids(token) if token is not None else None
        visual_extra = max(0, prompt_ids.count(media_id) - 1) if media_id is not None else 0
        limit = max_length + visual_extra
        if len(input_ids) > limit:
            if n_prompt >= limit:
                raise TrainError(f"sample {example.sample_id}: the prompt is "
                                 f"{n_prompt - visual_extra} tokens with its media counted as "
                                 f"one, max_length is {max_length}")
            input_ids, labels, truncated = input_ids[:limit], labels[:limit], True
            # A later exchange cut inside its prompt would end on tokens nothing learns from.
            while len(labels) > n_prompt + 1 and labels[-1] == IGNORE_INDEX:
                input_ids, labels = input_ids[:-1], labels[:-1]
    return EncodedExample(example.modality, input_ids, labels, example.media_path, truncated,
                          example.dataset, time_features)


def mixture_epoch(
    encoded: list[EncodedExample], weights: dict[str, float] | None, rng: random.Random
) -> list[int]:
    """The example indices of one epoch under mixture weights: a dataset of weight w gives
    floor(w) copies of every example plus a random round(frac(w) x n) of them (drawn with
    `rng`). Examples of datasets without a weight count once."""
    if not weights:
        return list(range(len(encoded)))
    by_dataset: dict[str | None, list[int]] = {}
    for i, e in enumerate(encoded):
        by_dataset.setdefault(e.dataset, []).append(i)
    out: list[int] = []
    for name, indices in by_dataset.items():
        weight = weights.get(name, 1.0) if name is not None else 1.0
        whole, frac = int(weight), weight - int(weight)
        out += indices * whole
        out += sorted(rng.sample(indices, round(frac * len(indices))))
    return out


def plan_batches(
    encoded: list[EncodedExample],
    batch_size: int,
    rng: random.Random,
    *,
    group_by_length: bool = True,
    indices: list[int] | None = None,
) -> list[list[int]]:
    """One epoch of batches as example indices: shuffled within each modality, cut into batches
    that never mix modalities, and the batches shuffled together.

    With `group_by_length`, each modality's shuffled examples are sorted by length in chunks of
    GROUP_BATCHES batches before cutting, so a batch holds examples of similar length.
    `indices` (default: every example once) is the epoch's multiset, e.g. from `mixture_epoch`.
    """
    pool = list(range(len(encoded))) if indices is None else indices
    batches: list[list[int]] = []
    for modality in MODALITIES:
        chosen = [i for i in pool if encoded[i].modality == modality]
        rng.shuffle(chosen)
        if group_by_length:
            chunk = batch_size * GROUP_BATCHES
            chosen = [i for start in range(0, len(chosen), chunk)
                      for i in sorted(chosen[start:start + chunk],
                                      key=lambda i: -len(encoded[i].input_ids))]
        batches += [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]
    rng.shuffle(batches)
    return batches


def plan_run(
    encoded: list[EncodedExample],
    config: TrainConfig,
    *,
    weights: dict[str, float] | None = None,
    world_size: int = 1,
) -> tuple[list[list[int]], int]:
    """Every micro-batch of the run in order, and the number of optimizer steps.

    Computed once from the seed, so a resumed run replays exactly the same batches: a checkpoint
    only stores how many it has consumed. Each step takes `accumulation x world_size`
    consecutive micro-batches (device r takes every world_size-th, from offset r).
    """
    rng = random.Random(config.seed)
    per_step = config.accumulation(world_size) * world_size

    def epoch() -> list[list[int]]:
        indices = mixture_epoch(encoded, weights, rng)
        return plan_batches(encoded, config.batch_size, rng,
                            group_by_length=config.group_by_length, indices=indices)

    plan: list[list[int]] = []
    if config.max_steps is None:
        for _ in range(config.epochs):
            plan += epoch()
        total = max(1, len(plan) // per_step)
        while len(plan) < total * per_step:  # fewer batches than one step: wrap around
            plan += epoch()
    else:
        total = config.max_steps
        while len(plan) < total * per_step:
            before = len(plan)
            plan += epoch()
            if len(plan) == before:
                raise TrainError("the mixture weights leave no examples in an epoch")
    return plan[: total * per_step], total


def plan_digest(plan: list[list[int]], encoded: list[EncodedExample]) -> str:
    """What a checkpoint must match to resume: the batch plan and every example's tokens."""
    digest = hashlib.sha256(json.dumps(plan).encode())
    for e in encoded:
        digest.update(json.dumps([e.modality, e.media_path, e.input_ids]).encode())
    return digest.hexdigest()


def split_validation(examples: list[TrainExample], fraction: float,
                     seed: int) -> tuple[list[int], list[int]]:
    """The indices of the examples a run trains on and of those it holds out to measure a
    validation loss: `fraction` of each dataset (TrainExample.dataset), rounded, at least one
    of a dataset of two or more and never all of it, chosen with `seed` (a random stream of its
    own, so the batch plan's draws are untouched). Both lists keep the examples' order; with
    `fraction` 0 every example trains."""
    if fraction <= 0:
        return list(range(len(examples))), []
    rng = random.Random(f"ddft-validation-{seed}")
    by_dataset: dict[str | None, list[int]] = {}
    for index, example in enumerate(examples):
        by_dataset.setdefault(example.dataset, []).append(index)
    held: set[int] = set()
    for indices in by_dataset.values():
        if len(indices) < 2:
            continue
        count = min(len(indices) - 1, max(1, round(fraction * len(indices))))
        held.update(rng.sample(indices, count))
    return ([i for i in range(len(examples)) if i not in held],
            [i for i in range(len(examples)) if i in held])


def validation_batches(encoded: list[EncodedExample], batch_size: int) -> list[list[int]]:
    """The held-out examples in batches of one modality, longest first within each (little
    padding), in an order fixed by the examples alone."""
    batches: list[list[int]] = []
    for modality in MODALITIES:
        chosen = sorted((i for i, e in enumerate(encoded) if e.modality == modality),
                        key=lambda i: (-len(encoded[i].input_ids), i))
        batches += [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]
    return batches


def collate(
    batch: list[EncodedExample], media: dict[str, dict[str, Any]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Model inputs for one batch, padded on the right (training needs no left padding), with
    the frame times under FRAME_TIMES when the examples carry time features."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention[row, :n] = 1
    inputs = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    if batch[0].modality != "text":
        key = next(iter(media[batch[0].media_path]))
        inputs[key] = torch.stack([media[e.media_path][key] for e in batch])
    if batch[0].time_features is not None:
        inputs[FRAME_TIMES] = torch.tensor([e.time_features for e in batch], dtype=torch.float32)
    return inputs


def model_inputs(batch_inputs: dict[str, torch.Tensor], device: str,
                 dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """`collate`'s output on `device`, floating tensors in `dtype`, and the frame times apart
    (float32: bfloat16 would round 41.3 s to 41.25 s) for engine.model.timeaware.frame_times."""
    times = batch_inputs.get(FRAME_TIMES)
    inputs = {key: v.to(device, dtype) if v.is_floating_point() else v.to(device)
              for key, v in batch_inputs.items() if key != FRAME_TIMES}
    return inputs, None if times is None else times.to(device)


def padding_fraction(encoded: list[EncodedExample], batches: list[list[int]]) -> float:
    """Pad slots / all slots when `batches` are padded to their longest example."""
    slots = sum(len(b) * max(len(encoded[i].input_ids) for i in b) for b in batches)
    real = sum(len(encoded[i].input_ids) for b in batches for i in b)
    return 1 - real / slots if slots else 0.0


# ---------------------------------------------------------------- checkpoints


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def checkpoint_bytes(model: Any, state: dict[str, Any] | None = None) -> int:
    """About how many bytes a checkpoint of `model` (its trainable tensors: the adapter and the
    projector) and `state` (optimizer moments and the rest) takes on disk."""
    import torch

    def size(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        return 0

    weights = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return weights + size(state) + 1_000_000  # + the config files, headers and the zip index


def _is_enospc(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left" in str(exc) or "StorageFull" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_full(folder: Path, needed: int) -> TrainError:
    free = shutil.disk_usage(folder).free
    return TrainError(f"no space left in {folder}: a checkpoint needs about "
                      f"{needed / 2**20:.0f} MB and {free / 2**20:.0f} MB are free; free some "
                      f"space and resume the run (its earlier checkpoints are kept)")


def save_checkpoint(
    model: Any, folder: Path, record: dict[str, Any], state: dict[str, Any] | None = None
) -> Path:
    """Write the adapter (LoRA weights and the trained projector), train_config.json and, when
    given, `state` as trainer_state.pt to `folder`, through a temporary sibling that is synced
    and renamed into place, so a crash never leaves a folder that looks complete. An existing
    `folder` is replaced. Raises TrainError naming the folder and the space a checkpoint needs
    when the disk is full (before writing when too little is free, else when a write fails with
    the disk full; the partial copy is removed), OSError when it cannot write otherwise."""
    import torch

    from engine.model.timeaware import write_time_settings

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    needed = checkpoint_bytes(model, state)
    if shutil.disk_usage(folder.parent).free < needed:
        raise _disk_full(folder.parent, needed)
    try:
        model.save_pretrained(str(tmp))
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        # How the model was given frame times: the loader reads it wherever the adapter goes.
        write_time_settings(tmp, TimeSettings.from_config(record.get("config") or {}))
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        _fsync_tree(tmp)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # torch reports a full disk as "unexpected pos N vs M", safetensors as its own error:
        # ENOSPC anywhere in the chain, or too little room left now, is a full disk.
        if _is_enospc(exc) or shutil.disk_usage(folder.parent).free < needed:
            raise _disk_full(folder.parent, needed) from exc
        raise
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def tidy_run_dir(run_dir: Path) -> None:
    """Clear what a process killed inside `save_checkpoint` left behind: a `.NAME.tmp-PID`
    folder never counted and goes; a `.NAME.old-PID` folder is the previous, complete NAME,
    which goes when NAME is in place and otherwise (killed between the two renames) is put
    back as NAME. Raises OSError when a folder cannot be moved."""
    run_dir = Path(run_dir)
    for old in run_dir.glob(".*.old-*"):
        name = old.name[1:].rsplit(".old-", 1)[0]
        if (run_dir / name).exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, run_dir / name)
    for stale in run_dir.glob(".*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The resumable checkpoint with the highest step under `run_dir` (a step-NNNNNN/ folder
    holding trainer_state.pt), or None. Hidden temporary folders never count."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [p for p in run_dir.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(found, key=lambda p: p.name) if found else None


def _resolve_resume(resume_from: Path) -> Path:
    path = Path(resume_from)
    if (path / STATE_FILE).is_file():
        return path
    found = last_checkpoint(path)
    if found is None:
        raise TrainError(f"{path}: no complete checkpoint to resume from (a step-NNNNNN folder "
                         f"with {STATE_FILE})")
    return found


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- the step
# What one run is made of, as functions: `train_lora` strings them together, and `ddft bench
# train` times the same ones, so a benchmark number is a number of this code.


def make_accelerator(device: str | None = None, *, log_with: list[Any] | None = None,
                     logging_dir: Path | None = None) -> Any:
    """The accelerate `Accelerator` a run trains under: the CPU when `device` is "cpu", else
    what accelerate finds (one GPU, or one rank of `accelerate launch`). `log_with` names
    accelerate's experiment trackers ("tensorboard", "wandb", "mlflow") or holds
    `GeneralTracker` objects; file-based trackers write under `logging_dir`."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    tracking: dict[str, Any] = {}
    if log_with:
        tracking["log_with"] = list(log_with)
        if logging_dir is not None:
            tracking["project_config"] = ProjectConfiguration(
                project_dir=str(logging_dir.parent), logging_dir=str(logging_dir))
    # Text batches leave the projector unused, and ranks train different modalities in the
    # same step: DDP must not wait for gradients that never come.
    return Accelerator(
        cpu=device == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        **tracking,
    )


def weights_dtype(config: TrainConfig, device: str) -> torch.dtype:
    """The dtype a run loads the frozen base weights in (and feeds pixels in): bfloat16 on
    CUDA when `config.bf16`, else float32."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") and config.bf16 else torch.float32


@dataclass
class Training:
    """A model made ready to train by `setup_training`: what `optimizer_step` runs."""

    model: Any  # LoRA attached, prepared by accelerate (DDP-wrapped in a data-parallel run)
    optimizer: Any  # AdamW, group 0 the LoRA weights, group 1 the projector
    trainable: list[Any]  # the parameters gradient clipping covers
    accelerator: Any
    device: str
    dtype: torch.dtype  # of the frozen weights, and of the pixel inputs
    pad_id: int
    accum: int  # micro-batches per optimizer step on this device
    world: int  # devices in the run
    max_grad_norm: float
    autocast: bool  # torch.autocast(bfloat16) around the forward (CUDA with bf16)
    loss_normalisation: str = "batch"  # TrainConfig.loss_normalisation


@dataclass
class StepStats:
    """What one optimizer step saw: each micro-batch's loss (the mean over its answer tokens)
    and answer tokens in order, and its samples, real tokens and token slots (real plus
    padding)."""

    losses: list[float] = field(default_factory=list)
    answer_tokens: list[int] = field(default_factory=list)
    samples: int = 0
    tokens: int = 0
    slots: int = 0
    grad_norm: float = 0.0


def setup_training(
    model: Any,
    config: TrainConfig,
    *,
    accelerator: Any,
    device: str,
    pad_id: int,
    load_state: Any = None,
) -> Training:
    """Make a base Video-LLaVA (loaded on `device` in `weights_dtype(config, device)`) ready to
    train under `config`, as every run does: the attention kernel, no KV cache, non-reentrant
    gradient checkpointing when asked, LoRA initialised from `config.seed`, float32 master
    copies of the trainable weights on CUDA, AdamW with one group for the LoRA weights and one
    for the projector (fused on CUDA when `config.fused_optimizer`), both wrapped by
    `accelerator`, the model in training mode and torch seeded with `config.seed` + rank (LoRA
    dropout). `load_state(model, optimizer)`, when given, runs just before accelerate wraps
    them: a resume loads the adapter and the optimizer state there, and sets its saved RNG
    state afterwards. Learning rates start at the peaks; `set_learning_rates` schedules them.
    """
    import torch

    from engine.model.loading import attach_lora
    from engine.model.timeaware import ENCODER_NAME, attach_time_encoder

    cuda = device.startswith("cuda")
    if getattr(model.config, "_attn_implementation", None) != config.attention:
        model.set_attn_implementation(config.attention)
    model.config.use_cache = False
    if config.gradient_checkpointing:
        # transformers 5 renamed it (the old name warns); older releases only have the old one.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})

    timing = TimeSettings.from_config(config)
    if timing.embedding:
        # Before LoRA: peft then trains and saves it beside the projector (modules_to_save).
        attach_time_encoder(model, timing, seed=config.seed)
    torch.manual_seed(config.seed)
    model = attach_lora(model, r=config.lora_r, alpha=config.lora_alpha,
                        dropout=config.lora_dropout)
    trainable_named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cuda:
        # Master weights in float32: bfloat16 cannot hold an AdamW update of a 2e-5 step.
        for _, p in trainable_named:
            p.data = p.data.float()
    # The frame-time encoder starts from nothing, like the LoRA weights: it learns at their rate.
    lora_params = [p for n, p in trainable_named if "lora_" in n or ENCODER_NAME in n]
    projector_params = [p for n, p in trainable_named
                        if "lora_" not in n and ENCODER_NAME not in n]
    optimizer = torch.optim.AdamW(
        [{"params": lora_params, "lr": config.learning_rate, "peak": config.learning_rate},
         {"params": projector_params, "lr": config.projector_learning_rate,
          "peak": config.projector_learning_rate}],
        weight_decay=config.weight_decay,
        **({"fused": True} if cuda and config.fused_optimizer else {}),
    )
    if load_state is not None:
        load_state(model, optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    torch.manual_seed(config.seed + accelerator.process_index)
    world = accelerator.num_processes
    return Training(model=model, optimizer=optimizer, trainable=lora_params + projector_params,
                    accelerator=accelerator, device=device, dtype=weights_dtype(config, device),
                    pad_id=pad_id, accum=config.accumulation(world), world=world,
                    max_grad_norm=config.max_grad_norm, autocast=cuda and config.bf16,
                    loss_normalisation=config.loss_normalisation)


def set_learning_rates(optimizer: Any, step: int, *, total: int, warmup: int,
                       min_ratio: float) -> None:
    """Set each parameter group's learning rate for optimizer step `step` (0-based) of `total`
    from its peak (`lr_at`)."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, peak=group["peak"], total=total, warmup=warmup,
                            min_ratio=min_ratio)


def optimizer_step(
    training: Training,
    micro_batches: Iterable[tuple[list[EncodedExample], dict[str, dict[str, Any]]]],
    *,
    answer_tokens: int | None = None,
) -> StepStats:
    """One optimizer step: for each of the `training.accum` micro-batches in `micro_batches`
    (an iterable of (examples, media) pairs, media as `load_media` or `MediaStream.get` give
    it, taken one at a time), `collate`, the forward pass (under bfloat16 autocast when
    `training.autocast`), and the backward pass, gradients synchronised across devices on the
    last micro-batch only; then clipping at `max_grad_norm` (0: none), the AdamW step, and the
    gradients set to None.

    What is backpropagated follows `training.loss_normalisation`. "batch": each micro-batch's
    mean token loss / accum (Video-LLaVA's trainer). "tokens": each micro-batch's summed token
    loss / `answer_tokens`, the answer tokens of the whole step on every device (times the
    device count, which DDP's gradient average divides out), as transformers' Trainer does
    since 4.46; when `answer_tokens` is None the micro-batches are taken all at once and
    counted (one device).

    Raises what the model, the media or the device raise; `is_out_of_memory` tells out of GPU
    memory apart. The gradients of a step that raised are left as they were.
    """
    import torch

    from engine.model.timeaware import frame_times

    accelerator, model = training.accelerator, training.model
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if training.autocast
                else contextlib.nullcontext())
    by_tokens = training.loss_normalisation == "tokens"
    if by_tokens and answer_tokens is None:
        micro_batches = list(micro_batches)
        answer_tokens = sum(e.answer_tokens for batch, _ in micro_batches for e in batch)
        answer_tokens *= training.world
    stats = StepStats()
    for k, (batch, media) in enumerate(micro_batches):
        inputs, times = model_inputs(collate(batch, media, training.pad_id), training.device,
                                     training.dtype)
        sync = k == training.accum - 1 or training.world == 1
        tokens = sum(e.answer_tokens for e in batch)
        with (contextlib.nullcontext() if sync else accelerator.no_sync(model)):
            with autocast, frame_times(model, times):
                loss = model(**inputs).loss
            if by_tokens:
                # The model's loss is this micro-batch's mean: times its tokens, the sum.
                accelerator.backward(loss * (tokens * training.world / max(answer_tokens, 1)))
            else:
                accelerator.backward(loss / training.accum)
        slots = inputs["attention_mask"].numel()
        stats.losses.append(loss.item())
        stats.answer_tokens.append(tokens)
        stats.samples += len(batch)
        stats.tokens += int(inputs["attention_mask"].sum())
        stats.slots += slots
    if training.max_grad_norm > 0:
        stats.grad_norm = float(accelerator.clip_grad_norm_(training.trainable,
                                                            training.max_grad_norm))
    training.optimizer.step()
    training.optimizer.zero_grad(set_to_none=True)
    return stats


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` means the GPU ran out of memory: torch's own error, or a RuntimeError
    saying so from a library that allocates outside torch's caching allocator (cuBLAS and some
    kernels)."""
    import torch

    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text)


def validation_loss(
    training: Training,
    batches: Iterable[tuple[list[EncodedExample], dict[str, dict[str, Any]]]],
) -> tuple[float, int]:
    """The summed token loss and the number of answer tokens of `batches` ((examples, media)
    pairs, as `optimizer_step` takes them), with the model in eval mode (no dropout) and no
    gradients; the model is back in training mode afterwards. The random number generators
    are not touched, so a run's training is the same with or without validation."""
    import torch

    from engine.model.timeaware import frame_times

    model = training.accelerator.unwrap_model(training.model)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if training.autocast
                else contextlib.nullcontext())
    total, count = 0.0, 0
    model.eval()
    try:
        with torch.no_grad():
            for batch, media in batches:
                inputs, times = model_inputs(collate(batch, media, training.pad_id),
                                             training.device, training.dtype)
                with autocast, frame_times(model, times):
                    loss = model(**inputs).loss
                tokens = sum(e.answer_tokens for e in batch)
                total += float(loss) * tokens
                count += tokens
    finally:
        model.train()
    return total, count


def _tracker_config(config: TrainConfig) -> dict[str, Any]:
    """The settings as experiment trackers take hyper-parameters: scalars, none as text."""
    return {key: "none" if value is None else value for key, value in asdict(config).items()
            if key != "extra"}


# ---------------------------------------------------------------- the loop


def _check(config: TrainConfig, examples: list[TrainExample],
           weights: dict[str, float] | None, world_size: int | None) -> None:
    problems = config.problems(world_size or 1)
    if world_size is None:  # before the device count is known, what depends on it waits
        problems = [p for p in problems if "x gpus" not in p]
    for index, example in enumerate(examples):
        if example.modality not in MODALITIES:
            problems.append(f"example {index}: modality must be image, video or text, "
                            f"got {example.modality!r}")
        if not example.answer.strip():
            problems.append(f"example {index}: the answer is empty")
        if any(not answer.strip() for _, answer in example.turns):
            problems.append(f"example {index}: a later answer of its conversation is empty")
    for name, weight in (weights or {}).items():
        if not (isinstance(weight, (int, float)) and weight > 0):
            problems.append(f"mixture weight of {name}: expected a number > 0, got {weight!r}")
    if not examples:
        problems.append("examples: expected at least one, got none")
    if problems:
        raise TrainError("cannot train: " + "; ".join(problems))


def train_lora(
    *,
    base: str,
    examples: list[TrainExample],
    out_dir: Path,
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    device: str | None = None,
    weights: dict[str, float] | None = None,
    resume_from: Path | None = None,
    is_main: bool | None = None,
    trackers: list[Any] | None = None,
) -> TrainResult:
    """LoRA-tune `base` on `examples` and write checkpoints under `out_dir`.

    `weights` maps TrainExample.dataset to a mixture weight (see `mixture_epoch`).
    `config.val_fraction` of each dataset is held out (`split_validation`) and its loss
    measured every `config.eval_every` steps and at every checkpoint but a cancel's: reported
    as `val_loss` (the mean over the held-out answer tokens) with the step's other values, and
    recorded in the checkpoint's train_config.json. Every logged value also goes to the
    experiment trackers `config.report_to` names and to `trackers` (accelerate
    `GeneralTracker` objects), from the main process.
    `resume_from` (a run folder or one step-NNNNNN/ checkpoint) continues from the last complete
    checkpoint: the same batches, learning rates, optimizer state and RNG as if never stopped.
    `is_main` (default: accelerate's main process) decides whether this process writes
    checkpoints and frames.jsonl and calls `callbacks`; other ranks of a data-parallel run write
    nothing. Before the first step every media file is checked to exist and the first of each
    modality is decoded; the rest are decoded in background threads a few micro-batches ahead
    (`MediaStream`), so memory does not grow with the dataset. See the module docstring for
    what it raises.
    """
    import torch
    from accelerate.utils import broadcast_object_list

    from engine.model.loading import load_model

    # Checked before accelerate starts: it would fail on a tracker that is not installed.
    _check(config, examples, weights, None)
    out_dir = Path(out_dir)
    log_with = [*config.trackers(), *(trackers or [])] if is_main is not False else []
    accelerator = make_accelerator(device, log_with=log_with, logging_dir=out_dir / "trackers")
    world, rank = accelerator.num_processes, accelerator.process_index
    main = accelerator.is_main_process if is_main is None else is_main
    callbacks = callbacks if main else None
    _check(config, examples, weights, world)
    accum = config.accumulation(world)

    device = device or str(accelerator.device)
    cuda = device.startswith("cuda")
    loaded = load_model(base, device=device, dtype=weights_dtype(config, device))
    processor = loaded.processor

    shapes = media_shapes(processor, examples, config.num_frames)
    timing = TimeSettings.from_config(config)
    if timing.any:
        examples = with_frame_times(examples, config.num_frames)
    encoded, too_long = [], []
    for e in examples:
        try:
            encoded.append(encode_example(processor, e, shapes.get(e.modality),
                                          config.max_length, time=timing))
        except TrainError:
            too_long.append(str(e.sample_id))
    if too_long:
        raise TrainError(f"{len(too_long)} prompts leave no room for an answer within "
                         f"max_length {config.max_length} (samples {', '.join(too_long[:20])}); "
                         "raise max_length or exclude them")
    truncated = sum(e.truncated for e in encoded)
    train_indices, val_indices = split_validation(examples, config.val_fraction, config.seed)
    val_encoded = [encoded[i] for i in val_indices]
    encoded = [encoded[i] for i in train_indices]
    val_batches = validation_batches(val_encoded, config.batch_size)[rank::world]
    plan, total_steps = plan_run(encoded, config, weights=weights, world_size=world)
    digest = plan_digest(plan, encoded)
    warmup = int(total_steps * config.warmup_ratio)

    start_step, window = 0, {"loss": 0.0, "n": 0, "samples": 0, "tokens": 0, "pad": 0, "slots": 0}
    resumed_path = _resolve_resume(resume_from) if resume_from is not None else None
    load_state = None
    if resumed_path is not None:
        state = torch.load(resumed_path / STATE_FILE, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT or state.get("plan_digest") != digest:
            raise TrainError(f"{resumed_path}: the checkpoint was made with other data or "
                             "settings (batch plan differs); start a new run instead")
        start_step, window = state["step"], state["window"]

        def load_state(model: Any, optimizer: Any) -> None:
            from peft.utils import set_peft_model_state_dict
            from safetensors.torch import load_file

            weights_file = resumed_path / "adapter_model.safetensors"
            # safetensors names the CPU "cpu" only; a data-parallel CPU rank's device is "cpu:0".
            where = "cpu" if torch.device(device).type == "cpu" else device
            set_peft_model_state_dict(model, load_file(str(weights_file), device=where))
            optimizer.load_state_dict(state["optimizer"])

    training = setup_training(loaded.model, config, accelerator=accelerator, device=device,
                              pad_id=processor.tokenizer.pad_token_id, load_state=load_state)
    model, optimizer = training.model, training.optimizer
    if resumed_path is not None:
        _set_rng_state(state["rng"])

    record = {"base": str(base), "config": asdict(config), "n_examples": len(examples),
              "weights": weights or {}, "world_size": world, "grad_accum": accum,
              "attention": config.attention, "truncated": truncated,
              "n_train": len(train_indices),
              "val_samples": [examples[i].sample_id if examples[i].sample_id is not None else i
                              for i in val_indices]}
    # This process's micro-batches from the start step on, as the media they need.
    positions = [step * accum * world + k * world + rank
                 for step in range(start_step, total_steps) for k in range(accum)]
    stream = MediaStream(
        processor,
        [[(encoded[i].media_path, encoded[i].modality) for i in plan[p]
          if encoded[i].modality != "text"] for p in positions],
        config.num_frames, shapes, lookahead=2 * accum,
        # On a GPU the training thread mostly waits for the device: decode ahead in threads.
        workers=None if cuda else 0)
    frames_logged: set[str] = set()
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        tidy_run_dir(out_dir)
        frames_path = out_dir / FRAMES_FILE
        if resumed_path is not None and frames_path.is_file():
            for line in frames_path.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    frames_logged.add(json.loads(line)["media_path"])
        else:
            frames_path.write_text("")

    def log_frames() -> None:
        # Each video's frames, once per run, as the stream first decodes it.
        new = [f for f in stream.take_frames() if f["media_path"] not in frames_logged]
        if main and new:
            frames_logged.update(f["media_path"] for f in new)
            with open(out_dir / FRAMES_FILE, "a") as handle:
                handle.writelines(json.dumps(line) + "\n" for line in new)

    unwrapped = accelerator.unwrap_model(model)

    def evaluate() -> float:
        # Every rank measures its share of the held-out batches; the sums are added up.
        stream = MediaStream(
            processor, [[(val_encoded[i].media_path, val_encoded[i].modality) for i in batch
                         if val_encoded[i].modality != "text"] for batch in val_batches],
            config.num_frames, shapes, lookahead=2, workers=None if cuda else 0)
        try:
            total, tokens = validation_loss(
                training, (([val_encoded[i] for i in batch], stream.get(k))
                           for k, batch in enumerate(val_batches)))
        finally:
            stream.close()
        if world > 1:
            summed = accelerator.reduce(torch.tensor([total, float(tokens)], device=device,
                                                     dtype=torch.float64), "sum")
            total, tokens = float(summed[0]), int(summed[1])
        return total / tokens if tokens else float("nan")

    if main and log_with:
        accelerator.init_trackers("ddft", config=_tracker_config(config),
                                  init_kwargs={"wandb": {"name": out_dir.name},
                                               "mlflow": {"run_name": out_dir.name}})

    def checkpoint(step: int, final: bool, loss: float, val_loss: float | None = None) -> Path:
        name = "final" if final else step_dir_name(step)
        path = out_dir / name
        if main:
            state = None if final else {
                "format": STATE_FORMAT, "step": step, "position": step * accum * world,
                "total_steps": total_steps, "plan_digest": digest,
                "optimizer": optimizer.state_dict(),
                "scheduler": {"kind": "warmup_cosine", "step": step, "warmup": warmup,
                              "total": total_steps, "min_lr_ratio": config.min_lr_ratio},
                "rng": _rng_state(), "window": dict(window),
            }
            saved = {**record, "step": step, "final": final, "loss": loss}
            if val_loss is not None:
                saved["val_loss"] = val_loss
            save_checkpoint(unwrapped, path, saved, state)
            if callbacks:
                callbacks.on_checkpoint(step, path, final)
        accelerator.wait_for_everyone()
        return path

    def note(message: str) -> None:
        if callbacks is not None and hasattr(callbacks, "note"):
            callbacks.note(message)

    if truncated:
        note(f"{truncated} of {len(encoded)} samples are longer than max_length "
             f"{config.max_length}: their answers were cut")
    if resumed_path is not None:
        note(f"resuming from {resumed_path} at step {start_step} of {total_steps}")
    if val_indices:
        note(f"{len(val_indices)} of {len(examples)} samples held out for the validation loss "
             f"(val_fraction {config.val_fraction:g})")
    if callbacks:
        callbacks.on_start(total_steps, start_step)

    total_pad = total_slots = 0
    last_loss = float("nan")
    val_loss: float | None = None
    window_start = time.perf_counter()
    step = start_step
    try:
        while step < total_steps:
            stop = [bool(callbacks and callbacks.should_stop())]
            if world > 1:
                broadcast_object_list(stop, from_process=0)
            if stop[0]:
                path = checkpoint(step, final=False, loss=last_loss)
                return TrainResult(path, step, last_loss, True, truncated,
                                   total_pad / total_slots if total_slots else 0.0, start_step,
                                   total_steps)
            set_learning_rates(optimizer, step, total=total_steps, warmup=warmup,
                               min_ratio=config.min_lr_ratio)
            position = step * accum * world
            # Taken one by one as the step runs, so the stream decodes ahead of the device.
            micro_batches = (
                ([encoded[i] for i in plan[position + k * world + rank]],
                 stream.get((step - start_step) * accum + k))
                for k in range(accum))
            step_tokens = (sum(encoded[i].answer_tokens
                               for batch in plan[position:position + accum * world]
                               for i in batch)
                           if config.loss_normalisation == "tokens" else None)
            try:
                stats = optimizer_step(training, micro_batches, answer_tokens=step_tokens)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                saved = last_checkpoint(out_dir)
                raise TrainError(
                    f"out of GPU memory at step {step + 1} with batch_size {config.batch_size}: "
                    "lower batch_size (raise grad_accum to keep the samples per step) or set "
                    "gradient_checkpointing = true; "
                    + (f"the last checkpoint, {saved}, is intact" if saved else
                       "no checkpoint was written yet")
                ) from exc
            # The window's loss weighs micro-batches as the step did: each the same ("batch"),
            # or by its answer tokens ("tokens").
            for loss, tokens in zip(stats.losses, stats.answer_tokens):
                weight = tokens if config.loss_normalisation == "tokens" else 1
                window["loss"] += loss * weight
                window["n"] += weight
            window["samples"] += stats.samples
            window["tokens"] += stats.tokens
            window["pad"] += stats.slots - stats.tokens
            window["slots"] += stats.slots
            total_pad += stats.slots - stats.tokens
            total_slots += stats.slots
            grad_norm = stats.grad_norm
            step += 1
            log_frames()

            saving = bool(config.save_every and step % config.save_every == 0
                          and step < total_steps)
            val_loss = None
            if val_batches or (val_indices and world > 1):
                if (config.eval_every and step % config.eval_every == 0) or saving \
                        or step == total_steps:
                    val_loss = evaluate()
            if step % config.log_every == 0 or step == total_steps or val_loss is not None:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                mean_loss = window["loss"] / max(window["n"], 1)
                if world > 1:
                    mean_loss = float(accelerator.reduce(torch.tensor(mean_loss, device=device),
                                                         "mean"))
                last_loss = mean_loss
                values = {
                    "loss": mean_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    "projector_lr": optimizer.param_groups[1]["lr"],
                    "grad_norm": grad_norm,
                    "samples_per_s": window["samples"] * world / elapsed,
                    "tokens_per_s": window["tokens"] * world / elapsed,
                    "padding_fraction": window["pad"] / max(window["slots"], 1),
                }
                if cuda:
                    values["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
                if val_loss is not None:
                    values["val_loss"] = val_loss
                if callbacks:
                    callbacks.log(step, values)
                if main and log_with:
                    accelerator.log(values, step=step)
                window = {"loss": 0.0, "n": 0, "samples": 0, "tokens": 0, "pad": 0, "slots": 0}
                window_start = time.perf_counter()
            if saving:
                checkpoint(step, final=False, loss=last_loss, val_loss=val_loss)

        path = checkpoint(step, final=True, loss=last_loss, val_loss=val_loss)
        return TrainResult(path, step, last_loss, False, truncated,
                           total_pad / total_slots if total_slots else 0.0, start_step, total_steps)
    finally:
        stream.close()
        if main and log_with:
            for tracker in accelerator.trackers:
                tracker.finish()
