"""Imports never reach outside the media roots they were given: a path that climbs out, an
absolute path elsewhere or a link out of the folder is refused with its line and the reason,
and `ddft data check` refuses a media path that no longer resolves inside its dataset's roots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from db import queries
from db.store import session_scope
from engine.checks import check_samples
from engine.importers.base import ImportFailed, apply_plan
from engine.importers.foodx import read_foodx
from engine.importers.llava import read_llava_json
from engine.importers.tasty import read_tasty
from engine.importers.youcook2 import read_youcook2
from tests.engine.test_import_foodx import write_foodx
from tests.engine.test_import_tasty import make_recipe
from tests.engine.test_import_youcook2 import write_youcook2


def _entry(id_: str, modality: str, path: str) -> dict:
    token = f"<{modality}>"
    return {"id": id_, modality: path, "conversations": [
        {"from": "human", "value": f"{token}\nWhat is cooked?"},
        {"from": "gpt", "value": "soup"}]}


def _entry_id(key: str) -> str:
    return re.search(r"\(id (\w+)\)", key).group(1)


@pytest.fixture
def hostile(tmp_path) -> Path:
    """A LLaVA file in data/ whose entries name files inside it, outside it, and through a
    link that leaves it; the good image is a real PNG."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(data / "images" / "good.png")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (200, 0, 0)).save(secret)
    (data / "images" / "link.png").symlink_to(secret)
    entries = [
        _entry("good", "image", "images/good.png"),
        _entry("climb", "video", "../../../../etc/passwd"),
        _entry("absolute", "video", "/etc/shadow"),
        _entry("proc", "video", "/proc/self/environ"),
        _entry("link", "image", "images/link.png"),
    ]
    path = data / "train.json"
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    return path


def test_llava_paths_outside_the_media_root_are_problems_with_their_lines(hostile):
    plan = read_llava_json(hostile)
    bad = {_entry_id(p.key): p for p in plan.problems}
    assert set(bad) == {"climb", "absolute", "proc", "link"}
    assert [bad[k].line for k in ("climb", "absolute", "proc", "link")] == [3, 4, 5, 6]
    for problem in bad.values():
        assert "expected a media file inside the media root" in problem.message
        assert str(hostile.parent) in problem.message
    assert "/etc/passwd" in bad["climb"].message
    assert f"resolves to {hostile.parent.parent / 'secret.png'}" in bad["link"].message
    [images] = [d for d in plan.datasets if d.modality == "image"]
    assert [s.external_id for s in images.samples] == ["good"]
    assert images.meta["media_roots"] == [str(hostile.parent)]


def test_refused_rows_follow_all_or_nothing_and_skip_bad(ddft_store, hostile):
    with pytest.raises(ImportFailed, match="inside the media root"):
        apply_plan(ddft_store, read_llava_json(hostile))
    with session_scope(ddft_store) as session:
        assert queries.list_samples(session) == []
    apply_plan(ddft_store, read_llava_json(hostile), skip_bad=True)
    with session_scope(ddft_store) as session:
        assert [s.external_id for s in queries.list_samples(session)] == ["good"]


def test_media_kept_elsewhere_is_imported_when_its_root_is_named(tmp_path, hostile):
    elsewhere = hostile.parent / "elsewhere.json"
    elsewhere.write_text(json.dumps([_entry("far", "image", str(tmp_path / "secret.png")),
                                     _entry("link", "image", "data/images/link.png")]))
    assert {_entry_id(p.key) for p in read_llava_json(elsewhere).problems} == {"far", "link"}
    plan = read_llava_json(elsewhere, image_root=tmp_path)
    assert plan.problems == []
    assert [s.external_id for s in plan.datasets[0].samples] == ["far", "link"]
    assert plan.datasets[0].meta["media_roots"] == [str(tmp_path)]


def test_data_check_refuses_a_link_repointed_outside_after_import(ddft_store, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (8, 8)).save(data / "real.png")
    (data / "pic.png").symlink_to(data / "real.png")
    (data / "train.json").write_text(json.dumps([_entry("pic", "image", "pic.png")]))
    apply_plan(ddft_store, read_llava_json(data / "train.json"))
    assert check_samples(ddft_store).failed == 0
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)  # a readable image: only its place is wrong
    (data / "pic.png").unlink()
    (data / "pic.png").symlink_to(outside)
    summary = check_samples(ddft_store, thumbs_dir=tmp_path / "thumbs")
    assert summary.failed == 1
    with session_scope(ddft_store) as session:
        [sample] = queries.list_samples(session)
    assert sample.check_status == "failed"
    assert sample.check_reasons[0].startswith("media: expected a media file inside the media "
                                              f"root {data}")
    assert not (tmp_path / "thumbs").exists()


def test_foodx_tasty_and_youcook2_refuse_links_out_of_their_folders(tmp_path):
    secret = tmp_path / "secret.jpg"
    Image.new("RGB", (4, 4)).save(secret)
    foodx = write_foodx(tmp_path / "foodx")
    image = foodx / "train_set" / "train_000003.jpg"
    image.unlink()
    image.symlink_to(secret)
    plan = read_foodx(foodx)
    assert [(Path(p.file).name, p.line) for p in plan.problems] == [("train_info.csv", 6)]
    assert "inside the media root" in plan.problems[0].message
    assert "train_000003.jpg" not in {s.external_id for s in plan.datasets[0].samples}

    tasty = tmp_path / "tasty"
    make_recipe(tasty, "good-pasta")
    folder = make_recipe(tasty, "linked-soup", video=False)
    (folder / "recipe_video.mp4").symlink_to(secret)
    plan = read_tasty(tasty)
    assert [p.key for p in plan.problems] == ["linked-soup"]
    assert "inside the media root" in plan.problems[0].message
    assert [s.external_id for s in plan.datasets[0].samples] == ["good-pasta"]

    youcook2 = write_youcook2(tmp_path / "YouCookII")
    video = youcook2 / "raw_videos" / "validation" / "103" / "burger000e.mp4"
    video.unlink()
    video.symlink_to(secret)
    plan = read_youcook2(youcook2)
    assert [p.key for p in plan.problems] == ["burger000e"]
    assert "inside the media root" in plan.problems[0].message
    assert "burger000e" not in {s.external_id for s in plan.datasets[0].samples}


def test_a_kitchen_manifest_cannot_point_outside_its_folder(ddft_store, tmp_path):
    from engine.importers.kitchen import import_kitchen

    kitchen = tmp_path / "kitchen"
    kitchen.mkdir()
    (kitchen / "kitchen.json").write_text(json.dumps({
        "dishes": [{"slug": "soup", "name": "Soup", "recipe": "r", "recipe_type": "soup"}],
        "images": [{"path": "../../../etc/passwd", "dish": "soup"}],
        "videos": [], "questions": []}))
    (kitchen / "annotations.json").write_text(json.dumps({"database": {}}))
    with pytest.raises(ImportFailed, match="inside the media root"):
        import_kitchen(ddft_store, kitchen)
    with session_scope(ddft_store) as session:
        assert queries.list_samples(session) == []
