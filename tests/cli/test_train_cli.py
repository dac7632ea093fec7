"""`ddft train`: the command a TrainRequest prints runs the same job; flags, bad settings, resume."""

from __future__ import annotations

from typer.testing import CliRunner

from db import queries
from db.store import open_store, session_scope
from engine.cli.main import app
from engine.jobs.requests import TrainRequest
from tests.engine.conftest import engine_tiny_model  # noqa: F401  (a fixture)

runner = CliRunner()


def _text_dataset(workspace, name="qa", n=4):
    db_engine = open_store(workspace)
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=name, modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"{name}{i}", "modality": "text", "prompt": f"Question {i}?",
             "answer": f"Answer number {i}."} for i in range(n)])
    return db_engine


def test_the_requests_command_runs_a_job_with_exactly_the_requests_params(
    ddft_workspace, engine_tiny_model  # noqa: F811
):
    db_engine = _text_dataset(ddft_workspace)
    _text_dataset(ddft_workspace, name="more", n=2)
    request = TrainRequest(variant="cli-v", base=str(engine_tiny_model),
                           datasets={"qa": 1, "more": 0.5},
                           overrides={"max_steps": "2", "batch_size": "2", "log_every": "1"})
    argv = request.command()
    assert argv[:2] == ["ddft", "train"]
    result = runner.invoke(app, [*argv[1:], "--workspace", str(ddft_workspace)])
    assert result.exit_code == 0, result.output
    with session_scope(db_engine) as session:
        (job,) = queries.list_jobs(session, kind="train")
        assert job.params == request.params()
        assert job.status == "succeeded" and job.result["steps"] == 2
        assert job.result["truncated"] == 0 and 0 <= job.result["padding_fraction"] < 1
        variant = queries.get_variant(session, name="cli-v")
        assert variant.job_id == job.id
        metrics = queries.latest_metrics(session, job_id=job.id)
    assert {"loss", "lr", "samples_per_s", "tokens_per_s", "padding_fraction"} <= set(metrics)

    # The job succeeded: there is nothing to resume, and the message says so.
    again = runner.invoke(app, ["train", "--resume", str(job.id), "--workspace",
                                str(ddft_workspace)])
    assert again.exit_code == 1 and "already succeeded" in again.output


def test_flags_and_bad_settings_are_one_message_and_no_job(ddft_workspace):
    db_engine = _text_dataset(ddft_workspace)
    result = runner.invoke(app, [
        "train", "--variant", "v", "--base", "/nowhere", "--dataset", "qa", "--dataset", "ghost",
        "--set", "lora_rank=3", "--set", "lora_dropout=abc", "--steps", "0",
        "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    for part in ("no dataset named ghost", "lora_rank: unknown setting (did you mean lora_r?)",
                 "lora_dropout: expected a number, got 'abc'",
                 "max_steps: expected none or an integer >= 1, got 0"):
        assert part in message, message
    for args, part in ((["--dataset", "qa=zero"], "expected NAME=WEIGHT"),
                       (["--set", "novalue"], "--set novalue: expected KEY=VALUE"),
                       (["--dataset", "qa", "--preset", "nope"], "preset 'nope'")):
        result = runner.invoke(app, ["train", "--variant", "v", "--base", "/m", *args,
                                     "--workspace", str(ddft_workspace)])
        assert result.exit_code == 1 and part in " ".join(result.output.split()), result.output
    result = runner.invoke(app, ["train", "--resume", "99", "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1 and "no train job with id 99" in result.output
    with session_scope(db_engine) as session:
        assert queries.list_jobs(session) == []
