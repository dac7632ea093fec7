"""Giving Video-LLaVA the time of each sampled frame: in the prompt's text, or as a learned
embedding added to that frame's visual tokens after the projector.

Video-LLaVA sees 8 frames and nothing says when they were taken; the two options here tell it.
Both are off by default, and off means the model and its inputs are exactly Video-LLaVA's.

- **Time in text**: the user turn starts with the frames' times
  (`frame_times_text`: "Frames: frame 1 at 0.0s, ..., frame 8 at 41.3s (video 45.0s).").
- **Time embedding**: `FrameTimeEncoder` maps each frame's time (seconds, and its fraction of
  the video's duration) to a vector of the language model's width, added to every visual
  token of that frame as the projector leaves them (`attach_time_encoder` wraps the model's
  `get_video_features`). It is a submodule named `frame_time_encoder` of the inner
  `VideoLlavaModel`, trained with the LoRA adapter and saved inside it (peft's
  `modules_to_save`, beside the projector). Its last layer starts at zero, so before training
  the model's outputs are those of the model without it.

The frames' times reach the encoder through `frame_times(model, times)`, a context around the
forward pass or `generate`: a model with an encoder refuses video features without them.

What a run used is recorded in the adapter folder as `ddft_time.json` (`TimeSettings`);
`engine.model.loading` reads it wherever the adapter goes. A merged export keeps the encoder as
an extra module beside the model (`save_merged`): `frame_time_encoder.safetensors` and the same
`ddft_time.json`, which ddft's loader attaches again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

TIME_FILE = "ddft_time.json"
ENCODER_FILE = "frame_time_encoder.safetensors"
ENCODER_NAME = "frame_time_encoder"
_SLOT = "_ddft_frame_times"
_ATTACHED = "_ddft_time_encoder"


class TimeEncoderError(ValueError):
    """The time embedding cannot run: no frame times given, or times that do not match the
    frames."""


@dataclass(frozen=True)
class TimeSettings:
    """How a model was given frame times; both off is plain Video-LLaVA."""

    in_text: bool = False
    embedding: bool = False
    # The encoder's shape (only with `embedding`): sinusoid frequencies and hidden width.
    frequencies: int = 8
    width: int = 64

    @property
    def any(self) -> bool:
        return self.in_text or self.embedding

    @classmethod
    def from_config(cls, config: Any) -> TimeSettings:
        """From a TrainConfig or its dict (as train_config.json stores it)."""
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        return cls(in_text=bool(get("time_in_text", False)),
                   embedding=bool(get("time_embedding", False)))

    def to_json(self) -> dict[str, Any]:
        return {"format": 1, **asdict(self)}


def read_time_settings(folder: str | Path | None) -> TimeSettings:
    """The settings an adapter or model folder records in ddft_time.json; both off when it has
    none. Raises TimeEncoderError naming the file when it is not what ddft writes."""
    if folder is None:
        return TimeSettings()
    path = Path(folder) / TIME_FILE
    if not path.is_file():
        return TimeSettings()
    try:
        data = json.loads(path.read_text())
        values = {k: data[k] for k in ("in_text", "embedding", "frequencies", "width") if k in data}
        settings = TimeSettings(**values)
    except (OSError, ValueError, TypeError) as exc:
        raise TimeEncoderError(f"{path}: expected ddft's frame-time settings, found an "
                               f"unreadable file ({exc})") from None
    bad = [k for k in ("in_text", "embedding") if not isinstance(getattr(settings, k), bool)]
    bad += [k for k in ("frequencies", "width")
            if not isinstance(getattr(settings, k), int) or getattr(settings, k) < 1]
    if bad:
        raise TimeEncoderError(f"{path}: {bad[0]}: expected "
                               + ("true or false" if bad[0] in ("in_text", "embedding")
                                  else "an integer >= 1")
                               + f", found {getattr(settings, bad[0])!r}")
    return settings


def write_time_settings(folder: str | Path, settings: TimeSettings) -> None:
    """Record `settings` in `folder` (only when a time option is on: a plain adapter's folder
    stays as peft writes it)."""
    if settings.any:
        (Path(folder) / TIME_FILE).write_text(json.dumps(settings.to_json(), indent=2) + "\n")


# ---------------------------------------------------------------- time in text


def frame_times_text(times: Sequence[float], duration: float | None = None) -> str:
    """The line that states each sampled frame's time, as the prompt starts with it:
    `Frames: frame 1 at 0.0s, frame 2 at 1.6s, ..., frame 8 at 11.4s (video 12.0s).`"""
    listed = ", ".join(f"frame {i} at {t:.1f}s" for i, t in enumerate(times, 1))
    tail = f" (video {duration:.1f}s)" if duration else ""
    return f"Frames: {listed}{tail}."


def prompt_with_times(prompt: str, times: Sequence[float] | None,
                      duration: float | None = None) -> str:
    """`prompt` preceded by the frames' times on a line of its own (unchanged without times)."""
    if not times:
        return prompt
    return f"{frame_times_text(times, duration)}\n{prompt}"


