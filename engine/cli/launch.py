"""The `ddft` console script. `ddft tui` goes straight to the workbench, without loading the
other commands, so the first frame comes sooner; everything else goes through the typer app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

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


def open_workbench(workspace: Path | str | None, *, rater: str | None = None,
                   campaign: str | None = None) -> int:
    """Run the workbench (or, with `rater`, the blind rating app) until it quits; the exit code.

    The store opens after the first frame; when it cannot be opened the app ends and the reason
    is printed here, on the normal terminal.
    """
    from db.workspace import database_url

    url = database_url(workspace)
    if url.startswith("sqlite:///"):
        # The commonest mistake, an unusable workspace folder, is told before the screen clears.
        folder = Path(url[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"error: cannot create the workspace folder {folder}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    # The workbench is imported only here: the CLI is the composition root.
    from workbench.app import build_app

    app = build_app(workspace, rater=rater, campaign=campaign, lazy_store=True)
    app.run()
    if app.store_error:
        print(f"error: cannot open the store: {app.store_error}", file=sys.stderr)
        return 1
    return app.return_code or 0


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    is_tui, workspace = tui_workspace(args)
    if is_tui:
        raise SystemExit(open_workbench(workspace))
    from engine.cli.main import app

    app(args=args, prog_name="ddft")


if __name__ == "__main__":
    main()
