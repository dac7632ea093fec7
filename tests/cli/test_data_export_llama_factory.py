"""`ddft data export --format llama-factory`: LLaMA-Factory's ShareGPT JSON and its
`dataset_info.json` entry, in the shape LLaMA-Factory's data/README.md documents (`conversations`
of `from`/`value` turns, human in odd positions; `<video>`/`<image>` placeholders as many as the
`videos`/`images` paths; `formatting: sharegpt` with its columns and tags)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engine.cli.main import app

runner = CliRunner()


def invoke(workspace, *args):
    result = runner.invoke(app, [*args, "--workspace", str(workspace)], env={"COLUMNS": "200"})
    return result, " ".join(result.output.split())


def _store(workspace, tmp_path):
    """A LLaVA file of a multi-turn video conversation and an image question, imported."""
    media = tmp_path / "media"
    (media / "videos").mkdir(parents=True)
    (media / "images").mkdir()
    (media / "videos" / "soup.mp4").write_bytes(b"")
    (media / "images" / "pie.jpg").write_bytes(b"")
    entries = [
        {"id": "v1", "video": "videos/soup.mp4", "conversations": [
            {"from": "human", "value": "<video>\nCan you give me a recipe?"},
            {"from": "gpt", "value": "Dish: Soup"},
            {"from": "human", "value": "How long does it simmer?"},
            {"from": "gpt", "value": "Twenty minutes."}]},
        {"id": "i1", "image": "images/pie.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat is the dish in this image?"},
            {"from": "gpt", "value": "apple pie"}]},
    ]
    source = tmp_path / "mix.json"
    source.write_text(json.dumps(entries))
    result, out = invoke(workspace, "data", "import", "llava", str(source), "--media-root",
                         str(media), "--name", "mix")
    assert result.exit_code == 0, out
    return media, entries


def _check_sharegpt(entry, column, placeholder):
    """One entry against LLaMA-Factory's documented multimodal ShareGPT shape."""
    turns = entry["conversations"]
    assert set(entry) == {"conversations", column}
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
    assert all(set(t) == {"from", "value"} and isinstance(t["value"], str) for t in turns)
    placeholders = sum(t["value"].count(placeholder) for t in turns)
    assert isinstance(entry[column], list) and placeholders == len(entry[column]) == 1


def test_a_multi_turn_video_dataset_in_llama_factory_format(ddft_workspace, tmp_path):
    media, entries = _store(ddft_workspace, tmp_path)
    out_dir = tmp_path / "lf"
    out_dir.mkdir()
    # A registry LLaMA-Factory users already have: its other entries stay.
    (out_dir / "dataset_info.json").write_text(json.dumps({"alpaca_en": {"file_name": "a.json"}}))
    result, out = invoke(ddft_workspace, "data", "export", "mix-video", str(out_dir / "soup.json"),
                         "--format", "llama-factory", "--media-root", str(media),
                         "--name", "ddft_soup")
    assert result.exit_code == 0, out
    assert "wrote 1 entry to" in out and "media_dir:" in out
    (entry,) = json.loads((out_dir / "soup.json").read_text())
    _check_sharegpt(entry, "videos", "<video>")
    assert entry["videos"] == ["videos/soup.mp4"]
    assert (media / entry["videos"][0]).is_file()
    assert entry["conversations"] == entries[0]["conversations"]  # all four turns
    info = json.loads((out_dir / "dataset_info.json").read_text())
    assert info["alpaca_en"] == {"file_name": "a.json"}
    assert info["ddft_soup"] == {
        "file_name": "soup.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "videos": "videos"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt"}}


def test_images_with_absolute_paths_and_a_broken_registry(ddft_workspace, tmp_path):
    media, _ = _store(ddft_workspace, tmp_path)
    out = tmp_path / "pie.json"
    result, printed = invoke(ddft_workspace, "data", "export", "mix-image", str(out),
                             "--format", "llama-factory")
    assert result.exit_code == 0, printed
    (entry,) = json.loads(out.read_text())
    _check_sharegpt(entry, "images", "<image>")
    assert entry["images"] == [str((media / "images" / "pie.jpg").resolve())]
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["mix-image"]["columns"] == {"messages": "conversations", "images": "images"}

    # A registry that is not LLaMA-Factory's: one line naming it, nothing written.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset_info.json").write_text("[1, 2")
    result, printed = invoke(ddft_workspace, "data", "export", "mix-image",
                             str(broken / "pie.json"), "--format", "llama-factory")
    assert result.exit_code == 1
    assert "dataset_info.json: line 1: expected LLaMA-Factory's dataset registry" in printed
    assert sorted(p.name for p in broken.iterdir()) == ["dataset_info.json"]


def test_the_llava_format_still_needs_its_media_root(ddft_workspace, tmp_path):
    _store(ddft_workspace, tmp_path)
    result, out = invoke(ddft_workspace, "data", "export", "mix-video", str(tmp_path / "x.json"))
    assert result.exit_code == 1 and "--media-root is needed for --format llava" in out
    assert not (tmp_path / "x.json").exists()
