"""The New run form: defaults from the store, the live `ddft train …` command, problems, starting the job."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Checkbox, DataTable, Input, TextArea

from db import queries
from workbench.dialogs.new_run import NewRunDialog

from .conftest import running, settle

TRAIN_DATASETS = {"kitchen-images": 1.0, "kitchen-videos": 1.0, "kitchen-text": 1.0}


def _train_request():
    try:
        from engine.jobs.requests import TrainRequest
    except ImportError as exc:
        pytest.skip(f"engine.jobs.requests (TrainRequest) is not in the tree yet: {exc}")
    return TrainRequest


@pytest.fixture
def tiny_base(demo_store):
    """The demo's base variant pointed at a directory that holds ddft's tiny-model marker, so the
    form picks the `tiny` preset for it."""
    from engine.model.tiny import MARKER

    base = demo_store.root / "models" / "tiny"
    base.mkdir(parents=True)
    (base / MARKER).write_text("{}")
    (base / "config.json").write_text("{}")  # what a model directory must hold to be accepted
    with demo_store.session() as session:
        variant = queries.get_variant(session, name="base")
        variant.base_model = str(base)
        session.add(variant)
    return str(base)


def _text(app, selector: str) -> str:
    widget = app.screen.query_one(selector)
    return str(getattr(widget.content, "plain", widget.content))


async def _open_form(pilot) -> NewRunDialog:
    await pilot.press("5")
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    assert isinstance(pilot.app.screen, NewRunDialog)
    return pilot.app.screen


async def _set(pilot, selector: str, text: str) -> None:
    pilot.app.screen.query_one(selector, Input).value = text
    await pilot.pause()


async def test_the_form_shows_the_command_and_follows_the_fields(demo_store, tiny_base):
    TrainRequest = _train_request()
    async with running(demo_store.url) as (app, pilot):
        await _open_form(pilot)
        # Defaults: a fresh name, the newest base without an adapter, every training dataset at 1.
        assert app.screen.query_one("#run-variant", Input).value == "lora-1"
        assert app.screen.query_one("#run-base", Input).value == tiny_base
        assert app.screen.query_one("#run-preset", Input).value == "tiny"
        assert "kitchen-eval" not in str(app.screen.query("Checkbox").nodes)
        expected = TrainRequest(variant="lora-1", base=tiny_base, preset="tiny",
                                datasets=TRAIN_DATASETS, overrides={}, gpus=1)
        assert _text(app, "#run-command") == expected.shell()

        app.screen.query_one("#run-variant", Input).focus()
        await pilot.press("end", *"-v2")  # typed, as a user would
        await _set(pilot, "#run-preset", "paper")
        app.screen.query_one("#ds-check-2", Checkbox).value = False  # kitchen-text out
        await _set(pilot, "#ds-weight-1", "2.5")
        app.screen.query_one("#run-overrides", TextArea).insert("learning_rate=1e-4\nepochs = 2")
        await _set(pilot, "#run-gpus", "2")
        expected = TrainRequest(variant="lora-1-v2", base=tiny_base, preset="paper",
                                datasets={"kitchen-images": 1.0, "kitchen-videos": 2.5},
                                overrides={"learning_rate": "1e-4", "epochs": "2"}, gpus=2)
        assert _text(app, "#run-command") == expected.shell()
        assert "lora-1-v2" in _text(app, "#run-command")

        # A line that is not key=value: the form says which, and shows no command.
        app.screen.query_one("#run-overrides", TextArea).insert("\nwarmup")
        await pilot.pause()
        assert "overrides line 3: expected key=value, found 'warmup'" in _text(app, "#run-problems")
        assert "ddft train" not in _text(app, "#run-command")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, NewRunDialog)


async def test_submit_shows_the_stores_problems_then_starts_the_run(demo_store, tiny_base, monkeypatch):
    TrainRequest = _train_request()
    jobs = pytest.importorskip("engine.jobs.runner")  # where submit and resume find spawn_job
    spawned: list[int] = []
    monkeypatch.setattr(jobs, "spawn_job", lambda db_engine, job_id, *, workspace: spawned.append(job_id) or 1)
    async with running(demo_store.url) as (app, pilot):
        form = await _open_form(pilot)
        await _set(pilot, "#run-variant", "tuned")  # the demo's trained variant has this name
        for index in range(3):
            form.query_one(f"#ds-check-{index}", Checkbox).value = False
        await pilot.pause()
        invalid = TrainRequest(variant="tuned", base=tiny_base, preset="tiny", datasets={},
                               overrides={}, gpus=1)
        with demo_store.session() as session:
            problems = invalid.problems(session)
        assert problems, "TrainRequest.problems accepts a taken variant name and no datasets"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form
        shown = _text(app, "#run-problems")
        assert all(problem in shown for problem in problems)
        with demo_store.session() as session:
            assert len(queries.list_jobs(session, kind="train")) == 1
        assert spawned == []

        await _set(pilot, "#run-variant", "kitchen-v2")
        form.query_one("#ds-check-0", Checkbox).value = True
        form.query_one("#ds-check-1", Checkbox).value = True
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, NewRunDialog)
        valid = TrainRequest(variant="kitchen-v2", base=tiny_base, preset="tiny",
                             datasets={"kitchen-images": 1.0, "kitchen-videos": 1.0}, overrides={}, gpus=1)
        with demo_store.session() as session:
            job = queries.list_jobs(session, kind="train")[0]
            assert job.id != demo_store.train_job_id
            # The device is free: the queue starts the new run at once.
            assert (job.kind, job.title, job.status) == ("train", "train kitchen-v2", "running")
            assert job.params == json.loads(json.dumps(valid.params()))
        assert spawned == [job.id]
        # The Runs screen lists the new run and has its cursor on it.
        table = app.screen.query_one("#runs-table", DataTable)
        selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert selected == str(job.id)
        assert "Run " + str(job.id) in _text(app, "#run-summary")
