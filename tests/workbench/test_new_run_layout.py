"""The New run form at 80×24: its problems and buttons reachable, and help on the settings typed
as overrides, read from the settings' schema."""

from __future__ import annotations

from textual.widgets import TextArea

from workbench.dialogs.new_run import NewRunDialog

from .conftest import settle


def _screen_text(app) -> str:
    return "\n".join("".join(segment.text for segment in strip)
                     for strip in app.screen._compositor.render_strips())


async def test_at_80_by_24_a_refused_start_shows_its_problems_and_the_buttons(demo_store):
    from workbench.app import build_app

    app = build_app(url=demo_store.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, NewRunDialog)
        # With no override typed, the help names every setting a line can set.
        help_text = str(app.screen.query_one("#run-settings-help").content)
        assert help_text.startswith("settings: lora_r, lora_alpha") and "val_fraction" in help_text

        app.screen.query_one("#run-overrides", TextArea).text = (
            "lora_rank=3\nloss_normalisation=tokens\nval_fraction=0.1")
        await settle(pilot)
        help_text = " ".join(str(app.screen.query_one("#run-settings-help").content).split())
        assert "loss_normalisation: batch or tokens; default batch." in help_text
        assert "val_fraction: a number in [0, 0.5]; default 0.0. Fraction of each training" \
               in help_text

        await pilot.press("ctrl+s")
        await settle(pilot)
        screen = _screen_text(app)
        # Scrolled to the problems: the unknown key is on screen, and so are the buttons.
        assert "lora_rank: unknown setting (did you mean lora_r?)" in " ".join(screen.split())
        assert "Start run (ctrl+s)" in screen and "Close (esc)" in screen
        assert all(len(line) <= 80 for line in screen.splitlines())