def uniform_frame_times(n_frames: int, fps: float, n: int) -> tuple[list[float], float]:
    """The times of the `n` frames Video-LLaVA's uniform rule samples from a video of
    `n_frames` at `fps`, rounded as engine.media.sample_frames rounds them, and the duration."""
    from engine.evaluation.frames import uniform_indices

    fps = fps or 1.0
    return [round(i / fps, 3) for i in uniform_indices(n_frames, n)], n_frames / fps


def time_features(times: Sequence[float], duration: float | None) -> list[list[float]]:
    """Per frame: [seconds, fraction of the duration] (fraction 0 when the duration is
    unknown), what `FrameTimeEncoder` takes."""
    return [[float(t), float(t) / duration if duration else 0.0] for t in times]


# ---------------------------------------------------------------- the encoder


@lru_cache(maxsize=1)
def _encoder_class() -> type:
    # torch is imported here: importing this module must stay cheap for the CLI.
    import torch
    from torch import nn

    class FrameTimeEncoder(nn.Module):
        """A frame's (seconds, fraction of the duration) -> a vector of the language model's
        width: sinusoids of the seconds over periods from 2 s to 2,000 s and of the fraction,
        then a two-layer MLP whose last layer starts at zero."""

        def __init__(self, hidden_size: int, frequencies: int = 8, width: int = 64) -> None:
            super().__init__()
            self.frequencies = frequencies
            self.hidden_size = hidden_size
            features = 4 * frequencies + 1
            self.net = nn.Sequential(nn.Linear(features, width), nn.SiLU(),
                                     nn.Linear(width, hidden_size))
            nn.init.zeros_(self.net[2].weight)
            nn.init.zeros_(self.net[2].bias)

        def features(self, times: torch.Tensor) -> torch.Tensor:
            seconds, fraction = times[..., 0:1].float(), times[..., 1:2].float()
            k = torch.arange(self.frequencies, device=times.device, dtype=torch.float32)
            # Periods 2 s ... 2,000 s: a step of a few seconds and a 10-minute video both show.
            periods = 2.0 * (1000.0 ** (k / max(1, self.frequencies - 1)))
            angles = 2 * math.pi * seconds / periods
            parts = (k + 1) * math.pi * fraction
            return torch.cat([angles.sin(), angles.cos(), parts.sin(), parts.cos(), fraction],
                             dim=-1)

        def forward(self, times: torch.Tensor) -> torch.Tensor:
            """(batch, frames, 2) -> (batch, frames, hidden_size)."""
            first = self.net[0].weight
            return self.net(self.features(times).to(first.dtype))

    return FrameTimeEncoder


