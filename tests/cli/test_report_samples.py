"""`ddft report --samples FILE.jsonl`: one line per eval sample and variant behind Table 1, whose
counts and scores give back the table's n, Yes, Failed and Average Score."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.report import report

runner = CliRunner()
ENV = {"COLUMNS": "200"}
JUDGE, PROTOCOL, VERSION = "gpt-4o", "paper", "paper-v2"
# (variant, sample index) → (score, verdict, raw reply) under the table's setting; None: that
# generation is judged only under another prompt version, so it is no row of the table.
SCORES = {
    ("tuned", 0): (4.5, "yes", "Score: 4.5"), ("tuned", 1): (2.0, "no", "Score: 2"),
    ("tuned", 2): (None, "unparsable", "I cannot rate this [/]"), ("tuned", 3): None,
    ("base", 0): (1.0, "no", "Score: 1"), ("base", 1): (3.5, "yes", "Score: 3.5"),
    ("base", 2): (3.0, "no", "Score: 3"),
}


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """ddft"""

    app.command("report")(report)
    return app


def _store(db_engine) -> None:
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="kitchen-eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "recipe?",
             "answer": "Dish: Soup\nIngredients:\n- 1 cup water\nSteps:\n1. Boil.\n2. Serve.",
             "group": f"r{i % 2}",
             "meta": {"segments": [{"segment": [0.0, 2.0], "sentence": "Boil."},
                                   {"segment": [2.0, 4.0], "sentence": "Serve."}]}}
            for i in range(5)])
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        for name in ("tuned", "base"):
            variant = queries.create_variant(session, name=name, base_model="/m")
            for index, sample in enumerate(samples):
                if index == 4:
                    queries.add_generation_failure(session, variant_id=variant.id,
                                                   sample_id=sample.id, task="recipe",
                                                   reason="video too short: 8 frames needed")
                    continue
                generation = queries.add_generation(
                    session, variant_id=variant.id, sample_id=sample.id, prompt="recipe?",
                    text=f"Dish: Soup\nIngredients:\n- 1 cup water\nSteps:\n1. Boil ({name}).",
                    params_key="k", decoding={"do_sample": False},
                    frame_times=[0.5 * i for i in range(8)])
                # Every generation also has a judgment under the earlier prompt version, which
                # the table never counts and the log lists beside the one it does.
                queries.add_judgment(session, generation_id=generation.id, judge=JUDGE,
                                     protocol=PROTOCOL, prompt_version="paper-v1", score=5.0,
                                     verdict="yes", raw="old reply")
                chosen = SCORES.get((name, index))
                if chosen is not None:
                    score, verdict, raw = chosen
                    queries.add_judgment(session, generation_id=generation.id, judge=JUDGE,
                                         protocol=PROTOCOL, prompt_version=VERSION,
                                         score=score, verdict=verdict, raw=raw)
                if name == "tuned" and index == 0:
                    queries.add_grounding(session, generation_id=generation.id, params_key="g",
                                          params={"layers": [0], "heads": [0], "top_k": 1},
                                          steps=[{"index": 0, "text": "1. Boil (tuned).",
                                                  "frames": [1], "frame_indices": [3],
                                                  "times": [0.5]}])


def test_the_sample_log_holds_exactly_the_rows_behind_table_1(ddft_backend_store,
                                                              ddft_workspace, tmp_path):
    _store(ddft_backend_store)
    log = tmp_path / "samples.jsonl"
    result = runner.invoke(_cli(), ["report", "--format", "json", "--prompt-version", VERSION,
                                    "--samples", str(log), "--workspace", str(ddft_workspace)],
                           env=ENV)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    lines = log.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(lines) == len(records) == 3 + 3 + 2  # judged rows, then one failure a variant

    for row in table["rows"]:
        mine = [r for r in records if r["variant"] == row["variant"] and r["row"] == "judged"]
        scored = [r["judgment"]["score"] for r in mine
                  if r["judgment"]["verdict"] != "unparsable"]
        assert len(mine) == row["n"]
        assert sum(r["judgment"]["verdict"] == "yes" for r in mine) == row["yes"]
        assert sum(r["judgment"]["verdict"] == "unparsable" for r in mine) == row["unparsable"]
        assert sum(scored) / len(scored) == row["average_score"]
        assert sum(1 for r in records if r["variant"] == row["variant"]
                   and r["row"] == "failed") == row["failed"] == 1
    assert [(r["variant"], r["row"]) for r in records] == (
        [("tuned", "judged")] * 3 + [("base", "judged")] * 3 + [("tuned", "failed"),
                                                              ("base", "failed")])

    first = records[0]
    assert first["external_id"] == "v0" and first["reference"].startswith("Dish: Soup")
    assert first["generation"]["text"].endswith("Boil (tuned).")
    assert (first["judgment"]["prompt_version"], first["judgment"]["raw"]) == (VERSION,
                                                                               "Score: 4.5")
    assert sorted(j["raw"] for j in first["judgments"]) == ["Score: 4.5", "old reply"]
    assert first["metrics"]["ingredient_recall"] == 1.0
    (grounding,) = first["grounding"]
    assert grounding["steps"][0]["hit"] is True  # 0.5 s lies in the first step's 0–2 s
    unparsable = records[2]
    assert unparsable["judgment"]["raw"] == "I cannot rate this [/]"
    assert records[-1]["failure"]["reason"] == "video too short: 8 frames needed"
    assert "wrote 6 judged samples and 2 failed samples" in result.stderr


def test_without_judgments_nothing_is_written(ddft_store, ddft_workspace, tmp_path):
    log = tmp_path / "samples.jsonl"
    result = runner.invoke(_cli(), ["report", "--samples", str(log), "--workspace",
                                    str(ddft_workspace)], env=ENV)
    assert result.exit_code == 1
    assert "no eval set yet" in result.output
    assert not log.exists()
