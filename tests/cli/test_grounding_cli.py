"""`ddft timestamps`, `ddft ground` and `ddft report-video` through CliRunner, on the tiny model
and the synthetic kitchen."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.main import app
from engine.evaluation.grounding import chance_of_hit
from engine.importers.kitchen import EVAL_SET, import_kitchen
from engine.kitchen.build import build_kitchen
from engine.media import sample_frames
from engine.model.loading import format_prompt
from engine.evaluation.timestamps import annotated_segments

runner = CliRunner()


def invoke(workspace, *args):
    return runner.invoke(app, [*args, "--workspace", str(workspace)], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from engine.model.tiny import build_tiny_model
    from tests.engine.conftest import MODEL_CORPUS

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", MODEL_CORPUS, seed=0)


@pytest.fixture(scope="module")
def kitchen_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen")
    build_kitchen(root, videos_per_dish=1, held_out_per_dish=1, images_per_dish=0, seed=1,
                  dishes=("tomato-soup", "garden-salad"))
    return root


def _store(db_engine, model, root) -> None:
    """The kitchen, a `tiny` variant, and its recipe for each eval video (the reference)."""
    import_kitchen(db_engine, root)
    with session_scope(db_engine) as session:
        variant = queries.create_variant(session, name="tiny", base_model=str(model))
        dataset = queries.get_dataset(session, name=EVAL_SET)
        for sample in queries.list_samples(session, dataset_id=dataset.id, limit=None):
            sampled = sample_frames(sample.media_path, 8)
            queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                   prompt=format_prompt("video", sample.prompt),
                                   text=sample.answer, params_key="hand",
                                   frame_indices=sampled.indices, frame_times=sampled.times)


@pytest.mark.parametrize("args, message", [
    (["timestamps", "--variant", "ghost"], "no model variant named 'ghost'"),
    (["ground", "--variant", "tiny", "--eval-set", "nope"], "no eval set named 'nope'"),
    (["ground", "--variant", "tiny", "--layers", "top"],
     "layers: expected 'all', 'late' or numbers and ranges like 12-31, found 'top'"),
    (["ground", "--variant", "tiny", "--heads", "1-x"], "heads: expected 'all' or numbers"),
    (["ground", "--variant", "tiny", "--heads", "late"], "heads: expected 'all' or numbers"),
    (["ground", "--variant", "tiny"], "tiny has no recipes for kitchen-eval to ground"),
    (["timestamps", "--variant", "tiny", "--eval-set", "kitchen-questions"],
     "kitchen-questions holds text samples; timestamps needs videos"),
    (["ground", "--variant", "tiny", "--top-k", "9"], "top_k: expected 1 to 8, found 9"),
    (["ground", "--variant", "tiny", "--layers", "20-4"],
     "layers: expected a range from low to high, found '20-4'"),
    (["report-video", "--eval-set", "nope"], "no eval set named 'nope'"),
])
def test_mistakes_are_one_message_exit_1_and_no_job(ddft_store, ddft_workspace, kitchen_root,
                                                    args, message):
    import_kitchen(ddft_store, kitchen_root)
    with session_scope(ddft_store) as session:
        queries.create_variant(session, name="tiny", base_model="/m")
    result = invoke(ddft_workspace, *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    with session_scope(ddft_store) as session:
        assert queries.list_jobs(session) == []


def test_layers_beyond_a_local_model_are_refused_before_any_job(ddft_store, ddft_workspace,
                                                                tiny_model, kitchen_root):
    _store(ddft_store, tiny_model, kitchen_root)
    result = invoke(ddft_workspace, "ground", "--variant", "tiny", "--layers", "99")
    assert result.exit_code == 1
    assert "layers: expected indices from 0 to 2, found '99'" in " ".join(result.output.split())
    with session_scope(ddft_store) as session:
        assert queries.list_jobs(session) == []


def test_timestamps_ground_and_the_video_report(ddft_store, ddft_workspace, tiny_model,
                                                kitchen_root):
    _store(ddft_store, tiny_model, kitchen_root)
    result = invoke(ddft_workspace, "report-video")
    assert result.exit_code == 0, result.output
    assert "No timestamp answers yet: run `ddft timestamps --variant NAME" in result.output
    assert "No groundings yet" in result.output

    result = invoke(ddft_workspace, "timestamps", "--variant", "tiny", "--max-new-tokens", "6")
    assert result.exit_code == 0, result.output
    assert "succeeded: 2 generated, 0 skipped, 0 failed" in result.output
    result = invoke(ddft_workspace, "ground", "--variant", "tiny", "--layers", "all",
                    "--top-k", "2")
    assert result.exit_code == 0, result.output
    assert "succeeded: 2 grounded, 0 skipped, 0 failed" in result.output

    result = invoke(ddft_workspace, "report-video", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with session_scope(ddft_store) as session:
        samples = queries.list_samples(session, limit=None,
                                       dataset_id=queries.get_dataset(session, name=EVAL_SET).id)
    n_steps = sum(len(annotated_segments(s.meta)) for s in samples)
    (timestamps,) = report["timestamps"]["rows"]
    assert timestamps["variant"] == "tiny" and timestamps["n"] == 2
    assert report["coverage"]["steps"] == n_steps
    (grounding,) = report["grounding"]["rows"]
    assert grounding["params"] == "layers 0-2 · heads all · top-2"
    assert grounding["generations"] == 2 and grounding["matched"] == n_steps
    # Two random frames of the eight, for every annotated step of both videos.
    chances = [chance_of_hit(8, sum(seg.start <= t <= seg.end for t in s.meta["frame_times"]), 2)
               for s in samples for seg in annotated_segments(s.meta)]
    assert grounding["baseline"] == pytest.approx(sum(chances) / len(chances))

    result = invoke(ddft_workspace, "report-video")
    assert "## Timestamps on kitchen-eval" in result.output
    assert "## Frame coverage on kitchen-eval" in result.output
    assert "| tiny | layers 0-2 · heads all · top-2 | 2 |" in result.output
