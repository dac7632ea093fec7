"""LoRA fine-tuning of Video-LLaVA on per-modality examples: a plain loop with checkpoints and callbacks."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from engine.media import DEFAULT_FRAMES
from engine.model.loading import MODALITIES, format_prompt

if TYPE_CHECKING:  # annotations only: torch is imported inside the functions that run
    import torch

IGNORE_INDEX = -100
CONFIG_FILE = "train_config.json"

Modality = Literal["image", "video", "text"]


class TrainError(ValueError):
    """Training cannot start: a bad setting, an empty or malformed example list."""


@dataclass
class TrainExample:
    """One instruction example: a prompt about an image, a video or nothing, and the answer."""

    modality: Modality
    prompt: str
    answer: str
    media_path: str | None
    sample_id: int | None = None


@dataclass
class TrainConfig:
    """Hyper-parameters of a LoRA run. Stored as train_config.json in every checkpoint."""

    lora_r: int = 16
    """LoRA rank on every linear layer of the language model."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    learning_rate: float = 2e-4
    """Peak learning rate of the LoRA weights."""
    projector_learning_rate: float = 2e-5
    """Peak learning rate of the multimodal projector, which is trained in full."""
    weight_decay: float = 0.0
    """AdamW weight decay, for both groups."""
    max_steps: int | None = None
    """Optimizer steps to run; when None, `epochs` passes over the data decide."""
    epochs: int = 1
    """Passes over the examples when `max_steps` is None."""
    batch_size: int = 4
    """Examples per micro-batch (one modality per batch)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming the learning rate up linearly from zero."""
    min_lr_ratio: float = 0.1
    """The cosine schedule ends at this fraction of the peak learning rates."""
    max_grad_norm: float = 1.0
    """Gradient clipping over all trainable parameters; 0 turns it off."""
    seed: int = 0
    """Seeds LoRA initialisation, dropout and the data order."""
    num_frames: int = DEFAULT_FRAMES
    """Frames sampled uniformly from each video (Video-LLaVA needs 8)."""
    max_length: int | None = None
    """Longest sequence in tokens, media placeholders included; longer answers are cut.
    None keeps every token."""
    save_every: int = 0
    """Write step-NNNNNN/ checkpoints every this many optimizer steps; 0 writes only final/."""
    log_every: int = 1
    """Report loss, learning rate and throughput every this many optimizer steps."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the checkpoint (the run id, the data version)."""

    def problems(self) -> list[str]:
        """Every invalid setting, each as `field: expected ..., got ...`."""
        out: list[str] = []

        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                out.append(f"{name}: expected {expected}, got {getattr(self, name)!r}")

        need(self.lora_r >= 1, "lora_r", "an integer >= 1")
        need(self.lora_alpha > 0, "lora_alpha", "a number > 0")
        need(0 <= self.lora_dropout < 1, "lora_dropout", "a number in [0, 1)")
        need(self.learning_rate > 0, "learning_rate", "a number > 0")
        need(
            self.projector_learning_rate >= 0,
            "projector_learning_rate",
            "a number >= 0",
        )
        need(
            self.max_steps is None or self.max_steps >= 1,
            "max_steps",
            "None or an integer >= 1",
        )
        need(self.epochs >= 1, "epochs", "an integer >= 1")
        need(self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(self.grad_accum >= 1, "grad_accum", "an integer >= 1")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio", "a number in [0, 1)")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "a number in [0, 1]")
        need(self.num_frames >= 1, "num_frames", "an integer >= 1")
        need(
            self.max_length is None or self.max_length >= 8,
            "max_length",
            "None or >= 8",
        )
        need(self.save_every >= 0, "save_every", "an integer >= 0")
        need(self.log_every >= 1, "log_every", "an integer >= 1")
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from stored values; keys that are not fields are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


class TrainCallbacks(Protocol):
    """What a training run reports to (a console progress bar, the job table)."""

    def on_start(self, total_steps: int) -> None: ...

    def log(self, step: int, values: dict[str, float]) -> None:
        """`values` holds loss, lr, projector_lr, grad_norm, samples_per_s, tokens_per_s."""

    def should_stop(self) -> bool:
        """True to cancel: the run saves a checkpoint of where it is and returns."""

    def on_checkpoint(self, step: int, path: Path, final: bool) -> None: ...


@dataclass
class TrainResult:
    adapter_dir: (
        Path  # the last checkpoint written: final/, or step-NNNNNN/ when stopped
    )
    steps: int
    final_loss: float  # mean loss over the last logging window
    stopped: bool  # True when should_stop() ended the run early


@dataclass
class EncodedExample:
    """An example as token ids, with labels that keep only the answer."""

    modality: str
    input_ids: list[int]
    labels: list[int]
    media_path: str | None


def lr_at(
    step: int, *, peak: float, total: int, warmup: int, min_ratio: float
) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine to
    `min_ratio * peak` at the last step."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    return peak * (
        min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def load_media(
    processor: Any, examples: list[TrainExample], num_frames: int
) -> dict[str, dict[str, Any]]:
    """Pixel inputs for every distinct media file, each decoded once: path -> processor output
    without text (`pixel_values_videos` or `pixel_values`).

    Raises MediaError naming the first file that is missing or unreadable, or TrainError when a
    video or image example has no media path.
    """
    from engine.media import load_image, sample_frames

    media: dict[str, dict[str, Any]] = {}
    for index, example in enumerate(examples):
        if example.modality == "text":
            continue
        if not example.media_path:
            raise TrainError(
                f"example {index} ({example.modality}): media_path is empty"
            )
        if example.media_path in media:
            continue
        if example.modality == "video":
            frames = sample_frames(example.media_path, n=num_frames).frames
            out = processor.video_processor(videos=[frames], return_tensors="pt")
            media[example.media_path] = {
                "pixel_values_videos": out["pixel_values_videos"][0]
            }
        else:
            image = load_image(example.media_path)
            out = processor.image_processor(
                images=[image], return_tensors="pt", return_legacy_image_output=False
            )
            media[example.media_path] = {"pixel_values": out["pixel_values"][0]}
    return media


def encode_example(
    processor: Any,
    example: TrainExample,
    media: dict[str, Any] | None,
    max_length: int | None = None,
) -> EncodedExample:
    """Token ids of `format_prompt(...) + " " + answer + eos`, with every prompt token (media
    placeholders included) labelled -100 so that only the answer and eos are learned.

    `media` is the example's entry from `load_media` (None for text). Raises TrainError when the
    prompt alone is longer than `max_length`.
    """
    tokenizer = processor.tokenizer
    prompt_text = format_prompt(example.modality, example.prompt)
    token = {"video": processor.video_token, "image": processor.image_token}.get(
        example.modality
    )
    if token is not None:
        # The processor's own rule for how many placeholders one image/video becomes.
        kind = "pixel_values_videos" if example.modality == "video" else "pixel_values"
        inputs = {kind: media[kind][None]}
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
    if max_length is not None and len(input_ids) > max_length:
        if n_prompt >= max_length:
            raise TrainError(
                f"sample {example.sample_id}: prompt is {n_prompt} tokens, max_length is {max_length}"
            )
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return EncodedExample(example.modality, input_ids, labels, example.media_path)


def plan_batches(
    encoded: list[EncodedExample], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """One epoch of batches as example indices: shuffled within each modality, cut into
    batches that never mix modalities, and the batches shuffled together."""
    batches: list[list[int]] = []
    for modality in MODALITIES:
        indices = [i for i, e in enumerate(encoded) if e.modality == modality]
        rng.shuffle(indices)
        batches += [
            indices[i : i + batch_size] for i in range(0, len(indices), batch_size)
        ]
    rng.shuffle(batches)
    return batches


def collate(
    batch: list[EncodedExample], media: dict[str, dict[str, Any]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Model inputs for one batch, padded on the right (training needs no left padding)."""
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
    return inputs


def save_checkpoint(model: Any, folder: Path, record: dict[str, Any]) -> Path:
    """Write the adapter (LoRA weights and the trained projector) and train_config.json to
    `folder`, through a temporary sibling renamed into place so a crash never leaves a folder
    that looks complete. An existing `folder` is replaced. Raises OSError when it cannot."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def train_lora(
    *,
    base: str,
    examples: list[TrainExample],
    out_dir: Path,
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    device: str | None = None,
) -> TrainResult:
    """LoRA-tune `base` on `examples` and write checkpoints under `out_dir`.

    Supports video, image and text examples in one run (each batch holds one modality), gradient
    accumulation, linear warmup then a cosine schedule with separate learning rates for LoRA and
    the projector, step-NNNNNN/ checkpoints every `save_every` steps and final/ at the end, and
    cancellation through `callbacks.should_stop()` (a checkpoint is written, then it returns with
    `stopped=True`). Every media file is read before the first step.

    Raises TrainError for bad settings or examples (all problems in one message), MediaError
    naming an unreadable media file, ModelLoadError when `base` cannot be opened.
    """
    import torch

    from engine.model.loading import attach_lora, load_model

    problems = config.problems()
    for index, example in enumerate(examples):
        if example.modality not in MODALITIES:
            problems.append(
                f"example {index}: modality must be image, video or text, got {example.modality!r}"
            )
        if not example.answer.strip():
            problems.append(f"example {index}: the answer is empty")
    if not examples:
        problems.append("examples: expected at least one, got none")
    if problems:
        raise TrainError("cannot train: " + "; ".join(problems))

    loaded = load_model(base, device=device)
    processor, model = loaded.processor, loaded.model
    media = load_media(processor, examples, config.num_frames)
    encoded = [
        encode_example(processor, e, media.get(e.media_path or ""), config.max_length)
        for e in examples
    ]

    rng = random.Random(config.seed)
    batches_per_epoch = len(
        plan_batches(encoded, config.batch_size, random.Random(config.seed))
    )
    total_steps = config.max_steps or max(
        1, config.epochs * batches_per_epoch // config.grad_accum
    )
    warmup = int(total_steps * config.warmup_ratio)

    torch.manual_seed(config.seed)
    model = attach_lora(
        model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout
    )
    model.train()
    lora_params = [
        p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n
    ]
    projector_params = [
        p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n
    ]
    optimizer = torch.optim.AdamW(
        [
            {
                "params": lora_params,
                "lr": config.learning_rate,
                "peak": config.learning_rate,
            },
            {
                "params": projector_params,
                "lr": config.projector_learning_rate,
                "peak": config.projector_learning_rate,
            },
        ],
        weight_decay=config.weight_decay,
    )
    trainable = lora_params + projector_params
    pad_id = processor.tokenizer.pad_token_id
    record = {"base": str(base), "config": asdict(config), "n_examples": len(examples)}
    out_dir = Path(out_dir)

    def checkpoint(step: int, final: bool) -> Path:
        name = "final" if final else step_dir_name(step)
        path = save_checkpoint(
            model, out_dir / name, {**record, "step": step, "final": final}
        )
        if callbacks:
            callbacks.on_checkpoint(step, path, final)
        return path

    if callbacks:
        callbacks.on_start(total_steps)

    def micro_batches():
        while True:
            for batch in plan_batches(encoded, config.batch_size, rng):
                yield [encoded[i] for i in batch]

    stream = micro_batches()
    window_loss, window_n, window_samples, window_tokens = 0.0, 0, 0, 0
    window_start = time.perf_counter()
    last_loss = float("nan")
    step = 0
    while step < total_steps:
        if callbacks and callbacks.should_stop():
            path = checkpoint(step, final=False)
            return TrainResult(path, step, last_loss, stopped=True)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(
                step,
                peak=group["peak"],
                total=total_steps,
                warmup=warmup,
                min_ratio=config.min_lr_ratio,
            )
        for _ in range(config.grad_accum):
            batch = next(stream)
            inputs = {
                k: v.to(loaded.device, loaded.dtype)
                if v.is_floating_point()
                else v.to(loaded.device)
                for k, v in collate(batch, media, pad_id).items()
            }
            loss = model(**inputs).loss
            (loss / config.grad_accum).backward()
            window_loss += loss.item()
            window_n += 1
            window_samples += len(batch)
            window_tokens += int(inputs["attention_mask"].sum())
        grad_norm = 0.0
        if config.max_grad_norm > 0:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        if step % config.log_every == 0 or step == total_steps:
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            last_loss = window_loss / window_n
            if callbacks:
                callbacks.log(
                    step,
                    {
                        "loss": last_loss,
                        "lr": optimizer.param_groups[0]["lr"],
                        "projector_lr": optimizer.param_groups[1]["lr"],
                        "grad_norm": grad_norm,
                        "samples_per_s": window_samples / elapsed,
                        "tokens_per_s": window_tokens / elapsed,
                    },
                )
            window_loss, window_n, window_samples, window_tokens = 0.0, 0, 0, 0
            window_start = time.perf_counter()
        if config.save_every and step % config.save_every == 0 and step < total_steps:
            checkpoint(step, final=False)

    path = checkpoint(step, final=True)
    return TrainResult(path, step, last_loss, stopped=False)
