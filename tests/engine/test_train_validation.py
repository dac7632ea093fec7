"""Held-out validation loss, the best checkpoint of a run, and experiment trackers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from db import queries
from db.store import session_scope
from engine.jobs.train_settings import (
    BestCheckpoint,
    TrainConfig,
    TrainError,
    apply_overrides,
    best_checkpoint,
)
from engine.train import TrainExample, split_validation, train_lora

from .test_train import Recorder


def _examples(media: Path) -> list[TrainExample]:
    """Eight text questions and four images, as two datasets."""
    text = [TrainExample("text", f"How long do I rest dish {i}?", f"About {i + 2} minutes.",
                         None, sample_id=i, dataset="qa") for i in range(8)]
    images = [TrainExample("image", "What is the dish in this image?", dish,
                           str(media / f"{colour}.png"), sample_id=10 + i, dataset="dishes")
              for i, (colour, dish) in enumerate([("red", "Tomato Soup"), ("green", "Salad")] * 2)]
    return text + images


def test_a_fraction_of_each_dataset_is_held_out_by_seed():
    examples = [TrainExample("text", "Q?", "A.", None, i, dataset=name)
                for i, name in enumerate(["a"] * 20 + ["b"] * 3 + ["c"])]
    train, held = split_validation(examples, 0.1, seed=0)
    assert sorted(train + held) == list(range(24)) and train == sorted(train)
    by_dataset = [examples[i].dataset for i in held]
    # 10% of 20 is 2; of 3, at least one; a dataset of one sample keeps it for training.
    assert (by_dataset.count("a"), by_dataset.count("b"), by_dataset.count("c")) == (2, 1, 0)
    assert split_validation(examples, 0.1, seed=0) == (train, held)
    assert split_validation(examples, 0.1, seed=1)[1] != held
    assert split_validation(examples, 0.0, seed=0) == (list(range(24)), [])
    # Never a whole dataset: half of two is one, and 0.5 of three leaves one to train on.
    two = [TrainExample("text", "Q?", "A.", None, i, dataset="d") for i in range(2)]
    assert len(split_validation(two, 0.5, seed=0)[1]) == 1


class StubTracker:
    """An accelerate GeneralTracker that keeps what it is given."""

    name = "stub"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self):
        from accelerate.tracking import GeneralTracker

        # A subclass made here, so that accelerate sees a GeneralTracker without the test
        # module importing accelerate at collection time.
        self.__class__ = type("Stub", (StubTracker, GeneralTracker), {})
        self.config: dict = {}
        self.logged: list[tuple[int, dict]] = []
        self.finished = False

    @property
    def tracker(self):
        return self

    def start(self):
        pass

    def store_init_configuration(self, values):
        self.config = dict(values)

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


def test_validation_loss_is_measured_logged_recorded_and_picks_the_best_checkpoint(
        engine_tiny_model, engine_media_dir, tmp_path, ddft_store):
    examples = _examples(engine_media_dir)
    config = TrainConfig(max_steps=6, batch_size=2, learning_rate=3e-3,
                         projector_learning_rate=3e-3, lora_dropout=0.0, warmup_ratio=0.0,
                         val_fraction=0.25, eval_every=3, save_every=2, log_every=2, seed=0)
    recorder = Recorder()
    recorder.notes = []
    recorder.note = recorder.notes.append
    stub = StubTracker()
    run = tmp_path / "run"
    result = train_lora(base=str(engine_tiny_model), examples=examples, out_dir=run,
                        config=config, callbacks=recorder, device="cpu", trackers=[stub])
    assert result.steps == 6
    _, held = split_validation(examples, 0.25, seed=0)
    assert len(held) == 3  # two of the eight questions, one of the four images
    assert any("3 of 12 samples held out for the validation loss" in n for n in recorder.notes)

    # Measured every 3 steps and at each checkpoint (2, 4, final 6); logged with the step's
    # loss even where the step is not a logging step (3).
    logged = {step: values for step, values in recorder.logs}
    assert sorted(logged) == [2, 3, 4, 6]
    val = {step: values["val_loss"] for step, values in logged.items() if "val_loss" in values}
    assert sorted(val) == [2, 3, 4, 6] and all(v > 0 for v in val.values())
    assert all("loss" in values for values in logged.values())
    assert val[6] < val[2], val  # the held-out answers are learned from the others

    for name, step in (("step-000002", 2), ("step-000004", 4), ("final", 6)):
        record = json.loads((run / name / "train_config.json").read_text())
        assert record["val_loss"] == val[step]
        assert sorted(record["val_samples"]) == sorted(examples[i].sample_id for i in held)
        assert record["n_train"] == 9 and record["config"]["val_fraction"] == 0.25

    # The trackers got every logged value at its step, the settings, and were closed.
    assert [(s, v) for s, v in stub.logged] == recorder.logs
    assert stub.config["val_fraction"] == 0.25 and stub.config["max_length"] == "none"
    assert stub.finished

    # The store's view: checkpoint rows and metrics as a train job writes them.
    with session_scope(ddft_store) as session:
        job = queries.create_job(session, kind="train", title="t", params={})
        for step, values in recorder.logs:
            queries.add_metrics(session, job_id=job.id, step=step, values=values)
        for step, path, final in recorder.checkpoints:
            queries.add_checkpoint(session, job_id=job.id, step=step, path=str(path), final=final)
        best = best_checkpoint(session, job_id=job.id)
    lowest = min((val[s], s) for s in (2, 4, 6))
    expected_path = run / ("final" if lowest[1] == 6 else f"step-{lowest[1]:06d}")
    assert best == BestCheckpoint(lowest[1], str(expected_path), lowest[0], lowest[1] == 6,
                                  best.id)
    assert best.id is not None


def test_the_best_checkpoint_reads_folders_then_metrics_and_skips_missing_ones(ddft_store, tmp_path):
    def folder(name, val_loss=None):
        path = tmp_path / name
        path.mkdir()
        record = {"step": 0} if val_loss is None else {"step": 0, "val_loss": val_loss}
        (path / "train_config.json").write_text(json.dumps(record))
        return path

    with session_scope(ddft_store) as session:
        job = queries.create_job(session, kind="train", title="t", params={})
        queries.add_checkpoint(session, job_id=job.id, step=10, path=str(folder("a", 1.5)))
        # No val_loss in its folder (an older checkpoint): the store's metric at its step.
        queries.add_checkpoint(session, job_id=job.id, step=20, path=str(folder("b")))
        queries.add_metrics(session, job_id=job.id, step=20, values={"val_loss": 0.9})
        # The lowest of all, but its folder was deleted: it cannot be used.
        queries.add_checkpoint(session, job_id=job.id, step=30, path=str(tmp_path / "gone"))
        queries.add_metrics(session, job_id=job.id, step=30, values={"val_loss": 0.1})
        # Equal to step 20's: the earlier one wins.
        queries.add_checkpoint(session, job_id=job.id, step=40, path=str(folder("d", 0.9)),
                               final=True)
        best = best_checkpoint(session, job_id=job.id)
        assert (best.step, best.path, best.val_loss, best.final) == (20, str(tmp_path / "b"), 0.9,
                                                                     False)

        bare = queries.create_job(session, kind="train", title="t", params={})
        queries.add_checkpoint(session, job_id=bare.id, step=5, path=str(folder("e")))
        with pytest.raises(TrainError, match=f"job {bare.id}: no checkpoint has a validation "
                                             "loss .*val_fraction > 0"):
            best_checkpoint(session, job_id=bare.id)


def test_a_tracker_that_is_not_installed_is_one_line_before_anything_runs(tmp_path):
    missing = [name for name, modules in (("tensorboard", ("tensorboard", "tensorboardX")),
                                          ("wandb", ("wandb",)), ("mlflow", ("mlflow",)))
               if not any(importlib.util.find_spec(m) for m in modules)]
    if not missing:
        pytest.skip("tensorboard, wandb and mlflow are all installed")
    expected = (f"report_to: expected installed trackers, found {', '.join(missing)} not "
                f"installed (pip install {' '.join(missing)})")
    # `ddft train --set report_to=…` and the New run form say it before a job is made …
    with pytest.raises(TrainError) as caught:
        apply_overrides(TrainConfig(), {"report_to": ", ".join(missing)})
    assert expected in str(caught.value)
    # … and a run given such a config says it before it loads anything.
    config = TrainConfig(report_to=",".join(missing))
    with pytest.raises(TrainError) as caught:
        train_lora(base=str(tmp_path / "no-model"), examples=[
            TrainExample("text", "Q?", "A.", None, 0)], out_dir=tmp_path / "run", config=config)
    message = str(caught.value)
    assert "\n" not in message and expected in message
    assert not (tmp_path / "run").exists()
    with pytest.raises(TrainError, match="report_to: expected none, or one or more of "
                                         "tensorboard, wandb, mlflow separated by commas, "
                                         "got 'tensorbored'"):
        apply_overrides(TrainConfig(), {"report_to": "tensorbored"})


@pytest.mark.skipif(not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")),
                    reason="tensorboard is not installed: the stub tracker above covers the "
                           "interface, the test before this one the error")
def test_tensorboard_gets_the_runs_metrics(engine_tiny_model, tmp_path):
    config = TrainConfig(max_steps=2, batch_size=1, report_to="tensorboard")
    train_lora(base=str(engine_tiny_model), examples=[TrainExample("text", "Q?", "A.", None, 0)],
               out_dir=tmp_path / "run", config=config, device="cpu")
    assert list((tmp_path / "run" / "trackers").rglob("events.out.tfevents.*"))
