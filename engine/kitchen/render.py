"""Procedural cooking videos and dish photos: steps drawn as scenes with numpy, encoded by PyAV."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.kitchen.recipes import Colour, Dish

DEFAULT_SIZE = (112, 112)  # (width, height); the tiny model sees half of this
DEFAULT_FPS = 8
STEP_SECONDS = (1, 3)  # each step lasts a whole number of seconds in this range
MAX_STEPS_SECONDS = 12  # cap on the summed step durations, so a video stays under ~15 s

COUNTERS: tuple[Colour, ...] = (
    (196, 160, 118),  # oak
    (222, 222, 216),  # marble
    (88, 94, 102),  # slate
    (176, 196, 206),  # blue tile
    (150, 112, 80),  # walnut
)
STEEL = (160, 162, 168)
SPOON = (172, 124, 72)


@dataclass(frozen=True)
class RenderedVideo:
    """A video written by `render_video`, with its step segments in YouCook2's layout."""

    path: Path
    duration_s: float
    fps: int
    n_frames: int
    segments: list[dict]  # {"segment": [start_s, end_s], "id": i, "sentence": step}


class RenderError(RuntimeError):
    """A video or image could not be written."""


def _stable_seed(*parts: object) -> list[int]:
    # Python's hash() is salted per process; crc32 keeps renders identical across runs.
    return [zlib.crc32(str(part).encode()) for part in parts]


@dataclass(frozen=True)
class _Look:
    """What a seed decides about a render: framing, counter, light, noise."""

    zoom: float
    offset: tuple[float, float]
    rotation: float
    counter: np.ndarray
    grain: float  # strength of the counter's plank or tile pattern
    grain_freq: float
    brightness: float
    noise: int  # per-frame pixel noise is uniform in [-noise, noise]
    jitter: float  # how far ingredient positions move from the dish's own layout

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Look:
        counter = np.array(COUNTERS[rng.integers(len(COUNTERS))], dtype=np.float32)
        counter = np.clip(counter + rng.uniform(-18, 18, size=3), 0, 255)
        return cls(
            zoom=float(rng.uniform(1.05, 1.3)),
            offset=(float(rng.uniform(-0.14, 0.14)), float(rng.uniform(-0.14, 0.14))),
            rotation=float(rng.uniform(-0.4, 0.4)),
            counter=counter,
            grain=float(rng.uniform(0.0, 0.08)),
            grain_freq=float(rng.uniform(6, 14)),
            brightness=float(rng.uniform(0.9, 1.08)),
            noise=int(rng.integers(3, 9)),
            jitter=float(rng.uniform(0.02, 0.06)),
        )


