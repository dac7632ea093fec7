"""Reading media: uniformly sampled video frames with their timestamps (decord), and images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db.errors import UserError
from engine.evaluation.frames import DEFAULT_FRAMES, uniform_indices  # noqa: F401 (re-exported)


class MediaError(UserError, ValueError):
    """A media file is missing, unreadable, or too short for the frames asked of it."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    n_frames: int
    fps: float

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True)
class SampledFrames:
    """Frames taken from a video, with where they were taken."""

    frames: np.ndarray  # (n, height, width, 3) uint8 RGB
    indices: list[int]
    times: list[float]  # seconds from the start of the video, one per frame
    fps: float
    duration_s: float


def _open(path: str | os.PathLike[str]):
    # decord is imported here so that `ddft --help` and the workbench never load it.
    import decord

    file = Path(path)
    if not file.is_file():
        raise MediaError(f"{file}: video file not found")
    try:
        return decord.VideoReader(str(file), ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # decord raises its own DECORDError with a C++ trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MediaError(f"{file}: cannot read video ({first})") from None


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count and frame rate of a video. Raises MediaError when it cannot be read."""
    reader = _open(path)
    return VideoInfo(path=str(path), n_frames=len(reader), fps=float(reader.get_avg_fps()))


def sample_frames(path: str | os.PathLike[str], n: int = DEFAULT_FRAMES) -> SampledFrames:
    """`n` uniformly spaced RGB frames of a video with their indices and timestamps.

    Raises MediaError when the file is missing, cannot be decoded, or has fewer than `n` frames.
    """
    reader = _open(path)
    total = len(reader)
    if total < n:
        raise MediaError(f"{path}: video too short: {n} frames needed, it has {total}")
    fps = float(reader.get_avg_fps()) or 1.0
    indices = uniform_indices(total, n)
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MediaError(f"{path}: cannot decode frames ({first})") from None
    times = [round(i / fps, 3) for i in indices]
    return SampledFrames(
        frames=frames, indices=indices, times=times, fps=fps, duration_s=total / fps
    )


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image as an (height, width, 3) uint8 RGB array. Raises MediaError when unreadable."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise MediaError(f"{file}: image file not found")
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"{file}: cannot read image ({exc})") from None


def check_media(path: str | os.PathLike[str], modality: str, n: int = DEFAULT_FRAMES) -> None:
    """Open an image or a video far enough to know it can be read, without decoding pixels: an
    image's header is verified, a video's container opened and its frames counted (at least
    `n`). Raises MediaError naming the file otherwise."""
    if modality == "video":
        reader = _open(path)
        if len(reader) < n:
            raise MediaError(f"{path}: video too short: {n} frames needed, it has {len(reader)}")
        return
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise MediaError(f"{file}: image file not found")
    try:
        with Image.open(file) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MediaError(f"{file}: cannot read image ({exc})") from None
