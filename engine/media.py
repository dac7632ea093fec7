"""Reading media: video frames with their timestamps (decord where it installs, PyAV elsewhere
or when $DDFT_VIDEO_READER asks), images, why a decoder refused one."""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from db.errors import UserError
from engine.evaluation.frames import DEFAULT_FRAMES, uniform_indices  # noqa: F401 (re-exported)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
"""The containers a video is found by on disk, in the order a lookup prefers them: those the
decoder (decord's ffmpeg) reads. Every importer that looks for a video by name uses this list."""


class MediaError(UserError, ValueError):
    """A media file is missing, unreadable, or too short for the frames asked of it."""


NO_INDEX = ("the file is incomplete: it has no index (moov atom), as when a download or recording "
            "did not finish")
# What decoders say, most telling first, and the likely cause in a person's words. The decoder's
# own words come from the exception and from what decord logged while the file was opened.
_CAUSES = (
    (("partial file", "invalid nal unit", "error splitting the input", "error while decoding",
      "av_read_frame failed", "avcodec_send_packet", "error sending packet", "truncated",
      "broken data stream", "end of file", "premature end",
      "run_.load()"),  # decord's decoding thread, stopped by damaged data before it was asked
     "the data is cut short or corrupted (an interrupted download or copy?)"),
    (("decoder not found", "codec is not supported", "unsupported codec"),
     "its codec is not one the decoder supports"),
    (("permission denied",), "permission denied"),
    (("no such file",), "no such file"),
    # decord says "Error reading" whatever went wrong: the causes above are looked for first.
    (("invalid data found when processing input", "cannot identify image file", "error reading"),
     "not a video or image file, or a format the decoder cannot read"),
)
_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")
# The parts of a decoder message meant for its developers: decord's time stamps, C++ source
# locations and CHECK expressions, ffmpeg's context addresses, errno numbers.
_DEVELOPER_NOISE = re.compile(
    r"\[\d{2}:\d{2}:\d{2}\]|\S+\.(?:cc|cpp|cxx|h|hpp)(?::\d+)+:?"
    r"|Check failed:.*?(?:Thread worker:|$)|Thread worker:"
    r"|\[[^\]]* @ 0x[0-9a-fA-F]+\]|\[Errno -?\d+\]"
)


def decoder_failure(exc: BaseException, log: str = "") -> str:
    """Why a decoder (decord, PyAV, Pillow) refused a file, in one line: the likely cause when its
    words are known, else its message without C++ source paths, thread ids or addresses. `log` is
    what the decoder printed meanwhile, when it was kept."""
    said = f"{exc}\n{log}".lower()
    bomb = _BOMB.search(str(exc))
    if bomb:
        pixels, limit = int(bomb.group(1)), int(bomb.group(2))
        return (f"the image claims {pixels:,} pixels, over the decoder's limit of {limit:,} "
                "(refused as a possible decompression bomb)")
    for words, cause in _CAUSES:
        if any(word in said for word in words):
            return cause
    for line in str(exc).splitlines():
        cleaned = " ".join(_DEVELOPER_NOISE.sub(" ", line).split()).lstrip(":,. ")
        if cleaned.lower().startswith("error:"):
            cleaned = cleaned[len("error:"):].strip()
        if cleaned:
            return cleaned[:200]
    return type(exc).__name__


def _lacks_index(file: Path) -> bool:
    """Whether `file` is an MP4/MOV (its first box is ftyp) without a moov box, the index a
    recorder writes last. Read from the boxes' headers, since ffmpeg's own "moov atom not found"
    is logged, not raised, and left out when the same line repeats."""
    import struct

    try:
        end = file.stat().st_size
        with open(file, "rb") as handle:
            offset, kinds = 0, []
            while offset + 8 <= end:
                handle.seek(offset)
                header = handle.read(16)
                size, kind = struct.unpack(">I4s", header[:8])
                kinds.append(kind)
                if kinds[0] != b"ftyp" or kind == b"moov":
                    return False
                if size == 1 and len(header) == 16:
                    size = struct.unpack(">Q", header[8:])[0]
                if size < 8:  # 0 runs to the end of the file; less is not a box
                    break
                offset += size
    except OSError:
        return False
    return bool(kinds) and kinds[0] == b"ftyp"


class _DecoderLog:
    """What reached stderr while a video was being opened (filled in on the way out)."""

    text = ""


class _Stderr:
    """The one redirection of fd 2 shared by every video being opened at the moment."""

    lock = threading.Lock()
    depth = 0
    capture: Any = None  # the private file fd 2 points at
    saved = -1  # a duplicate of the real fd 2, or -1


# ffmpeg's and decord's own lines, kept from the terminal and the job log.
_DECODER_LINE = re.compile(rb"^(?:\[[^\]]* @ 0x[0-9a-fA-F]+\] |\[\d{2}:\d{2}:\d{2}\] \S+:\d+: "
                           rb"|\s*Last message repeated )")


