"""A video's strip of sampled frames (the PNG `ddft data check` saves), read small enough to draw in cells."""

from __future__ import annotations

from dataclasses import dataclass

from engine.evaluation.frames import DEFAULT_FRAMES

# Each frame is drawn 12 cells wide; a cell shows two pixels, one above the other (▀).
FRAME_CELLS = 12
MAX_FRAME_ROWS = 8

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class FrameStrip:
    """Downscaled frames: `frames[f][y][x]` is the RGB colour of pixel (x, y) of frame f; every
    frame is `width` pixels wide and an even number of pixels high."""

    path: str
    frames: tuple[tuple[tuple[RGB, ...], ...], ...]
    width: int

    @property
    def cell_rows(self) -> int:
        return len(self.frames[0]) // 2 if self.frames else 0


class FrameStripError(Exception):
    """The strip PNG is missing or cannot be read."""


def load_frame_strip(path: str, n_frames: int = DEFAULT_FRAMES, cells: int = FRAME_CELLS) -> FrameStrip:
    """Read the strip at `path` (`n_frames` frames side by side) and shrink each frame to
    `cells` pixels wide, keeping its shape in square-ish half-block pixels.

    Raises FrameStripError naming the file when it is missing or not an image.
    """
    # Deferred: Pillow is only needed once a strip is shown, and only in a worker thread.
    from PIL import Image

    n_frames = max(1, n_frames)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except FileNotFoundError as exc:
        raise FrameStripError(f"{path}: no such file") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameStripError(f"{path}: not a readable image ({exc})") from exc
    frame_width = image.width / n_frames
    # A terminal cell is about twice as tall as wide, so two stacked pixels make a square one.
    rows = round(cells * image.height / max(frame_width, 1) / 2)
    height = 2 * min(MAX_FRAME_ROWS, max(1, rows))
    small = image.resize((cells * n_frames, height), Image.Resampling.BOX)
    pixels = small.load()
    frames = tuple(
        tuple(tuple(pixels[f * cells + x, y] for x in range(cells)) for y in range(height))
        for f in range(n_frames)
    )
    return FrameStrip(path=path, frames=frames, width=cells)
