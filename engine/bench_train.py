"""`ddft bench train`: speed of the product's own LoRA training step on the Video-LLaVA-7B architecture.

Each configuration of the grid is a TrainConfig made from a preset (`paper` by default) with
overrides through the same `apply_overrides` that `ddft train --set` uses; the model is set up by
`engine.train.setup_training`, the batches are encoded and collated by engine.train, and each
timed step is one call of `engine.train.optimizer_step`, the function `train_lora` runs. Only the
weights are synthetic: random, in the published 7B shapes (or a scaled-down copy on the CPU).

`python -m engine.bench_train` runs it without the CLI. torch is imported inside functions; the
media readers, the TUI and the LLM client are never imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from db.errors import UserError

FLOP_CONVENTION = (
    "FLOPs/step = 4 × N_params × tokens (forward 2×, backward through the activations 2×; "
    "no weight gradients for frozen weights, the LoRA adapters' own FLOPs not counted; "
    "recomputation under gradient checkpointing not counted: this is MFU, not HFU)"
)
MFU_TARGET = 0.40  # issue 4 part 8: NVIDIA publishes 40-43% for 7-8B LoRA on text-only 4k sequences

# Dense bf16 tensor-core peaks from NVIDIA's datasheets, in TFLOP/s, matched against
# torch.cuda.get_device_name() in order (first match wins).
PEAK_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("H100", "PCIE"), 756.0, "H100 PCIe"),
    (("H100", "NVL"), 835.0, "H100 NVL"),
    (("H100",), 989.0, "H100 SXM"),
    (("H200",), 989.0, "H200 SXM"),
    (("A100",), 312.0, "A100"),
)


@dataclass(frozen=True)
class Architecture:
    """The sizes a VideoLlavaConfig is built from, and the token ids it reserves."""

    name: str
    text: dict[str, Any]
    vision: dict[str, Any]
    vocab_size: int
    image_token_index: int
    video_token_index: int
    pad_token_id: int
    num_frames: int = 8

    @property
    def frame_size(self) -> int:
        return int(self.vision["image_size"])

    @property
    def tokens_per_frame(self) -> int:
        # Video frames keep CLIP's CLS token: (224/14)² + 1 = 257 (VideoLlavaProcessor).
        return (self.vision["image_size"] // self.vision["patch_size"]) ** 2 + 1

    @property
    def video_tokens(self) -> int:
        return self.tokens_per_frame * self.num_frames


# LanguageBind/Video-LLaVA-7B-hf, config.json (transformers 4.41.0.dev0; kept verbatim in
# shared/fixtures/real/videollava_hf/config.json). That file lists only the keys that differ
# from the defaults; the rest are LlamaConfig's and CLIPVisionConfig's defaults, which are the
# published sizes of Vicuna-7B v1.5 (lmsys/vicuna-7b-v1.5: hidden 4096, MLP 11008, 32 layers,
# 32 heads, no GQA) and of CLIP ViT-L/14 at 224 px. They are written out here so that a change
# of library defaults cannot change the benchmarked model.
VIDEO_LLAVA_7B = Architecture(
    name="Video-LLaVA-7B",
    text={
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
    vision={
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
    },
    vocab_size=32064,
    image_token_index=32000,
    video_token_index=32001,
    pad_token_id=32002,
)

# A CPU smoke test of the same code path: every size cut down, the token layout kept.
SMOKE = Architecture(
    name="smoke (scaled-down, NOT Video-LLaVA-7B)",
    text={
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "hidden_act": "silu",
        "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
    vision={
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "patch_size": 14,
        "image_size": 56,
        "projection_dim": 64,
        "hidden_act": "quick_gelu",
    },
    vocab_size=1024,
    image_token_index=1000,
    video_token_index=1001,
    pad_token_id=1002,
)


def build_config(arch: Architecture):
    """A VideoLlavaConfig with `arch`'s sizes, the 7B checkpoint's feature layer and strategy."""
    # transformers is imported here: it takes seconds and `ddft --help` must not wait.
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig

    text = LlamaConfig(vocab_size=arch.vocab_size, pad_token_id=0, **arch.text)
    config = VideoLlavaConfig(
        vision_config=CLIPVisionConfig(**arch.vision),
        text_config=text,
        image_token_index=arch.image_token_index,
        video_token_index=arch.video_token_index,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=arch.tokens_per_frame - 1,
        video_seq_length=arch.video_tokens,
    )
    config.pad_token_id = arch.pad_token_id
    return config


def build_model(arch: Architecture, *, device: str, dtype: Any):
    """A VideoLlavaForConditionalGeneration of `arch` with random weights, made directly on
    `device` in `dtype` (never a float32 copy on the CPU first), with SDPA attention.

    `device="meta"` allocates nothing, for counting parameters."""
    import torch
    from transformers import VideoLlavaForConditionalGeneration

    from engine.model.loading import quiet_transformers

    quiet_transformers()
    with torch.device(device):
        return VideoLlavaForConditionalGeneration._from_config(
            build_config(arch), dtype=dtype, attn_implementation="sdpa")


def count_parameters(model: Any) -> dict[str, int]:
    """Parameters by part: language_model, lm_head, video_tower, image_tower, projector, other,
    and total."""
    parts = {"language_model": 0, "lm_head": 0, "video_tower": 0, "image_tower": 0,
             "projector": 0, "other": 0}
    for name, param in model.named_parameters():
        if "lora_" in name or "modules_to_save" in name:
            continue  # a peft copy, not the base model's own weight
        key = next((k for k in ("language_model", "lm_head", "video_tower", "image_tower")
                    if k in name), "projector" if "multi_modal_projector" in name else "other")
        parts[key] += param.numel()
    parts["total"] = sum(parts.values())
    return parts


def video_step_parameters(counts: dict[str, int]) -> int:
    """N_params of the FLOP convention: every weight a video sample's step runs through, frozen
    included (language model, output head, video tower, projector). The image tower is left out:
    a video batch never runs it."""
    return (counts["language_model"] + counts["lm_head"] + counts["video_tower"]
            + counts["projector"] + counts["other"])


def flops_per_step(n_params: int, tokens: int) -> float:
    """Model FLOPs of one LoRA training step under FLOP_CONVENTION."""
    return 4.0 * n_params * tokens


def model_flops_utilization(flops: float, seconds: float, peak_tflops: float) -> float:
    """The fraction of `peak_tflops` that `flops` in `seconds` reaches."""
    return flops / seconds / (peak_tflops * 1e12)


def detect_peak_tflops(device_name: str) -> tuple[float | None, str]:
    """(dense bf16 peak in TFLOP/s, what it is) for a CUDA device name; (None, why) if unknown."""
    upper = device_name.upper()
    for needles, peak, label in PEAK_BF16_TFLOPS:
        if all(n in upper for n in needles):
            return peak, f"{label} dense bf16, NVIDIA datasheet; matched from {device_name!r}"
    return None, f"no known peak for {device_name!r}: pass --peak-tflops for MFU"


# The synthetic sample's text. The bench's tokenizer is trained on it (nothing is downloaded), so
# the template's words and each word below become single tokens, and a text of n words is n
# tokens: a prompt and an answer of any length are made by repeating words.
QUESTION = "What is the recipe for the dish cooked in this video?"
ANSWER = ("Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\n- 1/2 tsp salt\nSteps:\n"
          "1. Simmer the tomatoes for 20 minutes.\n2. Blend until smooth.")

# Settings each configuration of the grid sets; `--set` may not set them.
GRID_KEYS = ("batch_size", "gradient_checkpointing", "bf16")
# Applied before `--set`: one micro-batch per optimizer step, as earlier versions of this
# benchmark timed. The paper preset's 16 samples a step would make a step at batch 1 sixteen
# forward passes; `--set grad_accum=4` times accumulation.
GRID_DEFAULTS = {"samples_per_step": "none", "grad_accum": "1"}


@dataclass
class SampleLayout:
    """The text of one synthetic video sample: `USER: <video>\\n{prompt} ASSISTANT: {answer}</s>`."""

    prompt_tokens: int = 44
    """Text tokens around the video: <s>, "USER:", "\\n", the question, "ASSISTANT:"."""
    answer_tokens: int = 200
    """Answer tokens and </s>: the only positions with labels."""


class BenchTrainError(UserError, ValueError):
    """A setting of the benchmark is not usable (an empty grid, a non-positive count, a bad
    preset or --set)."""


def build_processor(arch: Architecture) -> tuple[Any, Architecture]:
    """A VideoLlavaProcessor for `arch`'s frames (size, patch, CLS token as Video-LLaVA's) with
    a tokenizer trained here on the synthetic sample's words, and `arch` with that tokenizer's
    image, video and pad ids. The vocabulary size stays `arch.vocab_size`: the embedding and the
    output head keep their published shapes."""
    from transformers import (
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    from engine.model.loading import format_prompt
    from engine.model.tiny import _train_tokenizer

    tokenizer = _train_tokenizer([f"{format_prompt('video', QUESTION)} {ANSWER}"] * 4)
    tokenizer.model_max_length = arch.text["max_position_embeddings"]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<image>", "<video>", "<pad>")}
    arch = dataclasses.replace(arch, image_token_index=ids["<image>"],
                               video_token_index=ids["<video>"], pad_token_id=ids["<pad>"])
    frame = {"size": {"shortest_edge": arch.frame_size},
             "crop_size": {"height": arch.frame_size, "width": arch.frame_size}}
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(**frame),
        video_processor=VideoLlavaVideoProcessor(**frame),
        tokenizer=tokenizer, patch_size=arch.vision["patch_size"],
        vision_feature_select_strategy="default", num_additional_image_tokens=1)
    return processor, arch


def _words(tokenizer: Any) -> list[str]:
    """The sample's words that are one token each after a space."""
    text = f"{QUESTION} {ANSWER}"
    return [w for w in dict.fromkeys(text.split()) if w.isalpha()
            and len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]


