"""The terminal the workbench draws on. Textual sizes its screen by stdout, but draws on stderr:
with stdout piped (`make demo | tee demo.log`, a wrapper that logs) it would open at 80×24 in a
pane of any size. The driver here asks the terminal it draws on first."""

from __future__ import annotations

import os
import sys

from textual.drivers.linux_driver import LinuxDriver


def stream_size(stream: object) -> tuple[int, int] | None:
    """(columns, lines) of the terminal behind `stream`, None when it is not a terminal."""
    try:
        size = os.get_terminal_size(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return None
    return (size.columns, size.lines) if size.columns > 0 and size.lines > 0 else None


class DrawnTerminalDriver(LinuxDriver):
    """Textual's Linux driver, sized by the terminal it writes to (or stdin's) when $COLUMNS and
    $LINES are unset; on resize too, since Textual asks this again on SIGWINCH."""

    def _get_terminal_size(self) -> tuple[int, int]:
        if "COLUMNS" in os.environ or "LINES" in os.environ:
            return super()._get_terminal_size()
        for stream in (self._file, sys.__stdout__, sys.__stdin__):
            size = stream_size(stream)
            if size is not None:
                return size
        return super()._get_terminal_size()
