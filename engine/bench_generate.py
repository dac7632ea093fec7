"""`ddft bench generate`: batched against one-at-a-time video generation, at a fixed output length."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from db.errors import UserError

CPU_SPEEDUP_TARGET = 3.0  # issue 5: on CPU with the tiny model, batch 8 ≥ 3× faster per video
GPU_TARGET_PER_MIN = 100.0  # issue 5: ≥ 100 videos/min on one H100 (the 408-video eval in 4 min)
PROMPT = "Write the recipe for the dish cooked in this video."

# The tiny model's tokenizer is trained on these; on a GPU it also serves the 7B architecture,
# whose random weights make the vocabulary irrelevant to the timing.
CORPUS = [
    ("Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\n- 1/2 tsp salt\nSteps:\n"
    "1. Simmer the tomatoes for 20 minutes.\n2. Blend until smooth."),
    ("Dish: Green Salad\nIngredients:\n- 2 cups lettuce\n- 1 tbsp olive oil\nSteps:\n"
    "1. Wash the lettuce.\n2. Toss with the oil."),
    PROMPT,
    "How long should I rest a steak? About 5 to 10 minutes.",
]


class BenchGenerateError(UserError, RuntimeError):
    """The benchmark cannot run as asked (a bad batch size, too few videos, a short output)."""


@dataclass
class BatchTiming:
    """One batch size's timed run over every video."""

    batch_size: int
    videos: int
    new_tokens: int  # per video, forced
    seconds: float

    @property
    def s_per_video(self) -> float:
        return self.seconds / self.videos

    @property
    def videos_per_min(self) -> float:
        return 60.0 * self.videos / self.seconds


@dataclass
class GenerateBenchResult:
    model: str  # what was timed, in words
    device: str
    cuda: bool
    timings: list[BatchTiming] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def timing(self, batch_size: int) -> BatchTiming | None:
        return next((t for t in self.timings if t.batch_size == batch_size), None)

    def speedup(self, batch_size: int) -> float | None:
        """Seconds per video at batch 1 over seconds per video at `batch_size`."""
        one, other = self.timing(1), self.timing(batch_size)
        if one is None or other is None:
            return None
        return one.s_per_video / other.s_per_video

    def target_lines(self) -> list[str]:
        if self.cuda:
            best = max(self.timings, key=lambda t: t.videos_per_min)
            met = "met" if best.videos_per_min >= GPU_TARGET_PER_MIN else "MISSED"
            return [(f"target ≥ {GPU_TARGET_PER_MIN:.0f} videos/min on one H100: "
                    f"{best.videos_per_min:.1f} videos/min at batch {best.batch_size}: {met}")]
        lines = []
        for t in self.timings:
            if t.batch_size == 1:
                continue
            ratio = self.speedup(t.batch_size)
            if ratio is None:
                continue
            mark = ""
            if t.batch_size == 8:
                mark = (f"  target ≥ {CPU_SPEEDUP_TARGET:.0f}×: "
                        f"{'met' if ratio >= CPU_SPEEDUP_TARGET else 'MISSED'}")
            lines.append(f"speed-up per video, batch {t.batch_size} over batch 1: "
                         f"{ratio:.2f}×{mark}")
        if self.timing(1) is None or self.timing(8) is None:
            lines.append(f"target (batch 8 ≥ {CPU_SPEEDUP_TARGET:.0f}× faster per video than "
                         "batch 1): not measured, needs batch sizes 1 and 8")
        return lines

    def table(self) -> list[str]:
        rows = [(f"{'batch':>5}  {'videos':>6}  {'new tokens':>10}  {'total':>9}  "
                f"{'s/video':>8}  {'videos/min':>10}  {'speed-up':>8}")]
        for t in self.timings:
            ratio = self.speedup(t.batch_size)
            rows.append(f"{t.batch_size:>5}  {t.videos:>6}  {t.new_tokens:>10}  "
                        f"{t.seconds:>8.2f}s  {t.s_per_video:>8.3f}  {t.videos_per_min:>10.1f}  "
                        f"{'—' if ratio is None else f'{ratio:.2f}×':>8}")
        return rows

    def lines(self) -> list[str]:
        """Everything to print: what was timed, the targets, then the table last."""
        return [f"model: {self.model}", f"device: {self.device}", *self.notes,
                *self.target_lines(), *self.table()]


def parse_batch_sizes(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]. Raises BenchGenerateError naming a size that is not a positive
    whole number."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise BenchGenerateError(f"--batch-sizes: expected positive whole numbers separated "
                                     f"by commas, found {part!r}")
        sizes.append(int(part))
    if not sizes:
        raise BenchGenerateError("--batch-sizes: no batch size given")
    return sorted(set(sizes))


