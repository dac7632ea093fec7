"""The typer CLI through CliRunner: listings, errors for people, jobs, the report."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.main import app
from engine.evaluation.recipe import format_recipe

runner = CliRunner()
REFERENCE = format_recipe("Pancakes", ["1 cup flour", "2 eggs", "1 cup milk"],
                          ["Whisk the flour, eggs and milk.", "Fry ladles of batter."])


def invoke(workspace, *args):
    return runner.invoke(app, [*args, "--workspace", str(workspace)])


def test_help_lists_every_step():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "tui", "train", "generate", "judge", "report", "jobs", "data"):
        assert command in result.output


def test_empty_workspace_listings_say_what_to_run(ddft_store, ddft_workspace):
    result = invoke(ddft_workspace, "data", "list")
    assert result.exit_code == 0 and "ddft data import kitchen" in result.output
    result = invoke(ddft_workspace, "jobs", "list")
    assert result.exit_code == 0 and "no jobs yet" in result.output
    result = invoke(ddft_workspace, "variants", "list")
    assert result.exit_code == 0 and "no model variants yet" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--variant", "x", "--base", "/m", "--dataset", "nope"], "no dataset named nope"),
        (["generate", "--variant", "ghost"], "no model variant named 'ghost'"),
        (["judge", "--eval-set", "nope"], "no eval set named 'nope'"),
        (["report", "--eval-set", "nope"], "no eval set named 'nope'"),
        (["jobs", "show", "7"], "no job with id 7"),
        (["jobs", "cancel", "7"], "no job with id 7"),
        (["jobs", "resume", "7"], "no job with id 7"),
    ],
)
def test_user_mistakes_are_one_message_and_exit_1(ddft_store, ddft_workspace, args, message):
    result = invoke(ddft_workspace, *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_adding_a_variant_checks_the_adapter_folder(ddft_workspace, tmp_path):
    result = invoke(ddft_workspace, "variants", "add", "v", "--base", "org/m", "--adapter",
                    str(tmp_path))
    assert result.exit_code == 1 and "adapter_config.json missing" in result.output
    result = invoke(ddft_workspace, "variants", "add", "v", "--base", str(tmp_path))
    assert result.exit_code == 1 and "expected a model directory with config.json" in result.output
    assert invoke(ddft_workspace, "variants", "add", "v", "--base", "org/m").exit_code == 0
    result = invoke(ddft_workspace, "variants", "list")
    assert "v" in result.output and "/m" in result.output


def test_judge_in_the_foreground_then_report_and_jobs(ddft_store, ddft_workspace):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "recipe?",
             "answer": REFERENCE} for i in range(3)])
        samples = queries.list_samples(session)
        base = queries.create_variant(session, name="base", base_model="/m")
        tuned = queries.create_variant(session, name="tuned", base_model="/m")
        for sample in samples:
            queries.add_generation(session, variant_id=base.id, sample_id=sample.id, prompt="p",
                                   text="flour flour flour", params_key="k")
            queries.add_generation(session, variant_id=tuned.id, sample_id=sample.id,
                                   prompt="p", text=REFERENCE, params_key="k")
    result = invoke(ddft_workspace, "judge")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    result = invoke(ddft_workspace, "report")
    assert result.exit_code == 0
    assert "| base | 0 | 3 | 0.00% | 1.00 | 3 | 0 |" in result.output
    assert "| tuned | 3 | 0 | 100.00% | 5.00 | 3 | 0 |" in result.output
    assert "Judge: offline" in result.output
    result = invoke(ddft_workspace, "report", "--format", "csv")
    assert result.output.splitlines()[0].startswith("variant,yes,no,accuracy")
    # judging again stores nothing new
    result = invoke(ddft_workspace, "judge")
    assert "0 judged, 6 skipped" in result.output
    result = invoke(ddft_workspace, "jobs", "list")
    assert result.exit_code == 0 and result.output.count("succeeded") == 2
    result = invoke(ddft_workspace, "jobs", "show", "1")
    assert "judge" in result.output and "succeeded" in result.output


def test_a_missing_base_model_is_named_before_any_job_starts(ddft_store, ddft_workspace):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "q", "modality": "text", "prompt": "p", "answer": "a"}])
    result = invoke(ddft_workspace, "train", "--variant", "v", "--base", "/no/such/model",
                    "--dataset", "qa")
    assert result.exit_code == 1
    assert "/no/such/model: expected a model directory with config.json" in " ".join(
        result.output.split())
    with session_scope(ddft_store) as session:
        assert queries.list_jobs(session) == []


def test_a_variant_whose_base_is_gone_fails_its_job_with_one_line(ddft_store, ddft_workspace):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="text",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "q", "modality": "text", "prompt": "p", "answer": "a"}])
        queries.create_variant(session, name="gone", base_model="/no/such/model")
    result = invoke(ddft_workspace, "generate", "--variant", "gone")
    assert result.exit_code == 1
    assert "/no/such/model: model directory not found" in result.output
    assert "Traceback" not in result.output
    with session_scope(ddft_store) as session:
        (job,) = queries.list_jobs(session)
    assert job.status == "failed" and "model directory not found" in job.error


def test_generating_on_a_training_set_says_its_scores_are_not_held_out(ddft_store,
                                                                        ddft_workspace):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "q", "modality": "text", "prompt": "p", "answer": "a"}])
        queries.create_variant(session, name="gone", base_model="/no/such/model")
    result = invoke(ddft_workspace, "generate", "--variant", "gone", "--eval-set", "qa")
    assert "qa is a training set; its scores measure how well a variant fits" in " ".join(
        result.output.split())


def test_a_user_error_is_one_red_line_and_any_other_error_is_not_hidden():
    import typer

    from engine.cli.console import friendly
    from engine.jobs.train_settings import TrainError

    probe = typer.Typer()

    @probe.command()
    @friendly
    def train(bug: bool = False) -> None:
        if bug:
            raise KeyError("not a user mistake")
        # A bracketed name must come out literally, never as Rich markup.
        raise TrainError("preset 'my[/]preset': expected one of paper, tiny, found neither")

    result = CliRunner().invoke(probe, [])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: preset 'my[/]preset': expected one of paper, tiny, found neither"]
    result = CliRunner().invoke(probe, ["--bug"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
