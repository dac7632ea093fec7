"""The timestamp training task made from stored segments (checked against the real YouCook2
annotation excerpt), and the paired comparison of variants' timed steps against a baseline."""

from __future__ import annotations

import json
import shutil

import pytest

from db import queries
from db.store import session_scope
from engine.evaluation.timestamps import (
    TIMESTAMP_PROMPT,
    annotated_segments,
    parse_timestamped_steps,
    render_comparison_markdown,
    score_timestamps,
    timestamp_comparison,
)
from engine.importers.base import MEDIA_ROOTS_KEY, apply_plan
from engine.importers.timestamps import (
    TimestampTaskError,
    make_timestamp_dataset,
    timestamp_answer,
)
from tests.real_fixtures import REAL_FIXTURES

REAL_YOUCOOK2 = REAL_FIXTURES / "youcook2"


def _real_database() -> dict:
    path = REAL_YOUCOOK2 / "youcookii_annotations_trainval.json"
    if not path.is_file():
        pytest.skip("real YouCook2 excerpt absent")
    return json.loads(path.read_text())["database"]


def test_every_real_youcook2_video_answers_its_own_segments_back_through_the_parser():
    """The answer a video trains on is read back by the parser `ddft timestamps` scores with,
    to the same segments (tIoU 1 each): real sentences with double spaces, lower case, commas
    and numbers ("cook for 2-3 minutes") included."""
    database = _real_database()
    assert len(database) == 41
    for video_id, video in database.items():
        segments = annotated_segments({"segments": video["annotations"]})
        answer = timestamp_answer(segments, video["duration"])
        parsed = parse_timestamped_steps(answer)
        assert parsed.unparsable == () and len(parsed.steps) == len(segments), video_id
        assert [(s.start, s.end) for s in parsed.steps] == [
            (min(s.start, video["duration"]), min(s.end, video["duration"])) for s in segments]
        score = score_timestamps(parsed, segments, video["duration"])
        assert score.beyond_duration == 0 and score.inverted == 0
        assert all(iou == 1.0 for iou in score.ious), video_id
    first = annotated_segments({"segments": database["GLd3aX16zBg"]["annotations"]})
    assert timestamp_answer(first[:2]).splitlines() == [
        f"1. [{first[0].start:.1f}s - {first[0].end:.1f}s] "
        f"{first[0].sentence[0].upper() + ' '.join(first[0].sentence.split())[1:]}.",
        f"2. [{first[1].start:.1f}s - {first[1].end:.1f}s] "
        f"{first[1].sentence[0].upper() + ' '.join(first[1].sentence.split())[1:]}.",
    ]


def test_a_youcook2_training_split_becomes_a_timestamp_dataset_like_any_other(ddft_store,
                                                                             tmp_path):
    """The real excerpt imported as ddft imports YouCook2 (training and validation videos on
    disk), then made into the timestamp task: one sample per training video with its segments,
    the held-out videos left out, curated and re-run like any dataset."""
    from engine.importers.youcook2 import read_youcook2

    database = _real_database()
    root = tmp_path / "YouCookII"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(REAL_YOUCOOK2 / "youcookii_annotations_trainval.json", root / "annotations")
    shutil.copy(REAL_YOUCOOK2 / "label_foodtype.csv", root)
    shutil.copytree(REAL_YOUCOOK2 / "splits", root / "splits")
    for video_id, video in database.items():
        path = root / "raw_videos" / video["subset"] / video["recipe_type"] / f"{video_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    plan = read_youcook2(root, subsets=("training", "validation"), name="yc2")
    assert plan.problems == []
    apply_plan(ddft_store, plan)
    training = {k: v for k, v in database.items() if v["subset"] == "training"}

    summary, made = make_timestamp_dataset(ddft_store, "yc2")
    assert (summary.dataset, summary.imported) == ("yc2-timestamps", len(training)) == (
        "yc2-timestamps", 29)
    assert len(made.left_out) == 12 and {why for _, why in made.left_out} == {
        "split validation, not train"}
    with session_scope(ddft_store) as session:
        source = queries.get_dataset(session, name="yc2")
        dataset = queries.get_dataset(session, name="yc2-timestamps")
        assert (dataset.purpose, dataset.modality) == ("train", "video")
        assert dataset.meta[MEDIA_ROOTS_KEY] == source.meta[MEDIA_ROOTS_KEY]
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        for sample in samples:
            video = training[sample.external_id]
            assert sample.prompt == TIMESTAMP_PROMPT and sample.split == "train"
            assert sample.group == video["recipe_type"] and sample.included
            assert sample.check_status == "unchecked"  # `ddft data check` checks it as any
            segments = annotated_segments(sample.meta)
            assert len(segments) == len(video["annotations"])
            assert sample.answer == timestamp_answer(segments, video["duration"])
        # Curated like any dataset: an excluded source video is left out of a new task.
        first = queries.list_samples(session, dataset_id=source.id, split="train", limit=1)[0]
        first.included = False
        session.add(first)
    again, _ = make_timestamp_dataset(ddft_store, "yc2")
    assert (again.imported, again.skipped) == (0, 28)  # the excluded one is not asked for
    _, other = make_timestamp_dataset(ddft_store, "yc2", name="yc2-steps")
    assert (first.external_id, "excluded in yc2") in other.left_out

    with pytest.raises(TimestampTaskError, match="dataset 'nope': not in the store"):
        make_timestamp_dataset(ddft_store, "nope")
    with pytest.raises(TimestampTaskError, match="exists and is not the timestamp task of yc2"):
        make_timestamp_dataset(ddft_store, "yc2", name="yc2")


