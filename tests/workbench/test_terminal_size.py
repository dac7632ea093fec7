"""With stdout piped (`make demo | tee demo.log`) the workbench is sized by the terminal it draws
on (stderr), not opened at 80×24 in a larger pane."""

from __future__ import annotations

import fcntl
import os
import struct
import termios

import pytest

from workbench.app import DdftApp
from workbench.terminal import DrawnTerminalDriver


@pytest.fixture
def pty_of_132_by_43():
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 43, 132, 0, 0))
    stream = os.fdopen(side, "w")
    yield stream
    stream.close()
    os.close(main)


def test_the_driver_is_sized_by_the_terminal_it_draws_on(pty_of_132_by_43, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    driver = DrawnTerminalDriver.__new__(DrawnTerminalDriver)
    driver._file = pty_of_132_by_43  # what Textual draws on (its stderr)
    assert driver._get_terminal_size() == (132, 43)
    # $COLUMNS and $LINES still win, as they do for Textual.
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "30")
    assert driver._get_terminal_size() == (100, 30)


def test_the_workbench_runs_on_that_driver():
    app = DdftApp(None, location="x", open_store=lambda: None)
    assert app.driver_class is DrawnTerminalDriver