def synthetic_examples(
    processor: Any, layout: SampleLayout, n: int, *, num_frames: int, frame_size: int,
    max_length: int | None = None, seed: int = 0,
) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """`n` video examples as engine.train.encode_example makes them, and their media as
    `load_media` gives it (path -> pixel inputs; each video random frames through the
    processor, under a made-up path). Prompt and answer are repeated words, as many as make
    `layout`'s token counts; `max_length` cuts answers as a run with that setting would.

    Raises BenchTrainError when the prompt template alone is longer than
    `layout.prompt_tokens` or the answer cannot be `layout.answer_tokens` long.
    """
    import torch

    from engine.train import IGNORE_INDEX, TrainExample, encode_example

    gen = torch.Generator().manual_seed(seed)
    media: dict[str, dict[str, Any]] = {}
    for i in range(n):
        frames = torch.randint(0, 256, (num_frames, frame_size, frame_size, 3),
                               dtype=torch.uint8, generator=gen).numpy()
        out = processor.video_processor(videos=[frames], return_tensors="pt")
        media[f"synthetic-{i}.mp4"] = {"pixel_values_videos": out["pixel_values_videos"][0]}

    words = _words(processor.tokenizer)

    def text(count: int) -> str:
        return " ".join(words[i % len(words)] for i in range(count))

    first = next(iter(media))
    question_words = answer_words = 1
    for _ in range(8):  # each word is one token: one correction settles it
        encoded = encode_example(processor, TrainExample("video", text(question_words),
                                                         text(answer_words), first),
                                 media[first])
        n_prompt = encoded.labels.count(IGNORE_INDEX)
        prompt = n_prompt - encoded.input_ids.count(processor.video_token_id)
        answer = len(encoded.input_ids) - n_prompt
        if (prompt, answer) == (layout.prompt_tokens, layout.answer_tokens):
            break
        question_words += layout.prompt_tokens - prompt
        answer_words += layout.answer_tokens - answer
        if question_words < 1:
            raise BenchTrainError(f"prompt_tokens: the prompt template with a one-word question "
                                  f"is {prompt} tokens, more than {layout.prompt_tokens}")
        if answer_words < 1:
            raise BenchTrainError(f"answer_tokens: expected at least 2 (a word and </s>), "
                                  f"got {layout.answer_tokens}")
    else:
        raise BenchTrainError(f"could not lay out a sample of {layout.prompt_tokens} prompt "
                              f"and {layout.answer_tokens} answer tokens with this tokenizer")
    return [encode_example(processor, TrainExample("video", text(question_words),
                                                   text(answer_words), path, sample_id=i),
                           pixels, max_length)
            for i, (path, pixels) in enumerate(media.items())], media