def make_time_encoder(hidden_size: int, settings: TimeSettings, *, seed: int = 0) -> Any:
    """A new FrameTimeEncoder, initialised from `seed` without touching torch's global random
    state (so a run's LoRA initialisation is the same with or without it)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7919)
        return _encoder_class()(hidden_size, settings.frequencies, settings.width)


def _video_model(model: Any) -> Any:
    """The inner VideoLlavaModel of a Video-LLaVA model, with or without LoRA around it."""
    for module in model.modules():
        if hasattr(module, "get_video_features") and hasattr(module, "language_model") \
                and hasattr(module, "multi_modal_projector"):
            return module
    raise TimeEncoderError(f"{type(model).__name__} is not a Video-LLaVA model")


def has_time_encoder(model: Any) -> bool:
    try:
        return bool(getattr(_video_model(model), _ATTACHED, False))
    except TimeEncoderError:
        return False


def attach_time_encoder(model: Any, settings: TimeSettings, *, seed: int = 0,
                        encoder: Any = None) -> Any:
    """Give a Video-LLaVA model (before LoRA is attached, or a merged one) a frame-time
    encoder, `encoder` or a new one, added to each frame's visual tokens after the projector.
    Returns the encoder. The model's other weights and outputs are untouched: a new encoder
    adds zeros."""
    inner = _video_model(model)
    if getattr(inner, _ATTACHED, False):
        return getattr(inner, ENCODER_NAME)
    hidden = inner.config.text_config.hidden_size
    if encoder is None:
        encoder = make_time_encoder(hidden, settings, seed=seed)
    projector = next(inner.multi_modal_projector.parameters())
    encoder.to(device=projector.device, dtype=projector.dtype)
    setattr(inner, ENCODER_NAME, encoder)
    setattr(inner, _SLOT, None)
    original = inner.get_video_features

    # The same signature as the original (functools.wraps): generation inspects it to know
    # which inputs are the video's.
    @functools.wraps(original)
    def get_video_features(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        times = getattr(inner, _SLOT)
        if times is None:
            raise TimeEncoderError("this model has a frame-time encoder: it needs each "
                                   "frame's time (engine.model.timeaware.frame_times)")
        features = out.pooler_output
        batch, frames = times.shape[:2]
        if batch * frames != features.shape[0]:
            raise TimeEncoderError(f"expected times for {features.shape[0]} frames, got "
                                   f"{batch} x {frames}")
        added = getattr(inner, ENCODER_NAME)(times.to(features.device))
        out.pooler_output = features + added.reshape(batch * frames, 1, -1).to(features.dtype)
        return out

    inner.get_video_features = get_video_features
    setattr(inner, _ATTACHED, True)
    return encoder


def detach_time_encoder(model: Any) -> Any:
    """Take the encoder off a (merged) model, restoring plain Video-LLaVA; returns it, or None
    when the model had none."""
    inner = _video_model(model)
    if not getattr(inner, _ATTACHED, False):
        return None
    encoder = getattr(inner, ENCODER_NAME)
    delattr(inner, ENCODER_NAME)
    del inner.get_video_features  # the class's own method shows through again
    setattr(inner, _ATTACHED, False)
    return encoder


def times_tensor(rows: Sequence[Sequence[Sequence[float]]]) -> Any:
    """(batch, frames, 2) float32 tensor from per-example `time_features` rows."""
    import torch

    return torch.tensor([list(map(list, r)) for r in rows], dtype=torch.float32)


@contextlib.contextmanager
def frame_times(model: Any, times: Any) -> Iterator[None]:
    """Within the block, the model's video features get `times` ((batch, frames, 2): seconds and
    fraction of the duration, as `time_features` makes them). A model without an encoder, or
    `times` None, runs as it is."""
    if times is None or not has_time_encoder(model):
        yield
        return
    inner = _video_model(model)
    setattr(inner, _SLOT, times)
    try:
        yield
    finally:
        setattr(inner, _SLOT, None)


# ---------------------------------------------------------------- merged models


def save_merged(merged: Any, folder: str | Path, settings: TimeSettings) -> str:
    """Save a merged model (`merge_and_unload`'s result) to `folder`; a frame-time encoder is
    kept as an extra module beside it (frame_time_encoder.safetensors and ddft_time.json),
    since Video-LLaVA's own class has no place for it. Returns a line for the model card
    saying so ("" without time settings)."""
    from safetensors.torch import save_file

    encoder = detach_time_encoder(merged) if settings.embedding else None
    try:
        merged.save_pretrained(folder)
    finally:
        if encoder is not None:
            attach_time_encoder(merged, settings, encoder=encoder)
    write_time_settings(folder, settings)
    if encoder is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()},
                  str(Path(folder) / ENCODER_FILE))
    return merged_card_note(settings)


def merged_card_note(settings: TimeSettings) -> str:
    """What a merged model's card says about the frame times it was trained with."""
    lines = []
    if settings.in_text:
        lines.append("Trained with each frame's time in the prompt: start the user turn with "
                     "`Frames: frame 1 at 0.0s, ..., frame 8 at 41.3s (video 45.0s).`")
    if settings.embedding:
        lines.append(f"Trained with a frame-time encoder, kept as an extra module: "
                     f"`{ENCODER_FILE}` (settings in `{TIME_FILE}`). ddft loads it with the "
                     "model; transformers alone loads the model without it, and then the "
                     "frames carry no time.")
    return "\n".join(lines)


def load_merged_encoder(model: Any, folder: str | Path, settings: TimeSettings) -> None:
    """Attach the encoder a merged model folder keeps beside its weights. Raises
    TimeEncoderError naming the file when it is missing or does not fit the model."""
    from safetensors.torch import load_file

    path = Path(folder) / ENCODER_FILE
    if not path.is_file():
        raise TimeEncoderError(f"{path}: not found; {Path(folder) / TIME_FILE} says the model "
                               "was trained with a frame-time encoder")
    encoder = attach_time_encoder(model, settings)
    try:
        encoder.load_state_dict(load_file(str(path)))
    except (RuntimeError, KeyError) as exc:
        detach_time_encoder(model)
        first = str(exc).strip().splitlines()[0]
        raise TimeEncoderError(f"{path}: does not fit the model ({first})") from None
