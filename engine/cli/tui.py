"""Opening the workbench (or the blind rating app) from the command line: what `ddft tui`,
`ddft demo` and `ddft rate` end in. Import-light, for the console script's fast path."""

from __future__ import annotations

import sys
from pathlib import Path


def not_a_terminal() -> str | None:
    """Which of the streams the workbench needs is not a terminal: it reads keys from stdin and
    draws on stderr (stdout may be piped: `make demo | tee demo.log`). None when both are."""
    for name, stream in (("stdin", sys.stdin), ("stderr", sys.__stderr__)):
        try:
            if stream is None or not stream.isatty():
                return name
        except (AttributeError, ValueError):  # closed, or replaced by something without isatty
            return name
    return None


def open_workbench(workspace: Path | str | None, *, rater: str | None = None,
                   campaign: str | None = None) -> int:
    """Run the workbench (or, with `rater`, the blind rating app) until it quits; the exit code.

    The store opens after the first frame; when it cannot be opened the app ends and the reason
    is printed here, on the normal terminal.
    """
    from db.workspace import database_url, make_private_folder

    url = database_url(workspace)
    if url.startswith("sqlite:///"):
        # The commonest mistake, an unusable workspace folder, is told before the screen clears.
        folder = Path(url[len("sqlite:///"):]).parent
        try:
            make_private_folder(folder)
        except OSError as exc:
            print(f"error: cannot create the workspace folder {folder}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    # The workbench is imported only here: the CLI is the composition root.
    from workbench.app import build_app

    missing = not_a_terminal()
    if missing:
        # Textual would draw escape codes into a file and wait for keys that never come. The
        # store is opened first so that a missing one is told as it is on a terminal.
        from db.errors import UserError

        try:
            build_app(workspace, rater=rater, campaign=campaign).db_engine.dispose()
        except UserError as exc:
            print(f"error: cannot open the store: {exc}", file=sys.stderr)
            return 1
        command = "ddft rate" if rater else "ddft tui"
        print(f"error: {command} needs a terminal, and {missing} is not one: run it in a "
              f"terminal (over SSH, `ssh -t`); to rate in a browser, `ddft serve --rate`",
              file=sys.stderr)
        return 1
    app = build_app(workspace, rater=rater, campaign=campaign, lazy_store=True)
    app.run()
    if app.store_error:
        print(f"error: cannot open the store: {app.store_error}", file=sys.stderr)
        return 1
    return app.return_code or 0
