"""The app as a whole: the factory, screen switching, help, quitting, an empty store, import cost."""

from __future__ import annotations

import html

import subprocess
import sys

import pytest

from db import queries
from db.store import session_scope
from workbench.app import DdftApp, build_app
from workbench.screens.help import HelpScreen

from .conftest import SIZE, running, settle


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).content)


async def test_build_app_opens_the_workspace_store_and_names_it_in_the_title(tmp_path, monkeypatch):
    from db.store import StoreError, open_store

    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    with pytest.raises(StoreError, match="no store at"):  # the workbench only reads a store
        build_app(tmp_path / "ws")
    assert not (tmp_path / "ws" / "ddft.db").exists()
    open_store(tmp_path / "ws")
    app = build_app(tmp_path / "ws")
    assert isinstance(app, DdftApp)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.title == f"ddft — {(tmp_path / 'ws').resolve()}"


async def test_keys_switch_screens_and_help_lists_the_screen_keys(demo_store):
    async with running(demo_store.url) as (app, pilot):
        seen = []
        for key in "23451":
            await pilot.press(key)
            await settle(pilot, rounds=1)
            seen.append(type(app.screen).__name__)
        assert seen == ["JobsScreen", "CompareScreen", "ReportScreen", "RunsScreen", "SamplesScreen"]

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = str(app.screen.query_one("#help-keys").content)
        assert "Show the next 50 samples" in keys and "Quit" in keys
        assert "x / space" in keys
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "SamplesScreen"

        # At 80×24 the box fits the terminal, a long description wraps under itself, and the
        # box scrolls to the notes at its end.
        await pilot.resize_terminal(80, 24)
        await pilot.press("question_mark")
        await settle(pilot)
        box = app.screen.query_one("VerticalScroll")
        assert box.region.x >= 0 and box.region.right <= 80 and box.region.bottom <= 24
        drawn = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "marked every" in drawn and "             sample the filters select" in drawn
        assert box.max_scroll_y > 0
        await pilot.press("end")
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y
        await pilot.press("escape")
        await pilot.pause()
        await pilot.resize_terminal(*SIZE)

        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0


async def test_an_empty_store_shows_what_to_run_on_every_screen(empty_url):
    async with running(empty_url) as (app, pilot):
        assert "No samples yet" in _text(app, "#sample-detail")
        assert "ddft data import kitchen" in _text(app, "#sample-detail")
        assert _text(app, "#samples-page-label") == "rows 0 of 0"
        await pilot.press("x", "n")  # nothing to toggle or page: no error
        await pilot.press("2")
        await settle(pilot)
        assert "No jobs yet" in _text(app, "#job-detail")
        await pilot.press("c")
        await pilot.press("3")
        await settle(pilot)
        assert "No evaluation samples yet" in _text(app, "#reference")
        assert "No model variants yet" in _text(app, "#reference")
        await pilot.press("v", "4")
        await settle(pilot)
        assert "No eval set yet" in _text(app, "#report-provenance")
        await pilot.press("5")
        await settle(pilot)
        assert "No training runs yet" in _text(app, "#run-summary")
        await pilot.press("o", "c", "r")  # nothing to mark, cancel or resume: no error, no dialog
        await settle(pilot)
        assert type(app.screen).__name__ == "RunsScreen"


async def test_an_eval_set_without_judgments_says_to_generate_and_judge(empty_url):
    from db.store import open_store

    with session_scope(open_store(url=empty_url)) as session:
        dataset = queries.get_or_create_dataset(session, name="held-out", modality="video", purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "v1", "modality": "video", "prompt": "recipe?", "answer": "Dish: Soup"}])
    async with running(empty_url) as (app, pilot):
        await pilot.press("4")
        await settle(pilot)
        provenance = _text(app, "#report-provenance")
        assert "No judgments for held-out yet" in provenance
        assert "ddft judge --eval-set held-out" in provenance
        await pilot.press("3")
        await settle(pilot)
        assert "Dish: Soup" not in _text(app, "#reference")
        assert "No model variants yet" in _text(app, "#reference")