@dataclass
class ConfigResult:
    """One point of the grid: its settings, what happened, and the step times."""

    checkpointing: bool
    batch_size: int
    bf16: bool
    status: str = "ok"
    """ok, out of memory, or skipped: why."""
    step_seconds: list[float] = field(default_factory=list)
    tokens_per_step: int = 0
    samples_per_step: int = 0
    peak_memory_bytes: int | None = None
    loss: float | None = None
    """The last step's loss."""
    losses: list[float] = field(default_factory=list)
    """Every step's loss (the mean over its micro-batches), the warm-up steps first."""
    flops_per_step: float | None = None
    peak_tflops: float | None = None
    setup_s: float | None = None
    """Building the random model and `setup_training`, not timed."""
    trainable: dict[str, dict[str, int]] = field(default_factory=dict)
    """Trainable parameters after set-up, lora and projector, by dtype."""
    train_config: dict[str, Any] = field(default_factory=dict)
    """The TrainConfig the configuration ran, as train_config.json stores it."""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.step_seconds) if self.step_seconds else None

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens_per_step / self.median_s if self.median_s else None

    @property
    def samples_per_s(self) -> float | None:
        return self.samples_per_step / self.median_s if self.median_s else None

    @property
    def mfu(self) -> float | None:
        if not self.median_s or self.flops_per_step is None or not self.peak_tflops:
            return None
        return model_flops_utilization(self.flops_per_step, self.median_s, self.peak_tflops)

    def label(self) -> str:
        return (f"checkpointing {'on' if self.checkpointing else 'off'}, "
                f"bf16 {'on' if self.bf16 else 'off'}, batch {self.batch_size}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(median_s=self.median_s, tokens_per_s=self.tokens_per_s,
                   samples_per_s=self.samples_per_s, mfu=self.mfu)
        return out


