"""`ddft serve`: the workbench, or with --rate the blind rating app, in a browser through
textual-serve — the same Textual app, one process per browser tab, behind a token.

Run as a module (`python -m engine.cli.serve --workspace W [--rate] [--campaign C]`) it is the
app one browser tab talks to; textual-serve starts it with its web driver."""

from __future__ import annotations

import argparse
import hmac
import secrets
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli.console import WorkspaceOption, console, fail, friendly, open_workspace
from engine.llm import is_local_host

COOKIE = "ddft_serve_token_{port}"
TOKEN_ENV = "DDFT_SERVE_TOKEN"


def session_command(workspace: Path, *, rate: bool, campaign: Optional[str]) -> str:
    """The shell command textual-serve runs for each browser tab."""
    words = [sys.executable, "-m", "engine.cli.serve", "--workspace", str(workspace)]
    if rate:
        words.append("--rate")
    if campaign:
        words += ["--campaign", campaign]
    return shlex.join(words)


def make_server(command: str, *, host: str, port: int, token: str, title: str,
                public_url: Optional[str], announce: list[str]):
    """A textual-serve Server for `command` that answers only a browser holding `token` (in the
    address once, then in a cookie), and prints `announce` when it is listening."""
    # textual-serve and aiohttp are needed only by this command.
    from aiohttp import web
    from textual_serve.server import Server

    cookie = COOKIE.format(port=port)

    def holds_token(value: Optional[str]) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), token.encode())

    @web.middleware
    async def require_token(request, handler):
        # The page's scripts, styles and fonts are textual-serve's own files: no store data.
        if request.path.startswith("/static/"):
            return await handler(request)
        if holds_token(request.query.get("token")):
            if request.path == "/":
                # Keep the token out of the address bar and the browser's history.
                found = web.HTTPFound("/")
                found.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
                raise found
            return await handler(request)
        if holds_token(request.cookies.get(cookie)):
            return await handler(request)
        raise web.HTTPForbidden(text="ddft serve: open the address with the token that "
                                     "`ddft serve` printed when it started (…/?token=…).\n")

    class DdftServer(Server):
        async def _make_app(self):
            app = await super()._make_app()
            app.middlewares.append(require_token)
            return app

        async def on_startup(self, app) -> None:
            for line in announce:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    return DdftServer(command, host=host, port=port, title=title, public_url=public_url)


@friendly
def serve(
    rate: Annotated[bool, typer.Option("--rate", help="Serve the blind rating app instead of "
                                       "the workbench: each browser tab asks for the rater's "
                                       "name once.")] = False,
    campaign: Annotated[Optional[str], typer.Option(help="With --rate: the campaign to rate "
                                                    "(default: the rater's one open campaign).")]
    = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but a loopback "
                                      "address needs --expose.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    expose: Annotated[bool, typer.Option("--expose", help="Allow listening on an address other "
                                         "machines can reach (the token still guards it; "
                                         "prefer an SSH tunnel or your HTTPS reverse proxy).")]
    = False,
    token: Annotated[Optional[str], typer.Option(envvar=TOKEN_ENV, show_default=False,
                                                 help="Token a browser must present (default: "
                                                 "a new random one, printed).")] = None,
    public_url: Annotated[Optional[str], typer.Option(help="The address browsers use, when it "
                                                      "differs from http://HOST:PORT (a reverse "
                                                      "proxy).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Serve the workbench (or, with --rate, the blind rating app) to a web browser. It listens
    on 127.0.0.1 and asks for a token; reach it from your machine through an SSH tunnel.
    Ctrl+C stops it; every rating is already stored."""
    if not is_local_host(host) and not expose:
        fail(f"--host {host} lets other machines connect: add --expose to mean it (a token is "
             "still required), or keep 127.0.0.1 and use an SSH tunnel or your reverse proxy")
        return
    if campaign is not None and not rate:
        fail("--campaign needs --rate")
        return
    if token is not None and len(token) < 16:
        fail(f"--token (or ${TOKEN_ENV}) must be at least 16 characters; it has {len(token)}")
        return
    path, db_engine = open_workspace(workspace)
    if campaign is not None:
        from db.campaigns import CampaignError
        from db.store import session_scope
        from engine.evaluation.rating import require_campaign

        try:
            with session_scope(db_engine) as session:
                campaign = require_campaign(session, campaign).name
        except CampaignError as exc:
            fail(str(exc))
            return
    db_engine.dispose()
    token = token or secrets.token_urlsafe(24)
    base = (public_url or f"http://{'127.0.0.1' if host == 'localhost' else host}:{port}")
    what = (f"the blind rating app{f' (campaign {campaign})' if campaign else ''}" if rate
            else "the workbench")
    announce = [f"Serving {what} of {path} on {host}:{port}.",
                f"Open: {base.rstrip('/')}/?token={token}"]
    if is_local_host(host) and public_url is None:
        announce.append(f"From your own computer: ssh -N -L {port}:127.0.0.1:{port} "
                        "YOU@THIS-MACHINE, then open the address above there.")
    announce.append("Ctrl+C stops the server (each rating is stored the moment it is given).")
    server = make_server(session_command(path, rate=rate, campaign=campaign), host=host,
                         port=port, token=token, public_url=public_url, announce=announce,
                         title="ddft · blind rating" if rate else "ddft")
    # After Ctrl-C the event loop closes before the served apps' pipe transports are collected;
    # asyncio then reports "Event loop is closed" from their __del__ as a traceback on stderr.
    # The apps have ended by then: that report is noise, every other one is kept.
    default_hook = sys.unraisablehook

    def quiet_closed_loop(unraisable) -> None:
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            default_hook(unraisable)

    sys.unraisablehook = quiet_closed_loop
    try:
        server.serve()
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return
    console.print("ddft serve stopped.", markup=False, highlight=False)


def run_session(argv: list[str] | None = None) -> int:
    """The app of one browser tab: the workbench, or the rating app that first asks for a name."""
    parser = argparse.ArgumentParser(prog="python -m engine.cli.serve")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--rate", action="store_true")
    parser.add_argument("--campaign")
    args = parser.parse_args(argv)
    from workbench.app import build_app

    app = build_app(args.workspace, ask_rater=args.rate, campaign=args.campaign,
                    lazy_store=True)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(run_session())
