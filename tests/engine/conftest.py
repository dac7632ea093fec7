"""Shared engine fixtures: small test videos and images, and the tiny Video-LLaVA built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MODEL_CORPUS = [
    (
        "Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\n- 1/2 tsp salt\nSteps:\n"
        "1. Simmer the tomatoes for 20 minutes.\n2. Blend until smooth."
    ),
    (
        "Dish: Green Salad\nIngredients:\n- 2 cups lettuce\n- 1 tbsp olive oil\nSteps:\n"
        "1. Wash the lettuce.\n2. Toss with the oil."
    ),
    "What is the dish in this image? Tomato Soup. Green Salad.",
    "How long should I rest a steak? About 5 to 10 minutes.",
]


def write_test_video(
    path: Path, colour: tuple[int, int, int], *, n_frames: int = 24, seed: int = 0
) -> Path:
    """A 64x64 H.264 video of `colour` with noise, written with PyAV."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(n_frames):
            noise = rng.integers(-40, 40, size=(64, 64, 3))
            frame = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(
                np.uint8
            )
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(frame, format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_test_image(path: Path, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 48), colour).save(path)
    return path


@pytest.fixture(scope="session")
def engine_media_dir(tmp_path_factory) -> Path:
    """Two red and two green videos (24 frames each), one image of each colour, a broken video."""
    root = tmp_path_factory.mktemp("engine_media")
    for name, colour in (("red", (220, 40, 30)), ("green", (40, 200, 60))):
        for i in range(2):
            write_test_video(root / f"{name}{i}.mp4", colour, seed=i)
        write_test_image(root / f"{name}.png", colour)
    (root / "broken.mp4").write_bytes(b"not a video at all")
    return root


@pytest.fixture(scope="session")
def engine_tiny_model(tmp_path_factory) -> Path:
    """The tiny Video-LLaVA, built once for the whole test session."""
    from engine.model.tiny import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("engine_tiny") / "tiny", MODEL_CORPUS, seed=0
    )
