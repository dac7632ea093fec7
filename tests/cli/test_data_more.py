"""The CLI over the other formats: generated questions end to end, LLaVA JSON in and out,
YouCook2's paper-style subset counts, Tasty problems."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from db import queries
from db.store import open_store, session_scope
from engine.cli.main import app
from tests.engine.test_questions import NumberedPairs
from tests.fake_openai import API_KEY, fake_openai_server  # noqa: F401

runner = CliRunner()


def invoke(workspace, *args, env=None):
    result = runner.invoke(app, [*args, "--workspace", str(workspace)],
                           env={"COLUMNS": "200", **(env or {})})
    return result, " ".join(result.output.split())


def test_generate_questions_then_they_are_a_text_dataset(ddft_workspace, fake_openai, tmp_path):
    fake_openai.handler = NumberedPairs(10)
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.base_url}
    result, out = invoke(ddft_workspace, "data", "generate-questions", "--n", "30",
                         "--out", str(tmp_path / "q"), env=env)
    assert result.exit_code == 0, out
    assert "cooking-questions: imported 30" in out
    with session_scope(open_store(ddft_workspace)) as session:
        dataset = queries.get_dataset(session, name="cooking-questions")
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
    assert len(samples) == 30 and {s.modality for s in samples} == {"text"}
    assert samples[0].meta["model"] == "gpt-3.5-turbo"
    assert API_KEY not in "".join(p.read_text() for p in (tmp_path / "q").iterdir())


def test_generate_questions_without_a_key_is_one_message(ddft_workspace, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result, out = invoke(ddft_workspace, "data", "generate-questions", "--n", "5")
    assert result.exit_code == 1 and "OPENAI_API_KEY" in out and "Traceback" not in out


def test_llava_json_in_and_out(ddft_workspace, tmp_path):
    media = tmp_path / "media"
    (media / "videos").mkdir(parents=True)
    (media / "videos" / "soup.mp4").write_bytes(b"")
    entries = [
        {"id": "v1", "video": "videos/soup.mp4", "conversations": [
            {"from": "human", "value": "<video>\nCan you give me a recipe?"},
            {"from": "gpt", "value": "Dish: Soup"}]},
        {"id": "t1", "conversations": [
            {"from": "human", "value": "How long do eggs boil?"},
            {"from": "gpt", "value": "Nine minutes."}]},
    ]
    source = tmp_path / "mix.json"
    source.write_text(json.dumps(entries))
    result, out = invoke(ddft_workspace, "data", "import", "llava", str(source),
                         "--media-root", str(media), "--name", "mix")
    assert result.exit_code == 0, out
    assert "mix-video: imported 1" in out and "mix-text: imported 1" in out
    result, out = invoke(ddft_workspace, "data", "export", "mix-video", str(tmp_path / "out.json"),
                         "--media-root", str(media))
    assert result.exit_code == 0, out
    (exported,) = json.loads((tmp_path / "out.json").read_text())
    assert exported["video"] == "videos/soup.mp4"
    assert exported["conversations"] == entries[0]["conversations"]
    result, out = invoke(ddft_workspace, "data", "export", "nope", str(tmp_path / "x.json"),
                         "--media-root", str(media))
    assert result.exit_code == 1 and "no dataset named 'nope'" in out


def youcook2_tree(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    database = {}
    for video, recipe in [("-abc", "101"), ("_def", "101"), ("ghi", "102")]:
        database[video] = {"duration": 30.000000000000004, "subset": "validation",
                           "recipe_type": recipe, "video_url": "cc",
                           "annotations": [{"segment": [1, 9], "id": 0, "sentence": "chop onions"},
                                           {"segment": [10, 20], "id": 1, "sentence": "fry them"}]}
        folder = root / "raw_videos" / "validation" / recipe
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{video}.mp4").write_bytes(b"")
    (root / "annotations" / "youcookii_annotations_trainval.json").write_text(
        json.dumps({"database": database}))
    (root / "label_foodtype.csv").write_text("101,onion soup \n102,fried onions\n")
    return root


def test_youcook2_subset_counts_and_min_videos(ddft_workspace, tmp_path):
    root = youcook2_tree(tmp_path / "yc2")
    result, out = invoke(ddft_workspace, "data", "import", "youcook2", str(root))
    assert result.exit_code == 0, out
    assert "3 videos from 2 recipes" in out
    result, out = invoke(ddft_workspace, "data", "import", "youcook2", str(root),
                         "--min-videos-per-recipe", "2", "--name", "yc2-min2")
    assert "2 videos from 1 recipe" in out
    with session_scope(open_store(ddft_workspace)) as session:
        dataset = queries.get_dataset(session, name="yc2-min2")
        assert dataset.purpose == "eval"
        samples = queries.list_samples(session, dataset_id=dataset.id)
    assert {s.external_id for s in samples} == {"-abc", "_def"}


def test_a_bad_tasty_recipe_names_its_file(ddft_workspace, tmp_path):
    recipe = tmp_path / "tasty" / "bad-soup"
    recipe.mkdir(parents=True)
    (recipe / "recipe.xml").write_text("<recipe><title>Soup</title><ingredients>")
    (recipe / "fps.txt").write_text("25\n")
    (recipe / "csvalignment.dat").write_text("1,2\n")
    (recipe / "recipe_video.mp4").write_bytes(b"")
    result, out = invoke(ddft_workspace, "data", "import", "tasty", str(tmp_path / "tasty"))
    assert result.exit_code == 1
    assert "bad-soup/recipe.xml:1" in out and "nothing was imported" in out
