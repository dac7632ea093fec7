"""Frame sampling, by each reader (decord and PyAV): uniform indices, timestamps, one clear error
per bad file."""

from __future__ import annotations

import importlib.util
import struct
import zlib

import av
import numpy as np
import pytest

from engine.media import (
    NO_INDEX,
    READER_VARIABLE,
    VIDEO_SUFFIXES,
    MediaError,
    check_media,
    decoder_failure,
    load_image,
    probe_video,
    sample_frames,
    uniform_indices,
)

@pytest.fixture(autouse=True, params=[
    pytest.param("decord", marks=pytest.mark.skipif(importlib.util.find_spec("decord") is None,
                                                    reason="decord has no wheel here")),
    "pyav"])
def reader(request, monkeypatch):
    """Every test here runs with each frame reader ($DDFT_VIDEO_READER)."""
    monkeypatch.setenv(READER_VARIABLE, request.param)
    return request.param


# The codec each container is written with: what a real file of that kind usually holds.
CODECS = {".webm": "libvpx-vp9", ".avi": "mpeg4"}


def write_video(path, n_frames, fps=10, size=32, *, options=None):
    codec = CODECS.get(path.suffix, "libx264")
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
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


def test_every_video_suffix_is_a_container_the_decoder_reads(tmp_path):
    assert set(VIDEO_SUFFIXES) == {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"}
    for suffix in VIDEO_SUFFIXES:
        video = write_video(tmp_path / f"clip{suffix}", 12)
        sampled = sample_frames(video, 8)
        assert sampled.indices == [0, 2, 3, 5, 6, 8, 9, 11], suffix
        assert np.all(np.diff(sampled.frames.mean(axis=(1, 2, 3))) > 0), suffix


def noisy_video(path, *, faststart):
    """40 frames of noise (so the stream is big enough to cut mid-way), index first or last."""
    rng = np.random.default_rng(0)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(40):
            frame = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def broken_videos(tmp_path):
    """A download cut in half with the index at the end (lost) and at the start (kept), and one
    whose frames were overwritten with garbage past the headers."""
    unfinished = noisy_video(tmp_path / "unfinished.mp4", faststart=False)
    unfinished.write_bytes(unfinished.read_bytes()[:unfinished.stat().st_size // 2])
    cut = noisy_video(tmp_path / "cut.mp4", faststart=True)
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    garbled = noisy_video(tmp_path / "garbled.mp4", faststart=True)
    data = bytearray(garbled.read_bytes())
    for i in range(4000, len(data) - 2000, 7):
        data[i] ^= 0xFF
    garbled.write_bytes(bytes(data))
    return unfinished, cut, garbled


def assert_one_clean_line(message, name):
    assert name in message and "\n" not in message
    for noise in (".cc:", "Thread worker", "Check failed", "0x", "github"):
        assert noise not in message, message


def test_broken_videos_fail_with_one_clean_line_and_no_decoder_chatter(tmp_path, capfd):
    unfinished, cut, garbled = broken_videos(tmp_path)
    capfd.readouterr()
    with pytest.raises(MediaError) as error:
        probe_video(unfinished)
    assert_one_clean_line(str(error.value), "unfinished.mp4")
    assert "cannot read video: the file is incomplete" in str(error.value)
    for video in (cut, garbled):
        with pytest.raises(MediaError) as error:
            sample_frames(video)
        assert_one_clean_line(str(error.value), video.name)
        assert "cut short or corrupted" in str(error.value)
    with pytest.raises(MediaError) as error:
        check_media(cut, "video")
    assert "cut short or corrupted" in str(error.value)
    # decord's own log lines and ffmpeg's ([h264 @ 0x…] Invalid NAL unit size) stay off the
    # process's stderr, which a progress bar or a job log shares.
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_output_of_other_code_while_a_video_opens_still_reaches_stderr(tmp_path, capfd):
    import os

    import engine.media as media

    with media._decoder_output():
        os.write(2, b"a line from elsewhere\n")
    assert capfd.readouterr().err == "a line from elsewhere\n"


def huge_png(path, width=20000, height=20000):
    """A PNG that claims `width`×`height` pixels in a few bytes, as a decompression bomb does."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_an_image_the_decoder_refuses_as_too_large_is_a_media_error(tmp_path):
    bomb = huge_png(tmp_path / "bomb.png")
    for read in (load_image, lambda path: check_media(path, "image")):
        with pytest.raises(MediaError) as error:
            read(bomb)
        assert_one_clean_line(str(error.value), "bomb.png")
        assert "400,000,000 pixels" in str(error.value)
        assert "decompression bomb" in str(error.value)


def test_decoder_failures_read_as_their_likely_cause():
    from PIL import UnidentifiedImageError

    decord_open = ("[06:45:43] /github/workspace/src/video/video_reader.cc:486: Error: "
                   "av_read_frame failed with 1094995529")
    assert decoder_failure(RuntimeError(decord_open)) == (
        "the data is cut short or corrupted (an interrupted download or copy?)")
    assert decoder_failure(RuntimeError("Error reading x.mp4..."),
                           "[06:45:43] /github/workspace/src/video/video_reader.cc:83: ERROR "
                           "opening: x.mp4, Permission denied\n") == "permission denied"
    pyav = av.error.InvalidDataError(1094995529, "Invalid data found when processing input",
                                     "x.mkv")
    assert decoder_failure(pyav).startswith("not a video or image file")
    assert decoder_failure(UnidentifiedImageError("cannot identify image file 'x.png'")
                           ).startswith("not a video or image file")
    odd = RuntimeError("[10:00:00] /src/thing.cc:12: Check failed: x (1 vs. 0) Thread worker: "
                       "something odd\nstack frame 2")
    assert decoder_failure(odd) == "something odd"
    stopped = RuntimeError("[10:00:00] /src/video/ffmpeg/threaded_decoder.cc:41: Check failed: "
                           "run_.load()")
    assert decoder_failure(stopped).startswith("the data is cut short or corrupted")
    assert decoder_failure(RuntimeError("[10:00:00] /a.cc:1: Check failed: x > 0")) == \
        "RuntimeError"


def test_videos_opened_from_many_threads_keep_stderr_clean_and_give_it_back(tmp_path, capfd):
    import os
    from concurrent.futures import ThreadPoolExecutor

    unfinished, cut, garbled = broken_videos(tmp_path)
    good = write_video(tmp_path / "good.webm", 12)
    capfd.readouterr()

    def outcome(path):
        try:
            check_media(path, "video")
        except MediaError as exc:
            return str(exc)
        return "ok"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(outcome, [unfinished, cut, garbled, good] * 6))
    assert outcomes[3::4] == ["ok"] * 6
    assert outcomes[0::4] == [f"{unfinished}: cannot read video: {NO_INDEX}"] * 6
    assert all("cut short" in o for o in outcomes[1::4])
    os.write(2, b"stderr is ours again\n")
    assert capfd.readouterr().err == "stderr is ours again\n"