class _Canvas:
    """A float RGB image with scene coordinates per pixel, painted with soft-edged shapes."""

    def __init__(self, size: tuple[int, int], look: _Look):
        width, height = size
        self.look, self.size = look, size
        u = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
        v = ((np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1) * (height / width)
        uu, vv = np.meshgrid(u - look.offset[0], v - look.offset[1])
        cos, sin = np.cos(look.rotation), np.sin(look.rotation)
        self.x = (cos * uu + sin * vv) / look.zoom
        self.y = (-sin * uu + cos * vv) / look.zoom
        self.pixel = 2.0 / (width * look.zoom)
        self.rgb = np.empty((height, width, 3), dtype=np.float32)

    def copy(self) -> _Canvas:
        twin = _Canvas.__new__(_Canvas)
        twin.__dict__.update(self.__dict__)
        twin.rgb = self.rgb.copy()
        return twin

    def fill_counter(self) -> None:
        planks = 1 + self.look.grain * np.sin(self.y * self.look.grain_freq * np.pi)
        self.rgb[:] = self.look.counter * planks[..., None]

    def _area(self, cx: float, cy: float, extent: float):
        # Painting only the pixels near a shape keeps small blobs cheap: most of a frame's
        # shapes cover a few dozen pixels of a 112x112 canvas.
        look, (width, height) = self.look, self.size
        cos, sin = np.cos(look.rotation), np.sin(look.rotation)
        u = look.zoom * (cos * cx - sin * cy) + look.offset[0]
        v = look.zoom * (sin * cx + cos * cy) + look.offset[1]
        col = (u + 1) / 2 * width
        row = (v * width / height + 1) / 2 * height
        reach = extent * look.zoom * width / 2 + 2
        cols = slice(max(0, int(col - reach)), max(0, min(width, int(col + reach) + 1)))
        rows = slice(max(0, int(row - reach)), max(0, min(height, int(row + reach) + 1)))
        return rows, cols

    def _paint(self, area, distance: np.ndarray, colour) -> None:
        alpha = np.clip(0.5 - distance / self.pixel, 0.0, 1.0)
        patch = self.rgb[area]
        patch += alpha[..., None] * (np.asarray(colour, dtype=np.float32) - patch)

    def disk(self, cx: float, cy: float, r: float, colour) -> None:
        area = self._area(cx, cy, r)
        self._paint(area, np.hypot(self.x[area] - cx, self.y[area] - cy) - r, colour)

    def ellipse(self, cx: float, cy: float, a: float, b: float, colour) -> None:
        area = self._area(cx, cy, max(a, b))
        d = np.hypot((self.x[area] - cx) / a, (self.y[area] - cy) / b)
        self._paint(area, (d - 1) * min(a, b), colour)

    def box(self, cx: float, cy: float, hw: float, hh: float, colour, radius: float = 0.0) -> None:
        area = self._area(cx, cy, float(np.hypot(hw, hh)))
        qx = np.abs(self.x[area] - cx) - (hw - radius)
        qy = np.abs(self.y[area] - cy) - (hh - radius)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        inside = np.minimum(np.maximum(qx, qy), 0)
        self._paint(area, outside + inside - radius, colour)

    def stick(self, x0: float, y0: float, x1: float, y1: float, r: float, colour) -> None:
        dx, dy = x1 - x0, y1 - y0
        area = self._area((x0 + x1) / 2, (y0 + y1) / 2, float(np.hypot(dx, dy)) / 2 + r)
        x, y = self.x[area], self.y[area]
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        self._paint(area, np.hypot(x - x0 - t * dx, y - y0 - t * dy) - r, colour)

    def to_uint8(self, rng: np.random.Generator | None) -> np.ndarray:
        out = (self.rgb * self.look.brightness + 0.5).astype(np.int16)
        if rng is not None:
            # Uniform integer noise: a third of the cost of Gaussian noise, and looks the same.
            out += rng.integers(-self.look.noise, self.look.noise + 1, out.shape, dtype=np.int16)
        return np.clip(out, 0, 255).astype(np.uint8)


def _mix(a, b, t: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a + (np.asarray(b, dtype=np.float32) - a) * float(t)


def _shade(colour, factor: float) -> np.ndarray:
    return np.clip(np.asarray(colour, dtype=np.float32) * factor, 0, 255)


# Where food sits in each vessel: (kind, parameters). Blob targets are drawn inside it.
_CONTENT = {
    "pot": ("disk", 0.6),
    "bowl": ("disk", 0.56),
    "pan": ("disk", 0.56),
    "plate": ("disk", 0.46),
    "glass": ("glass", 0.26, 0.66),
    "tray": ("box", 0.62, 0.62),
    "board": ("pieces", ((-0.4, 0.0, 0.32, 0.4), (0.4, 0.0, 0.32, 0.4))),
    "platter": ("pieces", ((-0.32, -0.08, 0.34, 0.2), (0.34, 0.1, 0.34, 0.2))),
}


def _draw_vessel(canvas: _Canvas, vessel: str) -> None:
    if vessel == "pot":
        canvas.box(-0.78, 0, 0.14, 0.07, (50, 50, 55), radius=0.05)
        canvas.box(0.78, 0, 0.14, 0.07, (50, 50, 55), radius=0.05)
        canvas.disk(0, 0, 0.7, STEEL)
        canvas.disk(0, 0, 0.62, (72, 72, 78))
    elif vessel == "bowl":
        canvas.disk(0.03, 0.04, 0.7, (0, 0, 0))  # shadow
        canvas.disk(0, 0, 0.68, (238, 236, 230))
        canvas.disk(0, 0, 0.58, (212, 210, 204))
    elif vessel == "pan":
        canvas.stick(0.55, 0.0, 1.3, 0.0, 0.07, (28, 28, 30))
        canvas.disk(0, 0, 0.66, (34, 34, 38))
        canvas.disk(0, 0, 0.58, (58, 58, 62))
    elif vessel == "plate":
        canvas.disk(0, 0, 0.84, (246, 246, 242))
        canvas.disk(0, 0, 0.62, (228, 228, 224))
        canvas.disk(0, 0, 0.58, (244, 244, 240))
    elif vessel == "glass":
        canvas.box(0, 0.06, 0.32, 0.74, (205, 215, 222), radius=0.06)
        canvas.box(0, 0.06, 0.27, 0.69, (232, 238, 242), radius=0.04)
    elif vessel == "tray":
        canvas.box(0, 0, 0.74, 0.74, STEEL, radius=0.08)
        canvas.box(0, 0, 0.65, 0.65, (118, 118, 124), radius=0.04)
    elif vessel == "board":
        canvas.box(0, 0, 0.9, 0.6, (206, 166, 112), radius=0.06)
        canvas.disk(0.8, -0.45, 0.06, (150, 112, 70))
    elif vessel == "platter":
        canvas.ellipse(0, 0, 0.92, 0.64, (248, 248, 244))
        canvas.ellipse(0, 0, 0.8, 0.54, (232, 232, 228))
    else:
        raise ValueError(f"unknown vessel {vessel!r}")


def _draw_content(canvas: _Canvas, vessel: str, done: float, colour, raw) -> None:
    """The food in the vessel when a fraction `done` of the recipe is finished."""
    if done <= 0:
        return
    kind, *params = _CONTENT[vessel]
    scale = 0.45 + 0.55 * done
    if kind == "disk":
        canvas.disk(0, 0, params[0] * scale, _shade(colour, 0.85))
        canvas.disk(-0.03, -0.03, params[0] * scale * 0.9, colour)
    elif kind == "glass":
        hw, hh = params
        level = hh * 2 * scale
        canvas.box(0, 0.06 + hh - level / 2, hw, level / 2, colour, radius=0.03)
    elif kind == "box":
        hw, hh = params
        canvas.box(0, 0, hw * scale, hh * scale, colour, radius=0.03)
    else:
        for cx, cy, a, b in params[0]:
            if vessel == "board":
                canvas.box(cx, cy, a, b, raw, radius=0.08)
                canvas.box(cx, cy, a * 0.85 * scale, b * 0.85 * scale, colour, radius=0.1)
            else:
                canvas.ellipse(cx, cy, a * scale, b * scale, colour)


def _draw_finish(canvas: _Canvas, dish: Dish, layout: np.random.Generator) -> None:
    """Garnish and the last touches of the finished dish (dish-specific, seed-independent)."""
    palette = dish.palette
    if dish.vessel == "tray":
        for line in (-0.2, 0.2):
            canvas.box(line, 0, 0.012, 0.62, _shade(palette[0], 0.6))
            canvas.box(0, line, 0.62, 0.012, _shade(palette[0], 0.6))
    if dish.vessel == "glass":
        canvas.stick(0.12, -0.2, 0.3, -0.95, 0.035, palette[2])
        canvas.ellipse(0, -0.56, 0.26, 0.08, palette[3])
        return
    if dish.vessel == "platter":
        for i in range(5):
            y = 0.3 + 0.05 * i
            canvas.stick(-0.55, y - 0.2, 0.15, y, 0.03, palette[1])
    for i in range(9):
        colour = palette[2 + i % max(1, len(palette) - 2)]
        x, y = _target(dish.vessel, layout)
        canvas.disk(x, y, 0.045, colour)


def _target(vessel: str, rng: np.random.Generator) -> tuple[float, float]:
    kind, *params = _CONTENT[vessel]
    if kind == "disk":
        angle, radius = rng.uniform(0, 2 * np.pi), params[0] * 0.5 * np.sqrt(rng.uniform())
        return float(radius * np.cos(angle)), float(radius * np.sin(angle))
    if kind == "glass":
        hw, hh = params
        return float(rng.uniform(-hw, hw) * 0.6), float(0.06 + hh * rng.uniform(0.3, 0.9))
    if kind == "box":
        hw, hh = params
        return float(rng.uniform(-hw, hw) * 0.5), float(rng.uniform(-hh, hh) * 0.5)
    cx, cy, a, b = params[0][rng.integers(len(params[0]))]
    return float(cx + rng.uniform(-a, a) * 0.5), float(cy + rng.uniform(-b, b) * 0.5)


@dataclass(frozen=True)
class _Ingredient:
    colour: np.ndarray
    counter_xy: tuple[float, float]  # where it waits on the counter before its step
    vessel_xy: tuple[float, float]  # where it lands in the food
    step: int  # the step that adds it
    radius: float


def _ingredients(dish: Dish, look: _Look, rng: np.random.Generator) -> list[_Ingredient]:
    # The layout comes from the dish alone so that every render of a dish looks alike; the
    # video's seed only nudges it.
    layout = np.random.default_rng(_stable_seed("layout", dish.slug))
    n, m = len(dish.steps), len(dish.ingredients)
    items = []
    for i, name in enumerate(dish.ingredients):
        base = dish.palette[1 + i % (len(dish.palette) - 1)]
        tint = np.random.default_rng(_stable_seed(name)).uniform(-28, 28, size=3)
        angle = -np.pi / 2 + (i - (m - 1) / 2) * 0.55 + np.pi * (i % 2)
        counter_xy = (0.92 * np.cos(angle), 0.92 * np.sin(angle))
        tx, ty = _target(dish.vessel, layout)
        dx, dy = rng.normal(0, look.jitter, size=2)
        items.append(
            _Ingredient(
                colour=np.clip(np.asarray(base, np.float32) + tint, 0, 255),
                counter_xy=(float(counter_xy[0]), float(counter_xy[1])),
                vessel_xy=(tx + float(dx), ty + float(dy)),
                step=min(n - 1, i * n // m),
                radius=float(layout.uniform(0.07, 0.1)),
            )
        )
    return items


def _step_layer(
    dish: Dish, look: _Look, size, step: int, items: list[_Ingredient], finished: bool
) -> _Canvas:
    """Everything that stays still during `step` (-1 = before the first step)."""
    canvas = _Canvas(size, look)
    canvas.fill_counter()
    n = len(dish.steps)
    done = 1.0 if finished else (step + 1) / n
    _draw_vessel(canvas, dish.vessel)
    _draw_content(canvas, dish.vessel, done, _mix(dish.palette[1], dish.palette[0], done),
                  dish.palette[1])
    for item in items:
        if item.step > step and not finished:
            canvas.disk(*item.counter_xy, item.radius, item.colour)
        elif item.step < step or finished:
            # Added earlier: it cooks into the food, shrinking and taking on its colour.
            age = 1.0 if finished else (step - item.step) / n
            colour = _mix(item.colour, dish.palette[0], 0.5 * age)
            canvas.disk(*item.vessel_xy, item.radius * (1 - 0.4 * age), colour)
    if finished:
        _draw_finish(canvas, dish, np.random.default_rng(_stable_seed("finish", dish.slug)))
    return canvas


def _timeline(dish: Dish, rng: np.random.Generator) -> tuple[int, list[int], int]:
    """Seconds before the first step, each step's seconds, and seconds after the last."""
    low, high = STEP_SECONDS
    durations = [int(d) for d in rng.integers(low, high + 1, size=len(dish.steps))]
    while sum(durations) > MAX_STEPS_SECONDS:
        durations[durations.index(max(durations))] -= 1
    return int(rng.integers(0, 2)), durations, int(rng.integers(0, 2))


def render_video(
    dish: Dish,
    path: str | os.PathLike[str],
    *,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
) -> RenderedVideo:
    """Render a cooking video of `dish` to an H.264 mp4 at `path` (written via a temp file).

    The dish fixes the vessel, colours and ingredient layout; the seed fixes step durations,
    framing, counter, light, noise and small layout nudges, so renders with different seeds
    are different videos of a recognisable dish. Raises RenderError when encoding fails and
    ValueError for an odd frame size (yuv420p needs even sides).
    """
    width, height = size
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ValueError(f"frame size must be even and at least 16x16, got {width}x{height}")
    rng = np.random.default_rng(_stable_seed("video", dish.slug, seed))
    look = _Look.draw(rng)
    items = _ingredients(dish, look, rng)
    intro, durations, outro = _timeline(dish, rng)

    segments, start = [], intro
    for i, (sentence, seconds) in enumerate(zip(dish.steps, durations)):
        segments.append({"segment": [start, start + seconds], "id": i, "sentence": sentence})
        start += seconds
    duration = intro + sum(durations) + outro
    # (step, seconds, finished) for each stretch of the video.
    stretches = [(-1, intro, False)] + [(i, d, False) for i, d in enumerate(durations)]
    stretches += [(len(durations) - 1, outro, True)]

    noise = np.random.default_rng(_stable_seed("noise", dish.slug, seed))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    # PyAV is imported here so that importing the kitchen stays cheap.
    import av

    n_frames = 0
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # One thread keeps the encoded bytes identical from run to run. The macroblock-tree
            # rate control is off because with it x264 gave different bytes for identical
            # frames once other videos had been encoded in the same process (two kitchens built
            # in one process differed by up to 31 in decoded pixels); on 112x112 synthetic
            # videos it saves next to nothing.
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1",
                              "x264-params": "mbtree=0"}
            for step, seconds, finished in stretches:
                if seconds == 0:
                    continue
                layer = _step_layer(dish, look, size, step, items, finished)
                moving = [it for it in items if it.step == step and not finished]
                stir = 0 < step < len(dish.steps) - 1 and not finished
                for f in range(seconds * fps):
                    t = f / (seconds * fps)
                    frame = _moving_frame(layer, moving, stir, t)
                    image = av.VideoFrame.from_ndarray(frame.to_uint8(noise), format="rgb24")
                    container.mux(stream.encode(image))
                    n_frames += 1
            container.mux(stream.encode(None))
        os.replace(partial, target)
    except (av.FFmpegError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise RenderError(f"{target}: cannot write video ({exc})") from exc
    return RenderedVideo(
        path=target, duration_s=float(duration), fps=fps, n_frames=n_frames, segments=segments
    )


def _moving_frame(layer: _Canvas, moving: list[_Ingredient], stir: bool, t: float) -> _Canvas:
    """The step's still layer plus what moves in it at time `t` (0..1) through the step."""
    if not moving and not stir:
        return layer
    frame = layer.copy()
    travel = min(1.0, t / 0.6)
    for item in moving:
        (x0, y0), (x1, y1) = item.counter_xy, item.vessel_xy
        lift = 1 + 0.4 * np.sin(np.pi * travel)  # it grows as it is lifted across
        frame.disk(x0 + (x1 - x0) * travel, y0 + (y1 - y0) * travel, item.radius * lift,
                   item.colour)
    if stir:
        angle = 2 * np.pi * 1.5 * t
        frame.stick(0.1 * np.cos(angle), 0.1 * np.sin(angle), 0.9 * np.cos(angle + 0.5),
                    0.9 * np.sin(angle + 0.5), 0.05, SPOON)
    return frame


def render_dish_image(
    dish: Dish,
    path: str | os.PathLike[str],
    *,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> Path:
    """Write a PNG photo of the finished dish, framed and lit according to `seed`.

    Returns the path. Raises RenderError when the file cannot be written.
    """
    from PIL import Image

    rng = np.random.default_rng(_stable_seed("image", dish.slug, seed))
    look = _Look.draw(rng)
    items = _ingredients(dish, look, rng)
    canvas = _step_layer(dish, look, size, len(dish.steps) - 1, items, finished=True)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        Image.fromarray(canvas.to_uint8(rng)).save(partial, format="PNG")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RenderError(f"{target}: cannot write image ({exc})") from exc
    return target
