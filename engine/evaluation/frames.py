"""Which frames of a video the model sees: `DEFAULT_FRAMES` of them, spread evenly (Video-LLaVA's
rule). Pure arithmetic, shared by decoding (engine.media), training settings and the coverage
analysis."""

from __future__ import annotations

DEFAULT_FRAMES = 8


def uniform_indices(n_total: int, n: int) -> list[int]:
    """`n` frame indices spread evenly from the first frame to the last (Video-LLaVA's rule).
    Raises ValueError when the video has fewer than `n` frames."""
    if n_total < n:
        raise ValueError(f"need at least {n} frames, the video has {n_total}")
    if n == 1:
        return [0]
    step = (n_total - 1) / (n - 1)
    # round half to even, as numpy's linspace(...).round() did
    return [int(round(i * step)) for i in range(n)]