def _store(db_engine, answers: dict[str, list[str]], segments: list[list[tuple]], groups):
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "p", "answer": "a",
             "media_path": f"/v{i}.mp4", "duration_s": 10.0, "group": group,
             "meta": {"segments": [{"segment": list(s), "sentence": "x"} for s in segs]}}
            for i, (segs, group) in enumerate(zip(segments, groups))])
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        for name, texts in answers.items():
            variant = queries.create_variant(session, name=name, base_model="/m")
            for sample, text in zip(samples, texts):
                queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       prompt=TIMESTAMP_PROMPT, text=text, params_key="t",
                                       task="timestamps")
        return dataset.id


def test_the_comparison_pairs_videos_and_bounds_each_difference(ddft_store):
    segments = [[(0, 2), (2, 5)], [(1, 4), (4, 8)], [(0, 5), (5, 9)], [(0, 3), (3, 6)]]
    recipe = ["Dish: soup\n1. Chop.", "Steps:\n1. Fry.", "nothing", "1. Boil."]
    timed = ["1. [0s - 2s] a\n2. [2s - 5s] b",  # exact: 1
             "1. [1s - 4s] a\n2. [4s - 6s] b",  # 1 and 0.5
             "1. [0s - 5s] a\n2. [4s - 12s] b",  # 1, 4/8; 12 > 10 past the end; an overlap
             "1. [0s - 3s] a"]  # 1, and a segment missed
    dataset_id = _store(ddft_store, {"recipe": recipe, "timed": timed}, segments,
                        ["soup", "soup", "salad", "bread"])
    with session_scope(ddft_store) as session:
        comparison = timestamp_comparison(session, dataset_id=dataset_id, baseline="recipe",
                                          n_boot=2000)
        with pytest.raises(ValueError, match="baseline 'nobody': no timestamp answers on eval"):
            timestamp_comparison(session, dataset_id=dataset_id, baseline="nobody")
    rows = {row.figure: row for row in comparison.rows}
    assert {row.variant for row in comparison.rows} == {"timed"}
    assert rows["mean_iou"].n == 4 and rows["mean_iou"].clusters == 3
    assert rows["mean_iou"].baseline_value == 0.0
    assert rows["mean_iou"].value == pytest.approx((1 + 0.75 + 0.75 + 1) / 4)
    assert rows["mean_iou_segments"].value == pytest.approx((1 + 0.75 + 0.75 + 0.5) / 4)
    assert rows["iou_at_05"].value == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert rows["beyond"].value == pytest.approx((1 / 4) / 4)
    assert rows["overlap"].value == pytest.approx(1 / 4)
    assert 0 < rows["mean_iou"].low <= rows["mean_iou"].diff <= rows["mean_iou"].high
    assert rows["overlap"].low == 0.0 and rows["overlap"].high == 1.0
    markdown = render_comparison_markdown(comparison)
    assert "| recipe (baseline) | 4 | 0.000 |" in markdown
    assert f"| timed | 4 | {rows['mean_iou'].value:.3f} ({rows['mean_iou'].diff:+.3f}, " \
           f"{rows['mean_iou'].low:+.3f} to {rows['mean_iou'].high:+.3f})" in markdown


def test_the_command_makes_the_task_and_refuses_in_one_literal_line(ddft_store, ddft_workspace):
    import typer
    from typer.testing import CliRunner

    from engine.cli.timeaware import data_timestamps

    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="videos", modality="video")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "v0", "modality": "video", "prompt": "p", "answer": "a",
             "media_path": "/v0.mp4", "duration_s": 9.0,
             "meta": {"segments": [{"segment": [1, 4], "sentence": "chop [/] it"}]}},
            {"external_id": "v1", "modality": "video", "prompt": "p", "answer": "a",
             "media_path": "/v1.mp4", "meta": {}}])
    app = typer.Typer()
    app.command()(data_timestamps)
    runner = CliRunner()
    made = runner.invoke(app, ["videos", "--workspace", str(ddft_workspace)])
    assert made.exit_code == 0, made.output
    assert "videos-timestamps: 1 imported, 0 already there" in made.output
    assert "1 left out" in made.output
    with session_scope(ddft_store) as session:
        task = queries.get_dataset(session, name="videos-timestamps")
        [sample] = queries.list_samples(session, dataset_id=task.id, limit=None)
        assert sample.answer == "1. [1.0s - 4.0s] Chop [/] it."
    refused = runner.invoke(app, ["[/]nope", "--workspace", str(ddft_workspace)])
    assert refused.exit_code == 1
    assert "dataset '[/]nope': not in the store" in refused.output