def write_bench_video(path: Path, *, seed: int, n_frames: int = 8, size: int = 64) -> Path:
    """A `size`² H.264 clip of `n_frames` noisy frames of one colour, written with PyAV."""
    # av and numpy are imported here: only the benchmark writes videos.
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    colour = rng.integers(30, 225, size=3)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for _ in range(n_frames):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            frame = np.clip(colour[None, None, :] + noise, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _load_tiny(folder: Path, device: str):
    from engine.model.loading import load_model
    from engine.model.tiny import build_tiny_model

    build_tiny_model(folder / "tiny-model", CORPUS, seed=0)
    return load_model(str(folder / "tiny-model"), device=device)


def _load_7b(folder: Path, device: str):
    """The Video-LLaVA-7B architecture with random bf16 weights, and a processor whose
    tokenizer is the tiny one (its special-token ids are written into the config; the vocabulary
    stays 32,064, so the output head is the 7B one)."""
    import torch
    from transformers import (
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    from engine.bench_train import VIDEO_LLAVA_7B, build_model
    from engine.model.loading import LoadedModel
    from engine.model.tiny import PATCH_SIZE, _train_tokenizer

    tokenizer = _train_tokenizer(CORPUS)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "</s>", "<pad>", "<image>",
                                                              "<video>")}
    arch = dataclasses.replace(VIDEO_LLAVA_7B, image_token_index=ids["<image>"],
                               video_token_index=ids["<video>"], pad_token_id=ids["<pad>"])
    model = build_model(arch, device=device, dtype=torch.bfloat16)
    model.eval()
    model.generation_config.bos_token_id = ids["<s>"]
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    frame = {"size": {"shortest_edge": arch.frame_size},
             "crop_size": {"height": arch.frame_size, "width": arch.frame_size}}
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(**frame),
        video_processor=VideoLlavaVideoProcessor(**frame),
        tokenizer=tokenizer, patch_size=PATCH_SIZE, vision_feature_select_strategy="default",
        num_additional_image_tokens=1)
    return LoadedModel(model=model, processor=processor, device=device, dtype=torch.bfloat16)


def bench_generate(
    *,
    videos: int | None = None,
    batch_sizes: list[int] | None = None,
    new_tokens: int | None = None,
    smoke: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> GenerateBenchResult:
    """Time `engine.generate.generate` over the same `videos` synthetic 8-frame videos at each
    batch size, every answer forced to exactly `new_tokens` tokens (min_new_tokens ==
    max_new_tokens, so end-of-sequence never stops a row early). Each batch size gets one
    untimed warm-up batch first. Frame decoding and preprocessing are inside the timing, as they
    are in `ddft generate`.

    Without a GPU (or with `smoke`): the tiny model on CPU, defaults 16 videos, batch 1, 8, 16,
    32 new tokens. With a GPU: the Video-LLaVA-7B architecture with random bf16 weights,
    defaults 64 videos, batch 1, 8, 32, 128 new tokens.

    Raises BenchGenerateError for a bad size, or when a row's output length is not the one
    forced.
    """
    # torch is imported here: `ddft --help` must not wait for it.
    import torch

    from engine.generate import GenRequest, generate

    say = progress or (lambda message: None)
    cuda = torch.cuda.is_available() and not smoke
    videos = videos if videos is not None else (64 if cuda else 16)
    batch_sizes = sorted(set(batch_sizes or ([1, 8, 32] if cuda else [1, 8, 16])))
    new_tokens = new_tokens if new_tokens is not None else (128 if cuda else 32)
    if videos < 1 or new_tokens < 1 or min(batch_sizes) < 1:
        raise BenchGenerateError("videos, batch sizes and new tokens must all be at least 1")
    device = "cuda" if cuda else "cpu"
    with tempfile.TemporaryDirectory(prefix="ddft-bench-generate-") as tmp:
        folder = Path(tmp)
        say(f"writing {videos} synthetic 8-frame videos (not timed)")
        paths = [write_bench_video(folder / f"video-{i:03d}.mp4", seed=i) for i in range(videos)]
        if cuda:
            say("building Video-LLaVA-7B with random bf16 weights on the GPU (not timed)")
            loaded = _load_7b(folder, device)
            name = "Video-LLaVA-7B architecture, random weights, bf16, SDPA"
            where = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
        else:
            say("building the tiny model on CPU (not timed)")
            loaded = _load_tiny(folder, device)
            name = "tiny Video-LLaVA (engine.model.tiny), float32"
            where = f"CPU, {torch.get_num_threads()} threads"
        # Forces every row to exactly new_tokens: generate() passes max_new_tokens and takes
        # everything else from the model's generation config.
        loaded.model.generation_config.min_new_tokens = new_tokens
        requests = [GenRequest(sample_id=i, modality="video", prompt=PROMPT, media_path=str(p))
                    for i, p in enumerate(paths)]
        result = GenerateBenchResult(model=name, device=where, cuda=cuda)
        for batch_size in batch_sizes:
            say(f"batch {batch_size}: warm-up batch, then {videos} videos timed")
            list(generate(loaded, requests[:batch_size], batch_size=batch_size,
                          max_new_tokens=new_tokens))
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs = list(generate(loaded, requests, batch_size=batch_size,
                                    max_new_tokens=new_tokens))
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            lengths = {o.n_tokens for o in outputs}
            if len(outputs) != videos or lengths != {new_tokens}:
                raise BenchGenerateError(
                    f"batch {batch_size}: expected {videos} answers of {new_tokens} tokens, got "
                    f"{len(outputs)} of lengths {sorted(lengths)}")
            result.timings.append(BatchTiming(batch_size, videos, new_tokens, seconds))
        del loaded
    result.notes.append(
        f"{videos} synthetic 64x64 8-frame H.264 videos, one prompt, greedy, exactly "
        f"{new_tokens} new tokens per video (min_new_tokens = max_new_tokens); timed: "
        "engine.generate.generate end to end (frame decoding, preprocessing, generation), "
        "after one untimed warm-up batch per batch size")
    return result