@contextmanager
def _decoder_output() -> Iterator[_DecoderLog]:
    """Keep what decord prints while a video opens off the process's stderr, and hand it over
    for the reason of a failure.

    decord prints its errors (with C++ source paths) from C++ straight to file descriptor 2:
    Python cannot catch them, so fd 2 points at a private file meanwhile. Another thread's
    output in that window is written back to stderr afterwards, less the decoder's lines.
    Concurrent opens share one redirection. (ffmpeg's own log is off: see _open.)"""
    log = _DecoderLog()
    state = _Stderr
    with state.lock:
        if state.depth == 0:
            try:
                state.saved = os.dup(2)
            except OSError:  # no stderr at all: nothing to keep clean
                state.saved = -1
            if state.saved >= 0:
                state.capture = tempfile.TemporaryFile()
                os.dup2(state.capture.fileno(), 2)
        state.depth += 1
        start = os.fstat(state.capture.fileno()).st_size if state.saved >= 0 else 0
    try:
        yield log
    finally:
        with state.lock:
            if state.saved >= 0:
                fd = state.capture.fileno()
                end = os.fstat(fd).st_size
                # pread leaves the offset that fd 2 shares with this file where the writers left it.
                log.text = os.pread(fd, end - start, start).decode(errors="replace")
            state.depth -= 1
            if state.depth == 0:
                if state.saved >= 0:
                    fd = state.capture.fileno()
                    written = os.pread(fd, os.fstat(fd).st_size, 0)
                    os.dup2(state.saved, 2)
                    os.close(state.saved)
                    state.capture.close()
                    state.capture, state.saved = None, -1
                    others = b"".join(line for line in written.splitlines(keepends=True)
                                      if not _DECODER_LINE.match(line))
                    if others:
                        os.write(2, others)


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


READER_VARIABLE = "DDFT_VIDEO_READER"
READERS = ("decord", "pyav")
"""The video frame readers: decord (fast seeking; wheels for Linux x86-64, macOS x86-64 and
Windows only, and unmaintained) and PyAV (ffmpeg's own bindings, wheels everywhere). Both give
the same frame indices and the same pixels within a few levels (tests/engine/test_media_readers.py)."""


def video_reader() -> str:
    """The frame reader in use: $DDFT_VIDEO_READER when set (`decord` or `pyav`), else decord
    where it is installed, else PyAV. Raises MediaError for another value, or for decord asked
    for where it is not installed."""
    asked = os.environ.get(READER_VARIABLE, "").strip().lower()
    if not asked:
        return "decord" if importlib.util.find_spec("decord") is not None else "pyav"
    if asked not in READERS:
        raise MediaError(f"${READER_VARIABLE}: expected one of {', '.join(READERS)}, found "
                         f"{asked!r}")
    if asked == "decord" and importlib.util.find_spec("decord") is None:
        raise MediaError(f"${READER_VARIABLE} asks for decord, which is not installed here (it "
                         f"has no wheels for this platform); set it to pyav or unset it")
    return asked


