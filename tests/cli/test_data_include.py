"""`ddft data include|exclude`: the Samples screen's i/e from the command line, by sample id,
dataset, check status or a search, with a dry run."""

from __future__ import annotations

from datetime import datetime, timezone

from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.main import app

runner = CliRunner()


def _ddft(workspace, *args):
    result = runner.invoke(app, [*args, "--workspace", str(workspace)], env={"COLUMNS": "200"})
    return result, " ".join(result.output.split())


def _fill(db_engine) -> dict[str, list[int]]:
    """Two datasets of three samples; in "soups" the first is checked failed, the second ok."""
    ids = {}
    with session_scope(db_engine) as session:
        for name, words in (("soups", ["tomato soup", "leek soup", "pea soup"]),
                            ("cakes", ["carrot cake", "lemon cake", "tomato tart"])):
            dataset = queries.get_or_create_dataset(session, name=name, modality="text")
            queries.add_samples(session, dataset_id=dataset.id, samples=[
                {"external_id": f"{name}-{i}", "modality": "text", "prompt": f"Cook {w}.",
                 "answer": w} for i, w in enumerate(words)])
            ids[name] = [s.id for s in queries.list_samples(session, dataset_id=dataset.id)]
        now = datetime.now(timezone.utc)
        queries.record_sample_checks(session, checks=[
            queries.SampleCheck(ids["soups"][0], "failed", ["media: cannot decode"], {}, now),
            queries.SampleCheck(ids["soups"][1], "ok", [], {}, now)])
    return ids


def _included(db_engine) -> dict[str, bool]:
    with session_scope(db_engine) as session:
        return {s.external_id: s.included for s in queries.list_samples(session, limit=None)}


def test_exclude_by_check_status_then_include_by_id(ddft_store, ddft_workspace):
    ids = _fill(ddft_store)
    result, out = _ddft(ddft_workspace, "data", "exclude", "--check-status", "failed")
    assert result.exit_code == 0, out
    assert "excluded 1 of 1 selected samples (0 were excluded already)" in out
    assert [k for k, v in _included(ddft_store).items() if not v] == ["soups-0"]
    result, out = _ddft(ddft_workspace, "data", "include", str(ids["soups"][0]),
                        str(ids["soups"][1]))
    assert result.exit_code == 0, out
    assert "included 1 of 2 selected samples (1 were included already)" in out
    assert all(_included(ddft_store).values())


def test_dataset_search_and_ids_combine_and_a_dry_run_changes_nothing(ddft_store,
                                                                      ddft_workspace):
    ids = _fill(ddft_store)
    result, out = _ddft(ddft_workspace, "data", "exclude", "--search", "tomato", "--dry-run")
    assert result.exit_code == 0, out
    assert "would exclude 2 of 2 selected samples (dry run: nothing changed)" in out
    assert all(_included(ddft_store).values())
    result, out = _ddft(ddft_workspace, "data", "exclude", "--search", "tomato", "--dataset",
                        "cakes")
    assert result.exit_code == 0 and "excluded 1 of 1" in out
    assert [k for k, v in _included(ddft_store).items() if not v] == ["cakes-2"]
    result, out = _ddft(ddft_workspace, "data", "exclude", "--dataset", "soups", "--dataset",
                        "cakes", str(ids["soups"][2]), str(ids["cakes"][0]))
    assert result.exit_code == 0 and "excluded 2 of 2" in out
    assert sorted(k for k, v in _included(ddft_store).items() if not v) == [
        "cakes-0", "cakes-2", "soups-2"]
    result, out = _ddft(ddft_workspace, "data", "include", "--dataset", "cakes")
    assert result.exit_code == 0 and "included 2 of 3 selected samples" in out


def test_mistakes_are_one_line_and_change_nothing(ddft_store, ddft_workspace):
    _fill(ddft_store)
    for args, message in [((), "name the samples"),
                          (("--dataset", "pies"), "no dataset named 'pies'"),
                          (("999",), "no sample with id 999"),
                          (("--check-status", "bogus"), "Invalid value")]:
        result, out = _ddft(ddft_workspace, "data", "exclude", *args)
        assert result.exit_code != 0 and message in out and "Traceback" not in out, out
    assert all(_included(ddft_store).values())