@dataclass
class TrainBenchResult:
    """Everything `ddft bench train` measured: the setting lines, the grid, and notes."""

    smoke: bool
    header: list[str] = field(default_factory=list)
    configs: list[ConfigResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[str]:
        """The grid as fixed-width text lines, one row per configuration."""
        head = ("ckpt", "bf16", "batch", "tokens/step", "step", "tokens/s", "samples/s",
                "peak mem", "MFU", "status")
        rows = [head]
        for c in self.configs:
            rows.append((
                "on" if c.checkpointing else "off", "on" if c.bf16 else "off",
                str(c.batch_size), f"{c.tokens_per_step:,}",
                _fmt_seconds(c.median_s), _fmt_rate(c.tokens_per_s), _fmt_rate(c.samples_per_s, 2),
                "-" if c.peak_memory_bytes is None else
                f"{'>' if c.status == 'out of memory' else ''}{c.peak_memory_bytes / 2**30:.1f} GiB",
                "-" if c.mfu is None else f"{c.mfu * 100:.1f}%", c.status))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(cell.rjust(w) if i < len(head) - 1 else cell
                           for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        return lines

    def lines(self) -> list[str]:
        """The whole report, the table last but for the notes, as the device shows only a tail."""
        return [*self.header, "", *self.table(), *self.notes]

    def as_dict(self) -> dict[str, Any]:
        return {"smoke": self.smoke, "header": self.header, "facts": self.facts,
                "flop_convention": FLOP_CONVENTION, "notes": self.notes,
                "configs": [c.as_dict() for c in self.configs]}


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.3f} s"


def _fmt_count(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _fmt_rate(rate: float | None, digits: int = 0) -> str:
    return "-" if rate is None else f"{rate:,.{digits}f}"


def parse_batch_sizes(text: str) -> list[int]:
    """`1,2,4` → [1, 2, 4]. Raises BenchTrainError naming the option and the bad value."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise BenchTrainError(
            f"--batch-sizes: expected positive integers separated by commas, got {text!r}")
    return sizes


def parse_switches(option: str, text: str) -> list[bool]:
    """`on,off` → [True, False]. Raises BenchTrainError naming `option` and the bad value."""
    values = {"on": True, "off": False}
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not parts or any(p not in values for p in parts):
        raise BenchTrainError(f"{option}: expected on, off or on,off, got {text!r}")
    return [values[p] for p in parts]


def parse_overrides(texts: list[str] | None) -> dict[str, str]:
    """`["lora_r=64", ...]` (repeated `--set KEY=VALUE`) → {"lora_r": "64", ...}, parsed as
    `ddft train --set` parses them. Raises BenchTrainError for a text without `=`."""
    from engine.jobs.requests import parse_set_arg

    try:
        return dict(parse_set_arg(text) for text in texts or [])
    except ValueError as exc:
        raise BenchTrainError(str(exc)) from None


def base_config(preset: str = "paper", overrides: dict[str, str] | None = None) -> Any:
    """The TrainConfig every configuration starts from: `preset` (a name or a .toml file), then
    GRID_DEFAULTS and `overrides` through `apply_overrides`, as `ddft train --preset --set`
    makes a run's. Raises BenchTrainError for a bad preset, an unknown key or value, or a key
    the grid sets itself."""
    from engine.jobs.train_settings import TrainError, apply_overrides, load_preset

    overrides = dict(overrides or {})
    taken = [key for key in overrides if key in GRID_KEYS]
    if taken:
        raise BenchTrainError(f"--set {taken[0]}: set by the grid (--batch-sizes, "
                              "--checkpointing, --bf16), not by --set")
    try:
        return apply_overrides(load_preset(preset), {**GRID_DEFAULTS, **overrides})
    except TrainError as exc:
        raise BenchTrainError(str(exc)) from None


def grid_config(base: Any, *, batch_size: int, checkpointing: bool, bf16: bool) -> Any:
    """`base` with one grid point's settings, through `apply_overrides` as `--set` would give
    them. Raises BenchTrainError when the combination is not valid (a samples_per_step that
    the batch size does not divide)."""
    from engine.jobs.train_settings import TrainError, apply_overrides

    switch = {True: "on", False: "off"}
    try:
        return apply_overrides(base, {"batch_size": str(batch_size),
                                      "gradient_checkpointing": switch[checkpointing],
                                      "bf16": switch[bf16]})
    except TrainError as exc:
        raise BenchTrainError(f"batch {batch_size}: {exc}") from None


def _trainable_by_dtype(model: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"lora": {}, "projector": {}}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = out["lora" if "lora_" in name else "projector"]
            key = str(param.dtype).removeprefix("torch.")
            part[key] = part.get(key, 0) + param.numel()
    return out


def time_configuration(
    result: ConfigResult,
    config: Any,
    *,
    build: Callable[[Any], Any],
    accelerator: Any,
    device: str,
    pad_id: int,
    examples: list[Any],
    media: dict[str, dict[str, Any]],
    warmup: int,
    steps: int,
) -> None:
    """Time `steps` optimizer steps of `config` after `warmup` untimed ones, into `result`.

    `build(dtype)` makes the base model on `device` in the dtype a run loads it in
    (`engine.train.weights_dtype`); `engine.train.setup_training` makes it ready, and every step
    is `engine.train.optimizer_step` on the first `config.batch_size` of `examples` (each of
    the step's grad_accum micro-batches the same), with the learning rates a run of
    warmup + steps steps would have (`engine.train.set_learning_rates`). CUDA events time a
    step on a GPU, perf_counter on the CPU. Raises what the step raises (out of memory
    included: `engine.train.is_out_of_memory` tells it apart).
    """
    import torch

    # Looked up on the module at each call: what runs is whatever engine.train holds.
    from engine import train as product

    started = time.perf_counter()
    training = product.setup_training(build(product.weights_dtype(config, device)), config,
                                      accelerator=accelerator, device=device, pad_id=pad_id)
    result.setup_s = time.perf_counter() - started
    result.trainable = _trainable_by_dtype(training.model)
    micro_batches = [(examples[:config.batch_size], media)] * training.accum
    total = warmup + steps
    warmup_steps = int(total * config.warmup_ratio)  # as train_lora derives it

    def step(index: int) -> Any:
        product.set_learning_rates(training.optimizer, index, total=total, warmup=warmup_steps,
                                   min_ratio=config.min_lr_ratio)
        stats = product.optimizer_step(training, micro_batches)
        result.losses.append(sum(stats.losses) / len(stats.losses))
        return stats

    for index in range(warmup):
        step(index)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(steps)]
        for index, (start, end) in enumerate(events, start=warmup):
            start.record()
            stats = step(index)
            end.record()
        torch.cuda.synchronize()
        result.step_seconds = [start.elapsed_time(end) / 1000 for start, end in events]
    else:
        for index in range(warmup, total):
            begun = time.perf_counter()
            stats = step(index)
            result.step_seconds.append(time.perf_counter() - begun)
    result.loss = result.losses[-1]
    result.tokens_per_step = stats.tokens * training.world
    result.samples_per_step = stats.samples * training.world


def bench_train(
    *,
    batch_sizes: list[int] = (1, 2, 4),  # type: ignore[assignment]
    checkpointing: list[bool] = (True, False),  # type: ignore[assignment]
    bf16: list[bool] = (True, False),  # type: ignore[assignment]
    steps: int = 8,
    warmup: int = 3,
    preset: str = "paper",
    overrides: dict[str, str] | None = None,
    peak_tflops: float | None = None,
    smoke: bool | None = None,
    layout: SampleLayout | None = None,
    budget_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainBenchResult:
    """Time the product's LoRA training step on a random-weight Video-LLaVA over a grid of
    batch sizes, gradient checkpointing and bf16 (each a TrainConfig: `preset`, then
    GRID_DEFAULTS and `overrides`, then the grid point's settings, all through
    `apply_overrides`).

    On CUDA: the Video-LLaVA-7B architecture; each configuration builds the model afresh (the
    same random weights), sets it up with `engine.train.setup_training` and runs `warmup`
    untimed then `steps` timed calls of `engine.train.optimizer_step` (CUDA events), reporting
    the median. Without CUDA, or with `smoke=True`, the scaled-down SMOKE architecture on the
    CPU, labelled as a smoke test, without MFU; bf16 is a CUDA setting (a CPU run is float32).

    A configuration that runs out of GPU memory (`engine.train.is_out_of_memory`) is reported
    as such and the grid goes on; larger batches of the same setting are skipped. Once
    `budget_s` seconds have passed, the remaining configurations are skipped. Raises
    BenchTrainError for an empty grid, non-positive counts, a bad preset or override.
    """
    problems = []
    if steps < 1:
        problems.append(f"--steps: expected at least 1, got {steps}")
    if warmup < 0:
        problems.append(f"--warmup: expected 0 or more, got {warmup}")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        problems.append(f"--batch-sizes: expected positive integers, got {list(batch_sizes)}")
    if not checkpointing:
        problems.append("--checkpointing: expected on, off or on,off, got nothing")
    if not bf16:
        problems.append("--bf16: expected on, off or on,off, got nothing")
    if peak_tflops is not None and peak_tflops <= 0:
        problems.append(f"--peak-tflops: expected a positive number, got {peak_tflops}")
    if problems:
        raise BenchTrainError("; ".join(problems))
    overrides = dict(overrides or {})
    base = base_config(preset, overrides)

    import accelerate
    import peft
    import torch
    import transformers

    from engine import train as product

    say = progress or (lambda message: None)
    started = time.perf_counter()
    cuda = torch.cuda.is_available() and not smoke
    smoke = not cuda
    device = "cuda" if cuda else "cpu"
    bf16 = list(bf16) if cuda else [False]
    arch = dataclasses.replace(SMOKE if smoke else VIDEO_LLAVA_7B, num_frames=base.num_frames)
    layout = layout or (SampleLayout(prompt_tokens=12, answer_tokens=20) if smoke
                        else SampleLayout())
    configs = {(b, c, f): grid_config(base, batch_size=b, checkpointing=c, bf16=f)
               for f in bf16 for c in checkpointing for b in batch_sizes}
    result = TrainBenchResult(smoke=smoke)

    if cuda:
        device_name = torch.cuda.get_device_name()
        if peak_tflops is None:
            peak_tflops, peak_source = detect_peak_tflops(device_name)
        else:
            peak_source = "given with --peak-tflops"
    else:
        device_name = f"CPU ({torch.get_num_threads()} threads)"
        peak_tflops, peak_source = None, "CPU smoke test: MFU omitted"

    say(f"encoding {max(batch_sizes)} synthetic videos with engine.train.encode_example")
    processor, arch = build_processor(arch)
    examples, media = synthetic_examples(processor, layout, max(batch_sizes),
                                         num_frames=arch.num_frames, frame_size=arch.frame_size,
                                         max_length=base.max_length)
    sample = examples[0]
    seq_len = len(sample.input_ids)
    video_tokens = sample.input_ids.count(processor.video_token_id)
    labelled = sum(label != product.IGNORE_INDEX for label in sample.labels)
    meta = build_model(arch, device="meta", dtype=torch.bfloat16)
    counts = count_parameters(meta)
    n_params = video_step_parameters(counts)
    lora_targets = sum(1 for n, m in meta.named_modules()
                       if ".language_model." in f".{n}." and isinstance(m, torch.nn.Linear))
    del meta
    accelerator = product.make_accelerator(device)
    world = accelerator.num_processes

    def build(dtype: Any) -> Any:
        torch.manual_seed(0)  # the same random weights for every configuration
        return build_model(arch, device=device, dtype=dtype)

    grid = [(f, c, b) for f in bf16 for c in checkpointing for b in batch_sizes]
    failed_at: int | None = None
    for index, (use_bf16, use_checkpointing, batch_size) in enumerate(grid):
        if index % len(batch_sizes) == 0:  # a new setting: its batches start afresh
            failed_at = None
        config = configs[(batch_size, use_checkpointing, use_bf16)]
        accum = config.accumulation(world)
        point = ConfigResult(checkpointing=use_checkpointing, batch_size=batch_size,
                             bf16=use_bf16, tokens_per_step=batch_size * accum * world * seq_len,
                             samples_per_step=batch_size * accum * world,
                             peak_tflops=peak_tflops, train_config=asdict(config))
        point.flops_per_step = flops_per_step(n_params, point.tokens_per_step)
        result.configs.append(point)
        if failed_at is not None and batch_size >= failed_at:
            point.status = f"skipped: batch {failed_at} ran out of memory"
            continue
        if budget_s is not None and time.perf_counter() - started > budget_s:
            point.status = f"skipped: time budget of {budget_s:g} s spent"
            continue
        say(f"timing {point.label()}")
        out_of_memory = False
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            time_configuration(point, config, build=build, accelerator=accelerator,
                               device=device, pad_id=processor.tokenizer.pad_token_id,
                               examples=examples, media=media, warmup=warmup, steps=steps)
        except Exception as exc:
            if not product.is_out_of_memory(exc):
                raise
            out_of_memory = True
        # Outside the except block, so the traceback's frames (and their activations) are
        # gone; accelerate holds the prepared model and optimizer until told to let go.
        accelerator.free_memory()
        gc.collect()
        if cuda:
            point.peak_memory_bytes = torch.cuda.max_memory_allocated()
            torch.cuda.empty_cache()
        if out_of_memory:
            point.status = "out of memory"
            point.step_seconds = []
            failed_at = batch_size
        say(f"  {point.label()}: {point.status}"
            + (f", {_fmt_seconds(point.median_s)} a step" if point.median_s else ""))

    set_up = next((c for c in result.configs if c.trainable), None)
    trainable = set_up.trainable if set_up else {"lora": {}, "projector": {}}

    def dtypes(part: dict[str, int]) -> str:
        return ", ".join(f"{_fmt_count(n)} {d}" for d, n in part.items()) or "-"

    settings = {**GRID_DEFAULTS, **overrides}
    accums = {c.accumulation(world) for c in configs.values()}
    if smoke:
        result.header.append(
            "SMOKE TEST: a scaled-down architecture (text hidden 256, 2 layers; vision 56 px), "
            "float32 on the CPU. It checks the code path; its numbers say nothing about "
            "Video-LLaVA-7B, and MFU is omitted.")
    result.header += [
        (f"ddft bench train · {device_name} · Python {sys.version.split()[0]} · "
         f"torch {torch.__version__} · transformers {transformers.__version__} · "
         f"peft {peft.__version__} · accelerate {accelerate.__version__}"),
        (f"model: {arch.name}"
         + ("" if smoke else " (LanguageBind/Video-LLaVA-7B-hf config: Vicuna-7B text model, "
            "CLIP ViT-L/14 224 px towers)")
         + f", random weights (the same for every configuration), {base.attention} attention; "
           f"each configuration built afresh on {device} and set up by "
           f"engine.train.setup_training"
         + (f" ({set_up.setup_s:.1f} s, not timed)" if set_up else "")),
        (f"parameters: {_fmt_count(counts['total'])} in all = language model "
         f"{_fmt_count(counts['language_model'])} + lm_head {_fmt_count(counts['lm_head'])} + "
         f"video tower {_fmt_count(counts['video_tower'])} + image tower "
         f"{_fmt_count(counts['image_tower'])} + projector {_fmt_count(counts['projector'])}"),
        (f"settings: preset {preset}, then "
         + ", ".join(f"{k}={v}" for k, v in settings.items())
         + " and each row's batch_size, gradient_checkpointing and bf16, through "
           "apply_overrides as `ddft train --set` applies them; every other setting is the "
           "preset's"),
        (f"LoRA (engine.train.setup_training, {preset} preset): r={base.lora_r}, "
         f"alpha={base.lora_alpha}, dropout {base.lora_dropout}, on all {lora_targets} linear "
         f"layers of the language model: {dtypes(trainable['lora'])}; projector trained in "
         f"full: {dtypes(trainable['projector'])}"),
        (f"sample: encoded by engine.train.encode_example, batched by engine.train.collate: "
         f"{arch.num_frames} frames of {arch.frame_size}×{arch.frame_size} → "
         f"{video_tokens:,} video tokens + {seq_len - video_tokens} text tokens = "
         f"{seq_len:,} tokens, {labelled} of them labelled (answer); no padding"),
        (f"step: engine.train.optimizer_step, the step train_lora runs: "
         + ("one micro-batch" if accums == {1} else
            f"{'/'.join(str(a) for a in sorted(accums))} micro-batches")
         + f" of forward + backward, gradient clipping at {base.max_grad_norm}, AdamW "
           f"({'fused' if cuda and base.fused_optimizer else 'for-each'}, LoRA lr "
           f"{base.learning_rate}, projector lr {base.projector_learning_rate}, weight decay "
           f"{base.weight_decay}), learning rates from engine.train.set_learning_rates as a run "
           f"of {warmup + steps} steps has them; {warmup} warm-up steps then {steps} timed "
           f"({'CUDA events' if cuda else 'perf_counter'}), median shown; gradient "
           f"checkpointing non-reentrant; bf16 on = frozen weights in bfloat16 and "
           f"torch.autocast(bf16) around the forward, trainable weights float32 (what earlier "
           f"versions of this benchmark called autocast on), off = float32 throughout; peak "
           f"mem = torch.cuda.max_memory_allocated over the configuration, weights and "
           f"optimizer state included"),
        FLOP_CONVENTION,
        (f"N_params = {n_params:,} (language model, lm_head, video tower, projector; the "
         f"image tower is not run for videos); tokens = samples per step × {seq_len:,}"),
        "peak: " + (f"{peak_tflops:g} TFLOP/s ({peak_source})" if peak_tflops
                    else peak_source),
    ]
    result.facts = {
        "device": device_name, "architecture": arch.name, "preset": preset,
        "overrides": settings, "parameters": counts, "n_params_flops": n_params,
        "lora_targets": lora_targets, "trainable": trainable, "seq_len": seq_len,
        "video_tokens": video_tokens, "prompt_tokens": seq_len - video_tokens - labelled,
        "answer_tokens": labelled, "steps": steps, "warmup": warmup,
        "peak_tflops": peak_tflops, "peak_source": peak_source,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__,
                     "accelerate": accelerate.__version__},
    }

    timed = [c for c in result.configs if c.mfu is not None]
    if timed:
        best = max(timed, key=lambda c: c.mfu or 0)
        verdict = "met" if (best.mfu or 0) >= MFU_TARGET else "MISSED"
        result.notes.append(
            f"target ≥ {MFU_TARGET:.0%} MFU (issue 4's, for one H100) on {device_name}: "
            f"{verdict}; best {best.mfu:.1%} "
            f"({best.label()}, {_fmt_rate(best.tokens_per_s)} tokens/s)")
    if smoke:
        result.notes.append("SMOKE TEST on the CPU: scaled-down architecture, MFU omitted.")
    result.notes.append(f"total time {time.perf_counter() - started:.0f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.bench_train`: the same benchmark as `ddft bench train`, without the
    CLI's libraries."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.bench_train",
        description="Time the product's LoRA training step on a random-weight Video-LLaVA-7B "
                    "with synthetic 8-frame videos (a scaled-down smoke test without CUDA).")
    parser.add_argument("--batch-sizes", default="1,2,4", help="comma-separated (default 1,2,4)")
    parser.add_argument("--checkpointing", default="on,off",
                        help="gradient checkpointing: on, off or on,off (default on,off)")
    parser.add_argument("--bf16", default="on,off",
                        help="the bf16 setting, CUDA only: on, off or on,off (default on,off)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--preset", default="paper",
                        help="training preset, a name or a .toml file (default paper)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides",
                        help="override one preset setting (repeat), as ddft train --set")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak dense bf16 TFLOP/s for MFU (default: from the device name)")
    parser.add_argument("--smoke", action="store_true",
                        help="the scaled-down CPU architecture even when CUDA is there")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip configurations that would start after this many seconds")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    try:
        result = bench_train(
            batch_sizes=parse_batch_sizes(args.batch_sizes),
            checkpointing=parse_switches("--checkpointing", args.checkpointing),
            bf16=parse_switches("--bf16", args.bf16),
            steps=args.steps, warmup=args.warmup, preset=args.preset,
            overrides=parse_overrides(args.overrides), peak_tflops=args.peak_tflops,
            smoke=True if args.smoke else None, budget_s=args.budget_s,
            progress=lambda message: print(f"  {message}", flush=True))
    except BenchTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in result.lines():
        print(line, flush=True)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def write_json(result: TrainBenchResult, path: Path) -> None:
    """Every number of `result` as JSON at `path`, written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