def _open(path: str | os.PathLike[str]):
    # decord is imported here so that `ddft --help` and the workbench never load it.
    import decord
    import decord.logging

    file = Path(path)
    if not file.is_file():
        raise MediaError(f"{file}: video file not found")
    # ffmpeg logs each damaged packet ("[h264 @ 0x…] Invalid NAL unit size") to stderr, also
    # later from decord's decoding threads; what went wrong is raised or found here instead.
    decord.logging.set_level(decord.logging.QUIET)
    with _decoder_output() as log:
        try:
            return decord.VideoReader(str(file), ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises its own DECORDError with a C++ trace
            failure = exc
    cause = NO_INDEX if _lacks_index(file) else decoder_failure(failure, log.text)
    raise MediaError(f"{file}: cannot read video: {cause}") from None


class _DecordVideo:
    """A video opened with decord: its frame count, frame rate and frames by index."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.reader = _open(path)
        self.n_frames = len(self.reader)
        self.fps = float(self.reader.get_avg_fps())

    def frames(self, indices: list[int]) -> np.ndarray:
        try:
            return self.reader.get_batch(indices).asnumpy()
        except Exception as exc:  # decord's DECORDError, raised from its decoding thread
            raise MediaError(f"{self.path}: cannot decode frames: {decoder_failure(exc)}"
                             ) from None

    def close(self) -> None:
        self.reader = None


class _PyAVVideo:
    """A video opened with PyAV. Frames are counted as decord counts them, one per video packet
    of the container (demuxed, not decoded), and frame i is the i-th frame the decoder gives in
    presentation order; the frames asked for are decoded in one pass from the start."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # PyAV is imported here for the same reason as decord above.
        import av

        file = Path(path)
        if not file.is_file():
            raise MediaError(f"{file}: video file not found")
        self.path = path
        try:
            self.container = av.open(str(file))
            if not self.container.streams.video:
                raise MediaError(f"{file}: cannot read video: it has no video stream")
            stream = self.container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            declared = stream.frames  # the container's own count; 0 when it keeps none
            self.n_frames = sum(1 for packet in self.container.demux(stream) if packet.size)
            if declared and self.n_frames < declared:
                # The index promises frames the file no longer holds (decord refuses such a
                # file when it opens it; PyAV's demuxer just stops early).
                raise MediaError(f"{file}: cannot read video: the data is cut short or "
                                 f"corrupted (an interrupted download or copy?): "
                                 f"{self.n_frames} of {declared} frames are there")
        except MediaError:
            self.close()
            raise
        except Exception as exc:  # av.error.FFmpegError and its kin
            self.close()
            cause = NO_INDEX if _lacks_index(file) else decoder_failure(exc)
            raise MediaError(f"{file}: cannot read video: {cause}") from None

    def frames(self, indices: list[int]) -> np.ndarray:
        wanted = sorted(set(indices))
        found: dict[int, np.ndarray] = {}
        try:
            self.container.seek(0)
            stream = self.container.streams.video[0]
            stream.thread_type = "AUTO"
            for position, frame in enumerate(self.container.decode(stream)):
                if position in wanted:
                    found[position] = frame.to_ndarray(format="rgb24")
                if position >= wanted[-1]:
                    break
        except Exception as exc:  # av.error.FFmpegError: damaged data met while decoding
            raise MediaError(f"{self.path}: cannot decode frames: {decoder_failure(exc)}"
                             ) from None
        missing = [i for i in wanted if i not in found]
        if missing:
            raise MediaError(f"{self.path}: cannot decode frames: the data is cut short or "
                             f"corrupted (frame {missing[0]} of {self.n_frames} never came)")
        return np.stack([found[i] for i in indices])

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
            self.container = None


def _open_video(path: str | os.PathLike[str]):
    """The video opened by `video_reader()`'s reader. Raises MediaError when it cannot be read."""
    return _DecordVideo(path) if video_reader() == "decord" else _PyAVVideo(path)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count and frame rate of a video. Raises MediaError when it cannot be read."""
    video = _open_video(path)
    try:
        return VideoInfo(path=str(path), n_frames=video.n_frames, fps=video.fps)
    finally:
        video.close()


def sample_frames(path: str | os.PathLike[str], n: int = DEFAULT_FRAMES) -> SampledFrames:
    """`n` uniformly spaced RGB frames of a video with their indices and timestamps, read by
    `video_reader()`'s reader (decord, or PyAV; the same frames either way).

    Raises MediaError when the file is missing, cannot be decoded, or has fewer than `n` frames.
    """
    video = _open_video(path)
    try:
        total = video.n_frames
        if total < n:
            raise MediaError(f"{path}: video too short: {n} frames needed, it has {total}")
        fps = video.fps or 1.0
        indices = uniform_indices(total, n)
        frames = video.frames(indices)
    finally:
        video.close()
    times = [round(i / fps, 3) for i in indices]
    return SampledFrames(
        frames=frames, indices=indices, times=times, fps=fps, duration_s=total / fps
    )


@contextmanager
def _opening_image(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The image file to open inside the block; what Pillow raises there becomes MediaError.
    Raises MediaError naming the file when it is missing or Pillow refuses it."""
    file = Path(path)
    if not file.is_file():
        raise MediaError(f"{file}: image file not found")
    try:
        yield file
    # Pillow refuses a bad file in many ways (UnidentifiedImageError, OSError, SyntaxError,
    # ValueError, DecompressionBombError for one that claims too many pixels): each is this
    # file's failure, never the run's.
    except Exception as exc:
        raise MediaError(f"{file}: cannot read image: {decoder_failure(exc)}") from None


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image as an (height, width, 3) uint8 RGB array. Raises MediaError when it is missing
    or the decoder refuses it (unreadable, cut short, or too many pixels to open safely)."""
    from PIL import Image

    with _opening_image(path) as file, Image.open(file) as image:
        return np.asarray(image.convert("RGB"))


def check_media(path: str | os.PathLike[str], modality: str, n: int = DEFAULT_FRAMES) -> None:
    """Open an image or a video far enough to know it can be read, without decoding pixels: an
    image's header is verified, a video's container opened and its frames counted (at least
    `n`). Raises MediaError naming the file otherwise."""
    if modality == "video":
        total = probe_video(path).n_frames
        if total < n:
            raise MediaError(f"{path}: video too short: {n} frames needed, it has {total}")
        return
    from PIL import Image

    with _opening_image(path) as file, Image.open(file) as image:
        image.verify()
