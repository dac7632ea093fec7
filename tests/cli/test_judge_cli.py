"""`ddft judge --judge gpt` through the CLI against a local OpenAI-compatible server."""

from __future__ import annotations

from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.main import app
from engine.evaluation.recipe import format_recipe
from tests.fake_openai import API_KEY, fake_openai_server, reply  # noqa: F401

runner = CliRunner()
REFERENCE = format_recipe("Pancakes", ["1 cup flour", "2 eggs"], ["Whisk.", "Fry."])


def _store(db_engine):
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "recipe?",
             "answer": REFERENCE, "group": "pancakes"} for i in range(2)])
        variant = queries.create_variant(session, name="tuned", base_model="/m")
        for index, sample in enumerate(queries.list_samples(session)):
            # Different texts: the judge's cache would answer a repeated request itself.
            queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                   prompt="p", text=f"{REFERENCE}\n{index + 3}. Serve.",
                                   params_key="k")


def test_the_gpt_judge_scores_through_the_cli_and_the_report_names_it(
        ddft_store, ddft_workspace, fake_openai):
    _store(ddft_store)
    fake_openai.script(reply("4"), reply("I cannot decide."))
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.base_url, "COLUMNS": "200"}
    result = runner.invoke(app, ["judge", "--judge", "gpt", "--concurrency", "1",
                                 "--workspace", str(ddft_workspace)], env=env)
    assert result.exit_code == 0, result.output
    with session_scope(ddft_store) as session:
        rows = queries.judged_rows(session, judge="gpt-3.5-turbo")
    assert sorted((r.verdict, r.score) for r in rows) == [("unparsable", None), ("yes", 4.0)]
    result = runner.invoke(app, ["report", "--judge", "gpt-3.5-turbo", "--workspace",
                                 str(ddft_workspace)], env=env)
    assert "| tuned | 1 | 0 | 100.00% | 4.00 | 2 | 1 |" in result.output
    assert "Judge: gpt-3.5-turbo" in result.output and "Protocol: paper" in result.output


def test_pairwise_needs_two_variants(ddft_store, ddft_workspace):
    _store(ddft_store)
    result = runner.invoke(app, ["judge", "--judge", "gpt", "--protocol", "pairwise",
                                 "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1 and "--pair A --pair B" in result.output


def _jobs(db_engine) -> list:
    with session_scope(db_engine) as session:
        return queries.list_jobs(session)


def test_without_a_key_the_command_refuses_before_making_a_job(ddft_store, ddft_workspace,
                                                               monkeypatch):
    _store(ddft_store)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = runner.invoke(app, ["judge", "--judge", "gpt", "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.output and "Traceback" not in result.output
    assert _jobs(ddft_store) == []  # no failed job row left behind


def test_a_rejected_key_an_unreachable_server_or_an_unknown_model_make_no_job(
        ddft_store, ddft_workspace, fake_openai):
    _store(ddft_store)
    wrong = {"OPENAI_API_KEY": "sk-wrong-key-000000000000", "OPENAI_BASE_URL": fake_openai.base_url}
    result = runner.invoke(app, ["judge", "--judge", "gpt", "--workspace", str(ddft_workspace)],
                           env=wrong)
    assert result.exit_code == 1, result.output
    assert "rejected the API key (401 Unauthorized): check OPENAI_API_KEY" in result.output
    assert "sk-wrong" not in result.output

    right = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.base_url, "COLUMNS": "200"}
    result = runner.invoke(app, ["judge", "--judge", "gpt", "--model", "gpt-4o-mini",
                                 "--workspace", str(ddft_workspace)], env=right)
    assert result.exit_code == 1, result.output
    assert "does not serve model 'gpt-4o-mini' (--model); it serves: gpt-3.5-turbo" in " ".join(
        result.output.split())

    closed = fake_openai.base_url
    fake_openai.stop()  # nothing listens there any more
    result = runner.invoke(app, ["judge", "--judge", "gpt", "--workspace", str(ddft_workspace)],
                           env={**right, "OPENAI_BASE_URL": closed})
    assert result.exit_code == 1, result.output
    assert f"cannot reach {closed}" in " ".join(result.output.split())
    assert _jobs(ddft_store) == [] and fake_openai.chat_requests == []


def test_a_server_or_key_without_the_model_list_still_judges(ddft_store, ddft_workspace,
                                                             fake_openai):
    _store(ddft_store)
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.base_url, "COLUMNS": "200"}
    for status in (403, 404):  # a project key without Models permission; no /models at all
        fake_openai.models_status = status
        result = runner.invoke(app, ["judge", "--judge", "gpt", "--concurrency", "1",
                                     "--workspace", str(ddft_workspace)], env=env)
        assert result.exit_code == 0, result.output
    assert len(_jobs(ddft_store)) == 2  # the first judged both recipes, the second skipped them
    assert len(fake_openai.chat_requests) == 2
