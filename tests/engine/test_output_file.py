"""Files written where the user names them: never through a planted link, through a temporary
file created exclusively, straight into a pipe or device."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from engine.export import ExportError, OutputError, export_adapter, write_output_file
from engine.importers.llava import export_llava_json, read_llava_json


def test_a_symbolic_link_at_the_output_path_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.csv"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        write_output_file(link, "overwritten")
    assert victim.read_text() == "precious" and link.is_symlink()
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere" / "planted")
    with pytest.raises(OutputError, match="symbolic link"):
        write_output_file(dangling, "x")
    assert not (tmp_path / "nowhere").exists()


def test_the_temporary_file_is_never_a_guessable_name_a_link_can_take(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "data.json"
    # The names the old writers used: .OUT.PID.tmp, OUT.tmp.
    for name in (f".{out.name}.{os.getpid()}.tmp", f"{out.name}.tmp", f".{out.name}.tmp"):
        (tmp_path / name).symlink_to(victim)
    write_output_file(out, "new\n")
    assert out.read_text() == "new\n" and not out.is_symlink()
    assert victim.read_text() == "precious"
    assert {p.name for p in tmp_path.iterdir()} == {
        "victim.txt", "data.json", f".{out.name}.{os.getpid()}.tmp", f"{out.name}.tmp",
        f".{out.name}.tmp"}


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    kept = tmp_path / "kept.csv"
    kept.write_text("old")
    kept.chmod(0o600)
    write_output_file(kept, "new")
    assert kept.read_text() == "new" and stat.S_IMODE(kept.stat().st_mode) == 0o600
    umask = os.umask(0o027)
    try:
        write_output_file(tmp_path / "fresh.csv", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.csv").stat().st_mode) == 0o640


def test_a_folder_or_a_missing_folder_is_one_error(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        write_output_file(tmp_path, "x")
    with pytest.raises(OutputError, match="no folder"):
        write_output_file(tmp_path / "no" / "f.csv", "x")
    assert not (tmp_path / "no").exists()


def test_a_pipe_named_directly_or_through_a_link_is_written_into(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "pipe-link"
    link.symlink_to(fifo)
    for named in (fifo, link):
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
        reader.start()
        write_output_file(named, "through the pipe\n")
        reader.join(timeout=30)
        assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    write_output_file(os.devnull, "into the device")
    (tmp_path / "null-link").symlink_to(os.devnull)
    write_output_file(tmp_path / "null-link", "into the device through a link")
    assert (tmp_path / "null-link").is_symlink()


def test_llava_export_refuses_a_link_and_writes_no_guessable_temporary(tmp_path):
    media = tmp_path / "img.jpg"
    media.write_bytes(b"\xff\xd8")
    data = tmp_path / "in.json"
    data.write_text('[{"id": "a", "image": "img.jpg", "conversations": [{"from": "human", '
                    '"value": "<image>\\nq"}, {"from": "gpt", "value": "a"}]}]')
    samples = read_llava_json(data).datasets[0].samples
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.json"
    (tmp_path / f".{out.name}.{os.getpid()}.tmp").symlink_to(victim)
    assert export_llava_json(samples, out, media_root=tmp_path) == 1
    assert victim.read_text() == "precious" and out.read_text().startswith("[\n")
    linked = tmp_path / "linked.json"
    linked.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        export_llava_json(samples, linked, media_root=tmp_path)
    assert victim.read_text() == "precious"


def test_an_adapter_export_refuses_a_link_as_its_folder(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "export"
    link.symlink_to(elsewhere)
    with pytest.raises(ExportError, match="symbolic link"):
        export_adapter(adapter, link, base_model="base")
    assert list(elsewhere.iterdir()) == [] and link.is_symlink()
