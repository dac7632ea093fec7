"""Importers find a video in every container the decoder reads, from one list of suffixes."""

from __future__ import annotations

from engine.importers.tasty import read_tasty
from engine.importers.youcook2 import read_youcook2
from engine.media import VIDEO_SUFFIXES, probe_video

from .test_import_tasty import make_recipe
from .test_import_youcook2 import video, write_youcook2
from .test_media import write_video


def test_youcook2_finds_its_videos_in_every_container(tmp_path):
    ids = {suffix: f"clip{suffix[1:]}0000" for suffix in VIDEO_SUFFIXES}
    database = {video_id: video("validation", "101", 60.0, f"step in {suffix}")
                for suffix, video_id in ids.items()}
    root = write_youcook2(tmp_path / "YouCookII", database, on_disk=[
        ("validation", "101", video_id, suffix) for suffix, video_id in ids.items()])
    for suffix, video_id in ids.items():
        write_video(root / "raw_videos" / "validation" / "101" / f"{video_id}{suffix}", 10)
    plan = read_youcook2(root)
    assert plan.problems == [] and plan.left_out == []
    found = {s.external_id: s.media_path for s in plan.datasets[0].samples}
    for suffix, video_id in ids.items():
        assert found[video_id].endswith(f"/101/{video_id}{suffix}")
        assert probe_video(found[video_id]).n_frames == 10


def test_a_missing_youcook2_video_names_every_container_looked_for(tmp_path):
    database = {"gone000000a": video("validation", "101", 60.0, "a step")}
    root = write_youcook2(tmp_path / "YouCookII", database, on_disk=[])
    plan = read_youcook2(root)
    [(video_id, why)] = plan.left_out
    assert video_id == "gone000000a" and why.startswith("not on disk")
    assert all(suffix in why for suffix in VIDEO_SUFFIXES)


def test_tasty_finds_the_recipe_video_in_every_container(tmp_path):
    for suffix in VIDEO_SUFFIXES:
        folder = make_recipe(tmp_path, f"pasta-{suffix[1:]}", video=False)
        write_video(folder / f"recipe_video{suffix}", 10)
    plan = read_tasty(tmp_path)
    assert plan.problems == []
    paths = sorted(s.media_path for s in plan.datasets[0].samples)
    assert [p.rsplit(".", 1)[1] for p in paths] == sorted(s[1:] for s in VIDEO_SUFFIXES)
