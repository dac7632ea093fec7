"""The New run form offers the two frame-time options: its settings help lists them and, once
typed, says what each expects and does; the command it shows carries them."""

from __future__ import annotations

from workbench.data.new_run import settings_help


def test_the_settings_help_lists_and_explains_both_time_options():
    listed = settings_help("").plain
    assert "time_in_text" in listed and "time_embedding" in listed
    typed = settings_help("time_in_text=true\ntime_embedding = true").plain.splitlines()
    assert typed[0].startswith("time_in_text: true or false; default false. Start each video "
                               "prompt with the sampled frames' times")
    assert typed[1].startswith("time_embedding: true or false; default false. Add a learned "
                               "embedding of each sampled frame's time")
