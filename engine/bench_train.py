"""`ddft bench train`: LoRA training-step speed of the Video-LLaVA-7B architecture on synthetic videos.

Runs where only torch, transformers and peft are installed (`python -m engine.bench_train`), so it
imports nothing from the store, the media readers or the TUI, and torch only inside functions.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from db.errors import UserError

# The paper preset's LoRA (issue 4, part 2; Video-LLaVA's own LoRA recipe).
LORA_R = 128
LORA_ALPHA = 256
LORA_DROPOUT = 0.05
LEARNING_RATE = 2e-4
PROJECTOR_LEARNING_RATE = 2e-5
MAX_GRAD_NORM = 1.0

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


@dataclass
class SampleLayout:
    """One synthetic video sample: `USER: <video>\\n{prompt} ASSISTANT: {answer}</s>`."""

    video_tokens: int
    prompt_tokens: int = 44
    """Text tokens around the video: <s>, "USER:", "\\n", the question, "ASSISTANT:"."""
    answer_tokens: int = 200
    """Answer tokens and </s>: the only positions with labels."""

    @property
    def seq_len(self) -> int:
        return self.video_tokens + self.prompt_tokens + self.answer_tokens


def synthetic_batch(arch: Architecture, layout: SampleLayout, batch_size: int, *,
                    device: str, dtype: Any, seed: int = 0) -> dict[str, Any]:
    """Model inputs for `batch_size` equal-length video samples, as the processor and
    engine.train's collate would give them: the video token repeated once per visual feature,
    labels -100 on everything but the answer, no padding."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    head = 4  # <s> "USER" ":" then the video, then "\n", the question and "ASSISTANT:"
    text_ids = torch.randint(3, arch.image_token_index,
                             (batch_size, layout.prompt_tokens + layout.answer_tokens),
                             generator=gen)
    video = torch.full((batch_size, layout.video_tokens), arch.video_token_index)
    input_ids = torch.cat([text_ids[:, :head], video, text_ids[:, head:]], dim=1)
    input_ids[:, 0] = 1  # <s>
    labels = input_ids.clone()
    labels[:, : layout.seq_len - layout.answer_tokens] = -100
    pixels = torch.randn((batch_size, arch.num_frames, 3, arch.frame_size, arch.frame_size),
                         generator=gen)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": torch.ones_like(input_ids).to(device),
        "labels": labels.to(device),
        "pixel_values_videos": pixels.to(device, dtype),
    }


