"""Without a terminal (stdin from a file or a pipe, stderr to a file) `ddft tui` and `ddft rate`
say so in one line and exit, instead of drawing escape codes into a file and waiting for keys;
`ddft demo` builds its workspace and says how to open it."""

from __future__ import annotations

import subprocess
import sys

from db.store import open_store

TIMEOUT_S = 120  # a hang fails the test; the commands themselves return in seconds


def _ddft(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli.launch", *args], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def test_tui_and_rate_without_a_terminal_are_one_line(tmp_path):
    open_store(tmp_path / "ws", create=True).dispose()
    result = _ddft("tui", "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: ddft tui needs a terminal, and stdin is not one: run it in a terminal (over "
        "SSH, `ssh -t`); to rate in a browser, `ddft serve --rate`")
    assert result.stdout == ""  # no escape codes anywhere
    missing = _ddft("tui", "--workspace", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 1
    assert "no store at" in missing.stderr and "needs a terminal" not in missing.stderr
    assert not (tmp_path / "none" / "ddft.db").exists()


def test_rate_without_a_terminal_claims_nothing(tmp_path):
    from sqlmodel import select

    from db.models import Assignment
    from db.store import session_scope
    from tests.workbench.test_rate_screen import _build

    (tmp_path / "ws").mkdir()
    store = _build(tmp_path / "ws")
    result = _ddft("rate", "--rater", "ana", "--campaign", "omelette-pairs", "--workspace",
                   str(tmp_path / "ws"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().startswith("error: ddft rate needs a terminal, and stdin is not "
                                            "one")
    with session_scope(store.db_engine) as session:
        assert session.exec(select(Assignment)).all() == []


def test_demo_without_a_terminal_builds_and_says_how_to_open_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import engine.demo
    from engine.cli.main import app

    built = tmp_path / "ws"
    monkeypatch.setattr(engine.demo, "run_demo", lambda workspace, **kwargs: built)
    result = CliRunner().invoke(app, ["demo", "--workspace", str(built)])
    assert result.exit_code == 0, result.output
    assert (f"stdin is not a terminal, so the workbench is not opened; `ddft tui --workspace "
            f"{built}` opens it in one") in " ".join(result.output.split())
