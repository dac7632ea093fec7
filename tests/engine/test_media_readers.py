"""decord and PyAV behind one `sample_frames`: the same frame indices and the same pixels (within
2 levels on average and 16 at worst, what two ffmpeg colour conversions of one decoded frame may
differ by) on the kitchen's videos and on an MKV; $DDFT_VIDEO_READER chooses the reader."""

from __future__ import annotations

import importlib.util

import av
import numpy as np
import pytest

from engine.kitchen import DISHES, render_video
from engine.media import READER_VARIABLE, MediaError, probe_video, sample_frames, video_reader
from tests.engine.test_media import broken_videos, write_video

HAS_DECORD = importlib.util.find_spec("decord") is not None
needs_decord = pytest.mark.skipif(not HAS_DECORD, reason="decord has no wheel for this platform")
MEAN_LEVELS, MAX_LEVELS = 2.0, 16


def _read(path, reader, monkeypatch, n=8):
    monkeypatch.setenv(READER_VARIABLE, reader)
    return sample_frames(path, n)


def _noisy_mkv(path, n_frames=30, width=64, height=48):
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            frame[:, : width // 2] = i * 8  # the grey left half says which frame this is
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@needs_decord
def test_both_readers_give_the_same_frames_on_kitchen_videos_and_an_mkv(tmp_path, monkeypatch):
    videos = [render_video(DISHES[i], tmp_path / f"kitchen{i}.mp4", seed=i).path
              for i in range(2)]
    videos.append(_noisy_mkv(tmp_path / "noisy.mkv"))
    for video in videos:
        by_decord = _read(video, "decord", monkeypatch)
        by_pyav = _read(video, "pyav", monkeypatch)
        assert by_pyav.indices == by_decord.indices, video
        assert by_pyav.times == by_decord.times and by_pyav.fps == by_decord.fps, video
        assert by_pyav.duration_s == by_decord.duration_s, video
        assert by_pyav.frames.shape == by_decord.frames.shape, video
        difference = np.abs(by_pyav.frames.astype(int) - by_decord.frames.astype(int))
        assert difference.mean() <= MEAN_LEVELS and difference.max() <= MAX_LEVELS, (
            video, difference.mean(), difference.max())
    # The frames really are the ones asked for: frame i's left half is grey 8·i in the MKV,
    # so a neighbouring frame would be 8 levels off.
    grey = by_pyav.frames[:, :, :24].mean(axis=(1, 2, 3))
    assert np.allclose(grey, [8 * i for i in by_pyav.indices], atol=3)


def test_the_pyav_reader_alone(tmp_path, monkeypatch):
    monkeypatch.setenv(READER_VARIABLE, "pyav")
    assert video_reader() == "pyav"
    # A frame 48 pixels wide, which decord 0.6 refuses (its frame copy assumes a wider row).
    narrow = sample_frames(_noisy_mkv(tmp_path / "narrow.mkv", width=48, height=32), 8)
    assert narrow.frames.shape == (8, 32, 48, 3)
    for suffix in (".mp4", ".mkv", ".webm"):
        video = write_video(tmp_path / f"clip{suffix}", 12)
        sampled = sample_frames(video, 8)
        assert sampled.indices == [0, 2, 3, 5, 6, 8, 9, 11], suffix
        assert np.all(np.diff(sampled.frames.mean(axis=(1, 2, 3))) > 0), suffix
        assert probe_video(video).n_frames == 12
    with pytest.raises(MediaError, match=r"short\.mp4: video too short: 8 frames needed, "
                                         r"it has 5"):
        sample_frames(write_video(tmp_path / "short.mp4", 5))
    with pytest.raises(MediaError, match=r"nope\.mp4: video file not found"):
        sample_frames(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(MediaError, match=r"junk\.mkv: cannot read video: not a video"):
        sample_frames(junk)
    unfinished, cut, garbled = broken_videos(tmp_path)
    with pytest.raises(MediaError, match="cannot read video: the file is incomplete"):
        probe_video(unfinished)
    for video in (cut, garbled):
        with pytest.raises(MediaError) as error:
            sample_frames(video)
        assert video.name in str(error.value) and "\n" not in str(error.value)


def test_the_reader_setting(monkeypatch):
    monkeypatch.delenv(READER_VARIABLE, raising=False)
    assert video_reader() == ("decord" if HAS_DECORD else "pyav")
    monkeypatch.setenv(READER_VARIABLE, " PyAV ")
    assert video_reader() == "pyav"
    monkeypatch.setenv(READER_VARIABLE, "opencv")
    with pytest.raises(MediaError, match=r"\$DDFT_VIDEO_READER: expected one of decord, pyav, "
                                         r"found 'opencv'"):
        video_reader()
