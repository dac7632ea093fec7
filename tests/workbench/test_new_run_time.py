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


def test_a_ticked_time_option_sets_its_key_and_a_second_setting_is_refused():
    from workbench.data.new_run import RunForm, parse_form

    form = RunForm(variant="v", base="b", preset="tiny", datasets=(("kitchen-videos", True, "1"),),
                   overrides="", gpus="1", time_options=("time_embedding",))
    arguments, problems = parse_form(form)
    assert problems == [] and arguments["overrides"] == {"time_embedding": "true"}
    both = RunForm(**{**form.__dict__, "overrides": "time_embedding=false"})
    assert parse_form(both) == (None, ["time_embedding is ticked and also typed in the overrides "
                                       "(time_embedding=false); keep one"])


async def test_the_form_offers_both_options_and_the_timestamp_task_unticked(demo_store):
    from textual.widgets import Checkbox

    from db import queries
    from engine.importers.timestamps import make_timestamp_dataset

    from .conftest import running, settle
    from .test_new_run_form import _open_form, _text

    with demo_store.session() as session:  # the videos need segments to make the task from
        videos = queries.get_dataset(session, name="kitchen-videos")
        for sample in queries.list_samples(session, dataset_id=videos.id, limit=None):
            sample.meta = {**sample.meta, "segments": [{"segment": [0.0, 3.0], "sentence": "stir"}]}
            session.add(sample)
    make_timestamp_dataset(demo_store.db_engine, "kitchen-videos")
    async with running(demo_store.url) as (app, pilot):
        await _open_form(pilot)
        boxes = {str(box.label): box for box in app.screen.query(Checkbox)}
        task = boxes["kitchen-videos-timestamps  (video, step times)"]
        assert task.value is False and boxes["kitchen-videos  (video)"].value is True
        embedding = app.screen.query_one("#run-time-embedding", Checkbox)
        assert str(embedding.label) == "a learned frame-time embedding" and not embedding.value
        assert "time_embedding" not in _text(app, "#run-command")
        embedding.value = True
        task.value = True
        await pilot.pause()
        await settle(pilot)
        command = _text(app, "#run-command")
        assert "--set time_embedding=true" in command
        assert "kitchen-videos-timestamps" in command
