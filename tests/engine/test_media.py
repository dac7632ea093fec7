"""Frame sampling with decord: uniform indices, timestamps, one clear error per bad file."""

from __future__ import annotations

import av
import numpy as np
import pytest

from engine.media import MediaError, load_image, probe_video, sample_frames, uniform_indices


def write_video(path, n_frames, fps=10, size=32):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            # Brightness encodes the frame number, so a test can tell which frame came back.
            frame = np.full((size, size, 3), min(255, i * 4), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_uniform_indices_span_first_to_last_frame():
    assert uniform_indices(8, 8) == list(range(8))
    assert uniform_indices(50, 8) == [0, 7, 14, 21, 28, 35, 42, 49]
    with pytest.raises(ValueError):
        uniform_indices(5, 8)


def test_sample_frames_returns_frames_indices_and_timestamps(tmp_path):
    video = write_video(tmp_path / "v.mp4", 50, fps=10)
    sampled = sample_frames(video, 8)
    assert sampled.frames.shape == (8, 32, 32, 3) and sampled.frames.dtype == np.uint8
    assert sampled.indices == [0, 7, 14, 21, 28, 35, 42, 49]
    assert sampled.times == [0.0, 0.7, 1.4, 2.1, 2.8, 3.5, 4.2, 4.9]
    assert sampled.duration_s == pytest.approx(5.0)
    brightness = sampled.frames.mean(axis=(1, 2, 3))
    assert np.all(np.diff(brightness) > 0)  # really the later frames, in order
    assert probe_video(video).n_frames == 50


def test_missing_unreadable_and_short_videos_name_the_file(tmp_path):
    with pytest.raises(MediaError, match=r"nope\.mp4: video file not found"):
        sample_frames(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(MediaError, match=r"junk\.mp4: cannot read video"):
        sample_frames(junk)
    short = write_video(tmp_path / "short.mp4", 5)
    with pytest.raises(MediaError, match=r"short\.mp4: video too short: 8 frames needed, it has 5"):
        sample_frames(short)


def test_images_load_as_rgb_and_bad_ones_name_the_file(tmp_path):
    from PIL import Image

    Image.new("L", (4, 3), 200).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").shape == (3, 4, 3)
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(MediaError, match=r"bad\.png: cannot read image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(MediaError, match="image file not found"):
        load_image(tmp_path / "none.png")