def test_importing_the_app_loads_neither_the_store_nor_the_engine():
    code = "import sys, workbench.app; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(out.stdout.split())
    loaded = {name.split(".")[0] for name in modules}
    # SQLAlchemy alone costs most of a second; the store is opened after the first frame.
    assert not loaded & {"sqlalchemy", "sqlmodel", "engine", "torch", "plotext"}
    # Only the workspace resolution of db/ is imported, none of the store.
    assert {name for name in modules if name.startswith("db.")} == {"db.workspace"}
    # Only the first screen is imported before it is shown.
    screens = {name for name in modules if name.startswith("workbench.screens.")}
    assert screens <= {"workbench.screens.base"}


async def test_a_lazily_opened_store_fills_the_first_screen_once_it_is_open(demo_store):
    import asyncio

    from workbench.screens.samples import SamplesScreen

    app = build_app(url=demo_store.url, lazy_store=True)
    assert app.db_engine is None
    page_loaded = asyncio.Event()

    def hook(message) -> None:
        if isinstance(message, SamplesScreen.PageLoaded):
            page_loaded.set()

    # The store opens in a worker started after the first refresh, so waiting for the workers
    # of the moment can return before it has begun: wait for the page itself.
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await asyncio.wait_for(page_loaded.wait(), timeout=300)  # a safety net, not a timing
        await settle(pilot)
        assert app.db_engine is not None
        assert type(app.screen).__name__ == "SamplesScreen"
        assert _text(app, "#samples-page-label").startswith("rows 1–")


async def test_a_key_pressed_while_the_store_opens_shows_its_screen_once_open(demo_store):
    import threading

    from db.store import open_store

    release = threading.Event()

    def slow_open():
        release.wait(10)
        return open_store(url=demo_store.url)

    app = DdftApp(None, location="slow", open_store=slow_open)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert type(app.screen).__name__ == "SamplesScreen"
        assert _text(app, "#samples-page-label") == "loading…"
        await pilot.press("2")
        await pilot.pause()
        assert type(app.screen).__name__ == "SamplesScreen"
        release.set()
        await settle(pilot)
        assert type(app.screen).__name__ == "JobsScreen"


async def test_a_store_that_cannot_be_opened_ends_the_app_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    import asyncio

    app = build_app(url=f"sqlite:///{blocker}/sub/ddft.db", lazy_store=True)
    failed = asyncio.Event()
    store_failed = app._store_failed

    def on_failure(message: str) -> None:
        store_failed(message)
        failed.set()

    # The store opens in a worker started after the first refresh and the app exits when it
    # fails (cancelling its workers): wait for that failure itself, not for the workers.
    app._store_failed = on_failure
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(failed.wait(), timeout=300)  # a safety net, not a timing
        await pilot.pause()
    assert app.return_code == 1
    assert app.store_error and "no store at" in app.store_error


def test_tui_fast_path_takes_only_a_workspace_option():
    from engine.cli.launch import tui_workspace

    assert tui_workspace(["tui"]) == (True, None)
    assert tui_workspace(["tui", "--workspace", "ws"]) == (True, "ws")
    assert tui_workspace(["tui", "-w", "ws"]) == (True, "ws")
    assert tui_workspace(["tui", "--workspace=ws"]) == (True, "ws")
    # Anything else is the typer app's to parse and explain.
    for args in (["tui", "--help"], ["tui", "-w"], ["tui", "--nope"], ["demo"], [],
                 ["tui", "--workspace="]):
        assert tui_workspace(args) == (False, None)


async def test_the_rating_app_opens_its_screen_once_the_store_is_open(demo_store):
    app = build_app(url=demo_store.url, rater="ann", lazy_store=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "RateScreen"
        await pilot.press("2")  # no way to the screens that name variants
        await settle(pilot)
        assert type(app.screen).__name__ == "RateScreen"
        assert not app.use_command_palette
