"""`ddft data import|check|list` through the CLI: summaries, clear failures, nothing half-written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from db import queries
from db.store import open_store, session_scope
from engine.cli.main import app

runner = CliRunner()


def foodx_tree(root: Path, rows: list[str], *, with_images=True) -> Path:
    (root / "annot").mkdir(parents=True)
    (root / "train_set").mkdir()
    (root / "annot" / "class_list.txt").write_text("0 apple_pie\n1 macaron\n2 beef_tartare\n")
    (root / "annot" / "train_info.csv").write_text("".join(r + "\n" for r in rows))
    if with_images:
        from PIL import Image

        for row in rows:
            name = row.split(",")[0]
            if name.endswith(".jpg"):
                Image.new("RGB", (8, 8), (200, 100, 50)).save(root / "train_set" / name)
    return root


def invoke(workspace, *args):
    result = runner.invoke(app, [*args, "--workspace", str(workspace)], env={"COLUMNS": "200"})
    return result, " ".join(result.output.split())


def _count(workspace) -> int:
    with session_scope(open_store(workspace)) as session:
        return queries.count_samples(session)


def test_foodx_import_summary_and_rerun_imports_nothing_new(ddft_workspace, tmp_path):
    root = foodx_tree(tmp_path / "foodx", ["train_000001.jpg,0", "train_000002.jpg,1",
                                            "train_000003.jpg,2"])
    result, out = invoke(ddft_workspace, "data", "import", "foodx251", str(root))
    assert result.exit_code == 0, out
    assert "foodx251-train: imported 3, skipped 0" in out
    result, out = invoke(ddft_workspace, "data", "import", "foodx251", str(root))
    assert "imported 0, skipped 3 already in the store" in out
    with session_scope(open_store(ddft_workspace)) as session:
        answers = sorted(s.answer for s in queries.list_samples(session))
    assert answers == ["apple pie", "beef tartare", "macaron"]


def test_bad_rows_stop_the_import_with_file_and_line_and_write_nothing(ddft_workspace, tmp_path):
    root = foodx_tree(tmp_path / "foodx", ["train_000001.jpg,0", "train_000002.jpg,7",
                                            "train_000003.jpg;1"])
    result, out = invoke(ddft_workspace, "data", "import", "foodx251", str(root))
    assert result.exit_code == 1
    assert "2 problems in" in out and "nothing was imported" in out
    assert "train_info.csv:2" in out and "train_info.csv:3" in out
    assert _count(ddft_workspace) == 0
    result, out = invoke(ddft_workspace, "data", "import", "foodx251", str(root), "--skip-bad")
    assert result.exit_code == 0
    assert "imported 1" in out and "skipped 2 bad rows" in out
    assert _count(ddft_workspace) == 1


def test_a_wrong_path_is_one_message(ddft_workspace, tmp_path):
    result, out = invoke(ddft_workspace, "data", "import", "foodx251", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "nope" in out and "Traceback" not in out


def test_check_marks_samples_and_list_shows_the_counts(ddft_workspace, tmp_path):
    root = foodx_tree(tmp_path / "foodx", ["train_000001.jpg,0", "train_000002.jpg,1"])
    (root / "train_set" / "train_000002.jpg").write_bytes(b"corrupt")
    invoke(ddft_workspace, "data", "import", "foodx251", str(root))
    result, out = invoke(ddft_workspace, "data", "check")
    assert result.exit_code == 0
    assert "checked 2: 1 ok, 0 with warnings, 1 failed" in out
    assert "token budget not checked" in out
    result, out = invoke(ddft_workspace, "data", "list")
    assert "foodx251-train" in out
    result, out = invoke(ddft_workspace, "data", "check", "nope")
    assert result.exit_code == 1 and "no dataset named nope" in out
