"""Text captures of the workbench's screens at a terminal size, as a user sees them over SSH.

    .venv/bin/python scripts/capture_screens.py WORKSPACE [--size 80x24] [--out DIR]
        [--location TEXT] [--rater NAME [--campaign NAME]]

Opens the workbench on WORKSPACE headless, visits Samples, Compare (then `v`, the next variant,
and that variant's column scrolled to its end: the judgments), Report and the help screen, and
writes each screen as plain text (`samples.txt`, ...) into DIR,
or to stdout without --out. `--location` replaces the workspace path in the title line. With
`--rater` it also captures the blind rating screen; that claims the rater's next item in the
store, as `ddft rate` would (held for them for 30 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from pathlib import Path

# Run from a checkout: the repository root is the script's parent's parent.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (name, keys); "scroll-variant-end" scrolls the first variant column of Compare to its end.
SCREENS = (("samples", ()), ("compare", ("3",)), ("compare-next-variant", ("v",)),
           ("compare-judgments", ("scroll-variant-end",)), ("report", ("4",)),
           ("help", ("question_mark",)))


def screen_text(app) -> str:
    """The app's screen as drawn, as plain text, a line per terminal row."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    console.print(app.screen._compositor.render_update(full=True,
                                                       screen_stack=app._background_screens))
    lines = console.export_text().splitlines()
    return "\n".join(line.rstrip() for line in lines) + "\n"


async def settle(pilot) -> None:
    """Let the screen's workers finish and their messages be handled."""
    from textual.worker import WorkerCancelled, WorkerState

    for _ in range(10):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in pilot.app.workers):
            break
    await pilot.pause()


async def capture(app, size: tuple[int, int], steps) -> dict[str, str]:
    shots = {}
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for name, keys in steps:
            for key in keys:
                if key == "scroll-variant-end":
                    for column in app.screen.query(".generation-scroll"):
                        column.scroll_end(animate=False, immediate=True)
                else:
                    await pilot.press(key)
                await settle(pilot)
            shots[name] = screen_text(app)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--size", default="80x24", help="WIDTHxHEIGHT (default 80x24)")
    parser.add_argument("--out", type=Path, help="write NAME.txt files here (default: stdout)")
    parser.add_argument("--location", help="what the title line names instead of the path")
    parser.add_argument("--rater", help="also capture the rating screen as this rater")
    parser.add_argument("--campaign", help="the rater's campaign (default: their open one)")
    args = parser.parse_args(argv)
    try:
        width, height = (int(n) for n in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WIDTHxHEIGHT such as 80x24, found {args.size!r}")

    from workbench.app import build_app

    apps = [(build_app(args.workspace), SCREENS)]
    if args.rater:
        apps.append((build_app(args.workspace, rater=args.rater, campaign=args.campaign),
                     (("rating", ()),)))
    shots: dict[str, str] = {}
    for app, steps in apps:
        if args.location:
            title = app.title.replace(app.location, args.location)
            app.title = title
        shots.update(asyncio.run(capture(app, (width, height), steps)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in shots.items():
            (args.out / f"{name}.txt").write_text(text)
        print(f"wrote {len(shots)} captures to {args.out}")
    else:
        for name, text in shots.items():
            print(f"--- {name} ({width}×{height})\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