@dataclass
class ConfigResult:
    """One point of the grid: its settings, what happened, and the step times."""

    checkpointing: bool
    batch_size: int
    autocast: bool
    status: str = "ok"
    """ok, out of memory, or skipped: why."""
    step_seconds: list[float] = field(default_factory=list)
    tokens_per_step: int = 0
    peak_memory_bytes: int | None = None
    loss: float | None = None
    flops_per_step: float | None = None
    peak_tflops: float | None = None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.step_seconds) if self.step_seconds else None

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens_per_step / self.median_s if self.median_s else None

    @property
    def samples_per_s(self) -> float | None:
        return self.batch_size / self.median_s if self.median_s else None

    @property
    def mfu(self) -> float | None:
        if not self.median_s or self.flops_per_step is None or not self.peak_tflops:
            return None
        return model_flops_utilization(self.flops_per_step, self.median_s, self.peak_tflops)

    def label(self) -> str:
        return (f"checkpointing {'on' if self.checkpointing else 'off'}, "
                f"autocast {'on' if self.autocast else 'off'}, batch {self.batch_size}")

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
        head = ("ckpt", "autocast", "batch", "tokens/step", "step", "tokens/s", "samples/s",
                "peak mem", "MFU", "status")
        rows = [head]
        for c in self.configs:
            rows.append((
                "on" if c.checkpointing else "off", "on" if c.autocast else "off",
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


class BenchTrainError(UserError, ValueError):
    """A setting of the benchmark is not usable (an empty grid, a non-positive count)."""


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


def _train_step(model: Any, optimizer: Any, batch: dict[str, Any], autocast: bool,
                trainable: list[Any]) -> Any:
    import torch

    # Only asked for on CUDA: torch.autocast("cuda") warns on a machine without it.
    context = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else nullcontext()
    with context:
        loss = model(**batch, use_cache=False).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def set_checkpointing(model: Any, on: bool) -> None:
    """Turn non-reentrant gradient checkpointing of every decoder and vision layer on or off."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # transformers 5.2x renamed the switch; the device's 5.17 may only have the old name.
    if on:
        kwargs = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif hasattr(base, "activation_checkpointing_disable"):
        base.activation_checkpointing_disable()
    else:
        base.gradient_checkpointing_disable()


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` means the GPU ran out of memory: torch's own error, or a library's
    RuntimeError saying so (cuBLAS and some kernels allocate outside the caching allocator)."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text)


def _time_config(model: Any, result: ConfigResult, batch: dict[str, Any], *, cuda: bool,
                 warmup: int, steps: int) -> None:
    import torch

    lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    projector = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    # Two groups as engine.train has them; fused AdamW is one kernel launch for all tensors.
    optimizer = torch.optim.AdamW(
        [{"params": lora, "lr": LEARNING_RATE},
         {"params": projector, "lr": PROJECTOR_LEARNING_RATE}],
        weight_decay=0.0, fused=cuda)
    trainable = lora + projector
    for _ in range(warmup):
        _train_step(model, optimizer, batch, result.autocast, trainable)
    if cuda:
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(steps)]
        for start, end in events:
            start.record()
            loss = _train_step(model, optimizer, batch, result.autocast, trainable)
            end.record()
        torch.cuda.synchronize()
        result.step_seconds = [start.elapsed_time(end) / 1000 for start, end in events]
    else:
        for _ in range(steps):
            started = time.perf_counter()
            loss = _train_step(model, optimizer, batch, result.autocast, trainable)
            result.step_seconds.append(time.perf_counter() - started)
    result.loss = float(loss)


def bench_train(
    *,
    batch_sizes: list[int] = (1, 2, 4),  # type: ignore[assignment]
    checkpointing: list[bool] = (True, False),  # type: ignore[assignment]
    autocast: list[bool] = (True, False),  # type: ignore[assignment]
    steps: int = 8,
    warmup: int = 3,
    peak_tflops: float | None = None,
    smoke: bool | None = None,
    layout: SampleLayout | None = None,
    budget_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainBenchResult:
    """Time LoRA training steps of a random-weight Video-LLaVA over a grid of settings.

    On CUDA: the Video-LLaVA-7B architecture in bf16 with SDPA attention, LoRA attached by
    engine.model.loading.attach_lora with the paper preset, fused AdamW; each configuration runs
    `warmup` untimed then `steps` timed steps (CUDA events), and reports the median. Without
    CUDA, or with `smoke=True`, the scaled-down SMOKE architecture in float32 on the CPU,
    labelled as a smoke test, without MFU. Autocast applies on CUDA only.

    A configuration that runs out of GPU memory is reported as such and the grid goes on; larger
    batches of the same setting are skipped. Once `budget_s` seconds have passed, the remaining
    configurations are skipped. Raises BenchTrainError for an empty grid or non-positive counts.
    """
    import torch

    from engine.model.loading import attach_lora

    problems = []
    if steps < 1:
        problems.append(f"--steps: expected at least 1, got {steps}")
    if warmup < 0:
        problems.append(f"--warmup: expected 0 or more, got {warmup}")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        problems.append(f"--batch-sizes: expected positive integers, got {list(batch_sizes)}")
    if not checkpointing:
        problems.append("--checkpointing: expected on, off or on,off, got nothing")
    if peak_tflops is not None and peak_tflops <= 0:
        problems.append(f"--peak-tflops: expected a positive number, got {peak_tflops}")
    if problems:
        raise BenchTrainError("; ".join(problems))

    say = progress or (lambda message: None)
    started = time.perf_counter()
    cuda = torch.cuda.is_available() and not smoke
    smoke = not cuda
    arch = SMOKE if smoke else VIDEO_LLAVA_7B
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    autocast = list(autocast) if cuda else [False]
    if smoke:
        layout = layout or SampleLayout(arch.video_tokens, prompt_tokens=12, answer_tokens=20)
    else:
        layout = layout or SampleLayout(arch.video_tokens)
    result = TrainBenchResult(smoke=smoke)

    import peft
    import transformers

    if cuda:
        device_name = torch.cuda.get_device_name()
        if peak_tflops is None:
            peak_tflops, peak_source = detect_peak_tflops(device_name)
        else:
            peak_source = "given with --peak-tflops"
    else:
        device_name = f"CPU ({torch.get_num_threads()} threads)"
        peak_tflops, peak_source = None, "CPU smoke test: MFU omitted"

    say(f"building {arch.name} with random weights on {device} ({dtype}) (not timed)")
    torch.manual_seed(0)
    build_started = time.perf_counter()
    model = build_model(arch, device=device, dtype=dtype)
    build_s = time.perf_counter() - build_started
    counts = count_parameters(model)
    n_params = video_step_parameters(counts)
    lora_targets = sum(1 for n, m in model.named_modules()
                       if ".language_model." in f".{n}." and isinstance(m, torch.nn.Linear))
    model = attach_lora(model, r=LORA_R, alpha=LORA_ALPHA, dropout=LORA_DROPOUT)
    model.train()
    trainable: dict[str, dict[str, int]] = {"lora": {}, "projector": {}}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = trainable["lora" if "lora_" in name else "projector"]
            key = str(param.dtype).removeprefix("torch.")
            part[key] = part.get(key, 0) + param.numel()

    def dtypes(part: dict[str, int]) -> str:
        return ", ".join(f"{_fmt_count(n)} {d}" for d, n in part.items())

    if smoke:
        result.header.append(
            "SMOKE TEST: a scaled-down architecture (text hidden 256, 2 layers; vision 56 px), "
            "float32 on the CPU. It checks the code path; its numbers say nothing about "
            "Video-LLaVA-7B, and MFU is omitted.")
    result.header += [
        (f"ddft bench train · {device_name} · Python {sys.version.split()[0]} · "
         f"torch {torch.__version__} · transformers {transformers.__version__} · "
         f"peft {peft.__version__}"),
        (f"model: {arch.name}"
         + ("" if smoke else " (LanguageBind/Video-LLaVA-7B-hf config: Vicuna-7B text model, "
            "CLIP ViT-L/14 224 px towers)")
         + f", random weights, {str(dtype).removeprefix('torch.')}, SDPA attention, "
           f"built on {device} in {build_s:.1f} s"),
        (f"parameters: {_fmt_count(counts['total'])} in all = language model "
         f"{_fmt_count(counts['language_model'])} + lm_head {_fmt_count(counts['lm_head'])} + "
         f"video tower {_fmt_count(counts['video_tower'])} + image tower "
         f"{_fmt_count(counts['image_tower'])} + projector {_fmt_count(counts['projector'])}"),
        (f"LoRA (attach_lora, paper preset): r={LORA_R}, alpha={LORA_ALPHA}, dropout "
         f"{LORA_DROPOUT}, on all {lora_targets} linear layers of the language model: "
         f"{dtypes(trainable['lora'])}; projector trained in full: "
         f"{dtypes(trainable['projector'])}"),
        (f"sample: {arch.num_frames} frames of {arch.frame_size}×{arch.frame_size} → "
         f"{arch.video_tokens:,} video tokens + {layout.prompt_tokens + layout.answer_tokens} "
         f"text tokens = {layout.seq_len:,} tokens, {layout.answer_tokens} of them labelled "
         f"(answer); no padding"),
        (f"step: forward + backward + gradient clipping at {MAX_GRAD_NORM} + AdamW "
         f"({'fused' if cuda else 'for-each'}, LoRA lr {LEARNING_RATE}, projector lr "
         f"{PROJECTOR_LEARNING_RATE}); {warmup} warm-up steps "
         f"then {steps} timed ({'CUDA events' if cuda else 'perf_counter'}), median shown; "
         f"gradient checkpointing non-reentrant; autocast = torch.autocast(bf16) around the "
         f"forward, as engine.train does with bf16 on (LoRA weights stay float32 either "
         f"way); peak mem = "
         f"torch.cuda.max_memory_allocated over the configuration, weights and optimizer "
         f"state included"),
        FLOP_CONVENTION,
        (f"N_params = {n_params:,} (language model, lm_head, video tower, projector; the "
         f"image tower is not run for videos); tokens = batch × {layout.seq_len:,}"),
        "peak: " + (f"{peak_tflops:g} TFLOP/s ({peak_source})" if peak_tflops
                    else peak_source),
    ]
    result.facts = {
        "device": device_name, "architecture": arch.name, "dtype": str(dtype),
        "parameters": counts, "n_params_flops": n_params, "lora_targets": lora_targets,
        "trainable": trainable, "seq_len": layout.seq_len, "video_tokens": arch.video_tokens,
        "prompt_tokens": layout.prompt_tokens, "answer_tokens": layout.answer_tokens,
        "steps": steps, "warmup": warmup, "peak_tflops": peak_tflops,
        "peak_source": peak_source, "build_s": build_s,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
    }

    for use_autocast in autocast:
        for use_checkpointing in checkpointing:
            set_checkpointing(model, use_checkpointing)
            failed_at: int | None = None
            for batch_size in batch_sizes:
                config = ConfigResult(checkpointing=use_checkpointing, batch_size=batch_size,
                                      autocast=use_autocast,
                                      tokens_per_step=batch_size * layout.seq_len,
                                      peak_tflops=peak_tflops)
                config.flops_per_step = flops_per_step(n_params, config.tokens_per_step)
                result.configs.append(config)
                if failed_at is not None and batch_size >= failed_at:
                    config.status = f"skipped: batch {failed_at} ran out of memory"
                    continue
                if budget_s is not None and time.perf_counter() - started > budget_s:
                    config.status = f"skipped: time budget of {budget_s:g} s spent"
                    continue
                say(f"timing {config.label()}")
                out_of_memory = False
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                try:
                    batch = synthetic_batch(arch, layout, batch_size, device=device,
                                            dtype=dtype)
                    _time_config(model, config, batch, cuda=cuda, warmup=warmup, steps=steps)
                except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
                    if not is_out_of_memory(exc):
                        raise
                    out_of_memory = True
                batch = None
                if cuda:
                    config.peak_memory_bytes = torch.cuda.max_memory_allocated()
                if out_of_memory:
                    # Outside the except block, so the traceback's frames (and their
                    # activations) are already gone when the cache is emptied.
                    config.status = "out of memory"
                    config.step_seconds = []
                    failed_at = batch_size
                    model.zero_grad(set_to_none=True)
                    gc.collect()
                    torch.cuda.empty_cache()
                say(f"  {config.label()}: {config.status}"
                    + (f", {_fmt_seconds(config.median_s)} a step" if config.median_s else ""))

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
    """`python -m engine.bench_train`: the same benchmark as `ddft bench train`, needing only
    torch, transformers and peft (for machines without the rest of ddft's dependencies)."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.bench_train",
        description="Time LoRA training steps of a random-weight Video-LLaVA-7B on synthetic "
                    "8-frame videos (a scaled-down smoke test without CUDA).")
    parser.add_argument("--batch-sizes", default="1,2,4", help="comma-separated (default 1,2,4)")
    parser.add_argument("--checkpointing", default="on,off",
                        help="gradient checkpointing: on, off or on,off (default on,off)")
    parser.add_argument("--autocast", default="on,off",
                        help="torch.autocast(bf16) around the forward, CUDA only: on, off or "
                             "on,off (default on,off)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
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
            autocast=parse_switches("--autocast", args.autocast),
            steps=args.steps, warmup=args.warmup, peak_tflops=args.peak_tflops,
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
