"""`ddft data check` names the files that failed, one clean reason each, and lists them all on
demand; decoder chatter stays off the terminal."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from db import queries
from db.store import open_store, session_scope
from engine.cli.main import app
from tests.engine.test_media import broken_videos, huge_png, write_video

runner = CliRunner()


def invoke(workspace, *args):
    result = runner.invoke(app, [*args, "--workspace", str(workspace)], env={"COLUMNS": "200"})
    return result, result.output


def _store_samples(workspace, tmp_path):
    """One good video, 22 files that are not videos, three broken videos and a PNG bomb."""
    junk = []
    for i in range(22):
        path = tmp_path / f"junk{i:02d}.mp4"
        path.write_bytes(b"not a video at all")
        junk.append(path)
    videos = [write_video(tmp_path / "good.mkv", 12), *broken_videos(tmp_path), *junk]
    bomb = huge_png(tmp_path / "bomb.png")
    with session_scope(open_store(workspace)) as session:
        clips = queries.get_or_create_dataset(session, name="clips", modality="video")
        queries.add_samples(session, dataset_id=clips.id, samples=[
            {"external_id": path.stem, "modality": "video", "media_path": str(path),
             "prompt": "recipe?", "answer": path.stem} for path in videos])
        photos = queries.get_or_create_dataset(session, name="photos", modality="image")
        queries.add_samples(session, dataset_id=photos.id, samples=[
            {"external_id": "bomb", "modality": "image", "media_path": str(bomb),
             "prompt": "dish?", "answer": "bomb"}])


def _failure_lines(output):
    return [line for line in output.splitlines() if re.match(r"\s+sample \d+ \(", line)]


def test_check_lists_the_first_twenty_failed_files_and_how_to_see_the_rest(ddft_workspace,
                                                                            tmp_path, capfd):
    _store_samples(ddft_workspace, tmp_path)
    capfd.readouterr()
    result, out = invoke(ddft_workspace, "data", "check")
    assert result.exit_code == 0, out
    assert "checked 27: 1 ok, 0 with warnings, 26 failed (left out of training)" in out
    assert "26 × media" in out
    lines = _failure_lines(out)
    assert len(lines) == 20
    assert "(clips unfinished): media: " in lines[0]
    assert lines[0].endswith("unfinished.mp4: cannot read video: the file is incomplete: it has "
                             "no index (moov atom), as when a download or recording did not "
                             "finish")
    assert "(clips junk00): media: " in lines[3] and lines[3].endswith(
        "junk00.mp4: cannot read video: not a video or image file, or a format the decoder "
        "cannot read")
    assert "… and 6 more: ddft data check --show-failed lists them all" in out
    for noise in (".cc:", "Thread worker", "Traceback", "@ 0x", "DecompressionBombError"):
        assert noise not in out
    # decord's and ffmpeg's own lines never reach the terminal
    assert capfd.readouterr().err == ""

    result, out = invoke(ddft_workspace, "data", "check", "--show-failed")
    assert result.exit_code == 0, out
    lines = _failure_lines(out)
    assert len(lines) == 26 and "checked" not in out
    assert lines[-1].endswith("bomb.png: cannot read image: the image claims 400,000,000 "
                              "pixels, over the decoder's limit of 178,956,970 (refused as a "
                              "possible decompression bomb)")
    result, out = invoke(ddft_workspace, "data", "check", "--show-failed", "photos")
    assert len(_failure_lines(out)) == 1
    with session_scope(open_store(ddft_workspace)) as session:
        assert len([j for j in queries.list_jobs(session) if j.kind == "check"]) == 1


def test_show_failed_names_an_unknown_dataset_and_says_when_nothing_failed(ddft_workspace,
                                                                           tmp_path):
    write_video(tmp_path / "good.mov", 12)
    with session_scope(open_store(ddft_workspace)) as session:
        clips = queries.get_or_create_dataset(session, name="clips", modality="video")
        queries.add_samples(session, dataset_id=clips.id, samples=[
            {"external_id": "good", "modality": "video", "media_path": str(tmp_path / "good.mov"),
             "prompt": "recipe?", "answer": "soup"}])
    result, out = invoke(ddft_workspace, "data", "check", "--show-failed", "nope")
    assert result.exit_code == 1 and "no dataset named nope" in out and "Traceback" not in out
    result, out = invoke(ddft_workspace, "data", "check")
    assert result.exit_code == 0 and "failed samples" not in out
    result, out = invoke(ddft_workspace, "data", "check", "--show-failed")
    assert result.exit_code == 0 and "no failed samples" in " ".join(out.split())
