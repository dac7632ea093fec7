"""The `ddft` console script. `ddft tui` goes straight to the workbench, without loading the
other commands, so the first frame comes sooner; everything else goes through the typer app."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from engine.cli.tui import open_workbench

WORKSPACE_FLAGS = ("--workspace", "-w")


def tui_workspace(args: Sequence[str]) -> tuple[bool, Optional[str]]:
    """(True, workspace or None) when `args` is exactly `tui` with at most a workspace option;
    (False, None) for anything else, which the typer app parses (and explains)."""
    if not args or args[0] != "tui":
        return False, None
    rest = list(args[1:])
    if not rest:
        return True, None
    if len(rest) == 2 and rest[0] in WORKSPACE_FLAGS and not rest[1].startswith("-"):
        return True, rest[1]
    if len(rest) == 1 and rest[0].startswith("--workspace=") and len(rest[0]) > len("--workspace="):
        return True, rest[0].split("=", 1)[1]
    return False, None


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    is_tui, workspace = tui_workspace(args)
    if is_tui:
        raise SystemExit(open_workbench(workspace))
    from engine.cli.main import app, start_queue_on_open

    start_queue_on_open()
    app(args=args, prog_name="ddft")


if __name__ == "__main__":
    main()
