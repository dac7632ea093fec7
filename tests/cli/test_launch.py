"""The `ddft` console script: `ddft tui` takes its fast path; everything else reaches typer."""

from __future__ import annotations

import pytest

from engine.cli.launch import main


def test_tui_on_an_unusable_workspace_fails_before_the_screen_clears(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main(["tui", "--workspace", str(blocker / "ws")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f"cannot create the workspace folder {blocker / 'ws'}" in err


def test_other_commands_go_through_the_typer_app(tmp_path, capsys):
    from db.store import open_store

    open_store(tmp_path / "ws").dispose()  # listing reads a store; it never makes one
    with pytest.raises(SystemExit) as exit_info:
        main(["jobs", "list", "--workspace", str(tmp_path / "ws")])
    assert exit_info.value.code == 0
    assert "no jobs yet" in capsys.readouterr().out.lower()
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
