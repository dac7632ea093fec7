"""`ddft serve` in a real browser: headless Chromium opens the served rating app, a rater types
their name and rates two items with the keyboard, the ratings are in the store, and nothing the
page received names a variant, a run or a model path. Screenshots of the rating page and of the
Compare screen are written where $DDFT_SCREENSHOTS points (`make screenshots` points it at
docs/screenshots/), else into the test's own folder.

Chromium is driven through its DevTools protocol over aiohttp's websocket client (aiohttp comes
with textual-serve). Without a Chromium on PATH the test skips; `scripts/ensure_chromium.sh`
installs Debian's package (`make test` runs it)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_for

from .test_rate_screen import (
    ADAPTER,
    BASE_MODEL,
    BASE_NAME,
    JOB_ID,
    JOB_TITLE,
    TUNED_NAME,
    _build,
    _ratings,
)

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH: run `scripts/ensure_chromium.sh` (Debian's chromium package), "
           "then `pytest tests/workbench/test_browser_rating.py`")

TOKEN = "browser-test-token-0123456789"
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
# Generous: a guard against a hang, never the expected time of anything.
PATIENCE = 90.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ddft() -> list[str]:
    return [sys.executable, "-m", "engine.cli.launch"]


class DevTools:
    """One Chromium page over the DevTools protocol: commands, and every event kept in order."""

    def __init__(self, websocket) -> None:
        self.websocket = websocket
        self.next_id = 0
        self.replies: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.websocket:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.replies:
                self.replies.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)
                self.changed.set()

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.replies[self.next_id] = future
        await self.websocket.send_str(json.dumps({"id": self.next_id, "method": method,
                                                  "params": params}))
        reply = await asyncio.wait_for(future, PATIENCE)
        assert "error" not in reply, (method, reply)
        return reply.get("result", {})

    def received(self) -> bytes:
        """Every websocket frame the page received from the server, escapes removed."""
        chunks = []
        for event in self.events:
            if event.get("method") == "Network.webSocketFrameReceived":
                response = event["params"]["response"]
                payload = response["payloadData"]
                chunks.append(base64.b64decode(payload) if response["opcode"] == 2
                              else payload.encode())
        return ANSI.sub(b"", b"".join(chunks))

    async def until_received(self, text: str) -> None:
        """Wait until the page has received `text` (an event-driven wait, bounded by PATIENCE)."""
        async def arrived() -> None:
            while text.encode() not in self.received():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(arrived(), PATIENCE)
        except TimeoutError:
            tail = self.received()[-600:].decode(errors="replace")
            raise AssertionError(f"the page never received {text!r}; last: {tail!r}") from None

    async def type(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    async def press(self, key: str) -> None:
        """One key press: "Enter", a digit or a letter."""
        if key == "Enter":
            code, char, name = 13, "\r", "Enter"
        else:
            code, char = ord(key.upper()), key
            name = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
        await self.send("Input.dispatchKeyEvent", type="keyDown", key=key, code=name,
                        windowsVirtualKeyCode=code, text=char)
        await self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=name,
                        windowsVirtualKeyCode=code)

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def page_text(self) -> str:
        result = await self.send("Runtime.evaluate", returnByValue=True,
                                 expression="document.documentElement.outerHTML + "
                                            "document.body.innerText")
        return result["result"]["value"]


class Served:
    """`ddft serve` running as its own process group, stopped with Ctrl-C (SIGINT)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        self.process = subprocess.Popen(
            [*_ddft(), "serve", "--port", str(self.port), "--token", TOKEN, *args],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._listening, "ddft serve listening on its port")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"ddft serve ended: {self.log.read_text(errors='replace')}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        """Ctrl-C; the exit code. Every app process the server started has ended with it."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=PATIENCE)
        wait_for(self._group_gone, "the served apps to end with the server")
        return code

    def _group_gone(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False


class Chromium:
    """Headless Chromium with its DevTools port, one page."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-port=0",
             f"--user-data-dir={folder}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = folder / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1,
                 "Chromium's DevTools port")
        self.port = int(port_file.read_text().split()[0])

    async def page(self, session, *, width: int, height: int) -> DevTools:
        async with session.get(f"http://127.0.0.1:{self.port}/json/list") as reply:
            targets = await reply.json(content_type=None)
        page = next(t for t in targets if t["type"] == "page")
        websocket = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        tools = DevTools(websocket)
        await tools.send("Network.enable")
        await tools.send("Page.enable")
        # The page's size in CSS pixels: the served terminal fits its columns and rows to it.
        await tools.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                         deviceScaleFactor=1, mobile=False)
        return tools

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=PATIENCE)


def _screenshots(tmp_path: Path) -> Path:
    chosen = os.environ.get("DDFT_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path / "screenshots"


# Page sizes that give a terminal of about 80×24 and 160×45 at the page's default font.
SMALL, LARGE = (790, 470), (1570, 880)


async def _open(chromium: Chromium, session, url: str, size: tuple[int, int]) -> DevTools:
    tools = await chromium.page(session, width=size[0], height=size[1])
    await tools.send("Page.navigate", url=url)
    return tools


async def _rate_in_browser(served: Served, chromium: Chromium, shots: Path) -> bytes:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        # Without the token the server answers nothing of the app.
        async with session.get(f"{served.url}/") as reply:
            assert reply.status == 403
            assert "token" in await reply.text()
        async with session.get(f"{served.url}/ws") as reply:
            assert reply.status == 403

        tools = await _open(chromium, session, f"{served.url}/?token={TOKEN}", SMALL)
        await tools.until_received("Your name as a rater")
        await tools.send("Runtime.evaluate", expression="document.querySelector("
                         "'.xterm-helper-textarea').focus()")
        await tools.type("grace")
        await tools.press("Enter")
        await tools.until_received("item 1 of 6")
        await tools.screenshot(shots / "rating-80x24.png")
        for number in (1, 2):
            for key in "454":
                await tools.press(key)
            await tools.press("Enter")
            await tools.until_received(f"item {number + 1} of 6")
        page = await tools.page_text()
        tools.reader.cancel()
        return tools.received() + page.encode()


def test_a_browser_rater_rates_two_items_blind_and_the_server_stops_cleanly(tmp_path: Path):
    store = _build(tmp_path / "ws")
    store.db_engine.dispose()
    served = Served(["--rate", "--campaign", "omelette-single", "--workspace",
                     str(tmp_path / "ws")], tmp_path / "serve.log")
    # About an 80×24 terminal at the page's default font size.
    chromium = Chromium(tmp_path / "chromium")
    try:
        seen = asyncio.run(_rate_in_browser(served, chromium, _screenshots(tmp_path)))
    finally:
        chromium.stop()
        code = served.stop()
    log = served.log.read_text(errors="replace")
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "ddft serve stopped." in log

    ratings = _ratings(store, "omelette-single")
    assert len(ratings) == 2
    assert all(sum(r.scores.values()) == 13 for r in ratings)
    # The rater is the same one `ddft rate --rater grace` would be.
    from db.campaigns import get_rater
    from db.store import session_scope

    with session_scope(store.db_engine) as session:
        assert {r.rater_id for r in ratings} == {get_rater(session, name="grace").id}

    assert b"item 3 of 6" in seen  # what the page received is what this test reads
    for secret in (TUNED_NAME, BASE_NAME, ADAPTER, BASE_MODEL, JOB_TITLE, str(JOB_ID),
                   "SECRETVARIANT", "/secret/"):
        assert secret.encode() not in seen, secret


def test_serve_refuses_a_public_address_without_expose_and_a_short_token(tmp_path: Path):
    from typer.testing import CliRunner

    from engine.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--workspace", str(tmp_path)])
    assert result.exit_code == 1
    assert "--expose" in result.output and "SSH tunnel" in result.output
    result = runner.invoke(app, ["serve", "--token", "short", "--workspace", str(tmp_path)])
    assert result.exit_code == 1 and "at least 16 characters" in result.output
    result = runner.invoke(app, ["serve", "--campaign", "x", "--workspace", str(tmp_path)])
    assert result.exit_code == 1 and "--campaign needs --rate" in result.output


async def _compare_in_browser(served: Served, chromium: Chromium, shots: Path) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for size, label in ((SMALL, "80x24"), (LARGE, "160x45")):
            tools = await _open(chromium, session, f"{served.url}/?token={TOKEN}", size)
            await tools.until_received("kitchen-images")
            await tools.send("Runtime.evaluate", expression="document.querySelector("
                             "'.xterm-helper-textarea').focus()")
            before = len(tools.received())
            await tools.press("3")
            await tools.until_received("Reference")
            assert len(tools.received()) > before
            await tools.screenshot(shots / f"compare-{label}.png")
            tools.reader.cancel()
            await tools.websocket.close()


def test_the_served_workbench_opens_compare_in_a_browser(tmp_path: Path):
    from .conftest import _build_demo

    store = _build_demo(tmp_path / "ws")
    store.db_engine.dispose()
    served = Served(["--workspace", str(tmp_path / "ws")], tmp_path / "serve.log")
    chromium = Chromium(tmp_path / "chromium")
    try:
        asyncio.run(_compare_in_browser(served, chromium, _screenshots(tmp_path)))
    finally:
        chromium.stop()
        code = served.stop()
    log = served.log.read_text(errors="replace")
    assert code == 0 and "Traceback" not in log, log
