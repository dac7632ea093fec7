"""One bad eval video never costs a job: a truncated MP4, a 3-frame MOV and a rotated MOV beside
good kitchen videos, through the generate, timestamps and ground jobs, the failure rows, the
report's Failed column, the frame coverage, and every command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.evaluation.recipe import RECIPE_PROMPT
from engine.importers.kitchen import EVAL_SET, import_kitchen
from engine.jobs import create_job, run_job
from engine.kitchen.build import build_kitchen
from engine.media import sample_frames
from engine.model.loading import format_prompt

TRUNCATED, SHORT, ROTATED = "crpt_vid001", "short_vid", "rotated_vid"


def write_video(path: Path, *, n_frames: int = 24, width: int = 64, height: int = 48,
                rotation: int | None = None, faststart: bool = False, seed: int = 0) -> Path:
    """An H.264 video of noisy red frames written with PyAV; `rotation` goes into the
    container as a display matrix, `faststart` puts the index before the frames."""
    import av

    rng = np.random.default_rng(seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for _ in range(n_frames):
            noise = rng.integers(-40, 40, size=(height, width, 3))
            frame = np.clip(np.array([200, 60, 40])[None, None, :] + noise, 0, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8),
                                                                   format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def broken_media(tmp_path_factory) -> dict[str, Path]:
    """A truncated MP4 (its index in front, the frames cut at 60%), a 3-frame MOV, and a MOV
    whose display matrix rotates it by 90 degrees; the folder name holds Rich markup."""
    root = tmp_path_factory.mktemp("broken") / "media [red]x"
    root.mkdir()
    whole = write_video(root / "whole.mp4", faststart=True)
    data = whole.read_bytes()
    truncated = root / f"{TRUNCATED}.mp4"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    whole.unlink()
    return {TRUNCATED: truncated, SHORT: write_video(root / f"{SHORT}.mov", n_frames=3),
            ROTATED: write_video(root / f"{ROTATED}.mov", rotation=90, seed=1)}


@pytest.fixture(scope="module")
def kitchen_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitchen")
    build_kitchen(root, videos_per_dish=1, held_out_per_dish=1, images_per_dish=0, seed=1,
                  dishes=("tomato-soup", "garden-salad"))
    return root


def mixed_eval_set(db_engine, kitchen_root: Path, media: dict[str, Path], *,
                   model: Path | None = None) -> dict[str, int]:
    """The kitchen's eval set (two good videos) with the broken ones added to it (same prompt,
    reference and step segments as the first good one), and a `tiny` variant when `model` is
    given. Returns external id → sample id."""
    import_kitchen(db_engine, kitchen_root)
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        (first, *_) = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": name, "modality": "video", "split": first.split,
             "media_path": str(path), "prompt": first.prompt, "answer": first.answer,
             "group": f"broken-{name}",
             "meta": {"dish": first.meta.get("dish"), "segments": first.meta["segments"]}}
            for name, path in media.items()])
        if model is not None:
            queries.create_variant(session, name="tiny", base_model=str(model))
        return {s.external_id: s.id
                for s in queries.list_samples(session, dataset_id=dataset.id, limit=None)}


def readable(path: Path) -> bool:
    """Whether this machine's decoder gives 8 frames of the video (the rotated one depends on
    the decoder's build)."""
    from engine.media import MediaError

    try:
        sample_frames(path, 8)
    except MediaError:
        return False
    return True


def _run(db_engine, workspace: Path, kind: str, params: dict):
    return run_job(db_engine, create_job(db_engine, kind=kind, params=params),
                   workspace=workspace)


# ------------------------------------------------------------------ the jobs


def test_a_bad_file_costs_only_its_own_sample(ddft_store, ddft_workspace, engine_tiny_model,
                                               kitchen_root, broken_media):
    ids = mixed_eval_set(ddft_store, kitchen_root, broken_media, model=engine_tiny_model)
    bad = {TRUNCATED, SHORT} | ({ROTATED} if not readable(broken_media[ROTATED]) else set())
    # Batches of 4 hold good and bad videos together.
    params = {"variant": "tiny", "eval_set": EVAL_SET, "max_new_tokens": 4, "batch_size": 4}
    job = _run(ddft_store, ddft_workspace, "generate", params)
    assert job.status == "succeeded", job.error
    assert job.result["generated"] == len(ids) - len(bad)
    assert job.result["failed"] == len(bad)
    assert {f["sample"] for f in job.result["failures"]} == bad
    with session_scope(ddft_store) as session:
        stored = {g.sample_id for g in queries.list_generations(session)}
        failures = queries.list_generation_failures(session)
    assert stored == {ids[name] for name in ids if name not in bad}
    reasons = {f.external_id: f.reason for f in failures}
    assert set(reasons) == bad and {f.task for f in failures} == {"recipe"}
    assert {f.job_id for f in failures} == {job.id}
    assert reasons[SHORT] == "video too short: 8 frames needed, it has 3"
    assert reasons[TRUNCATED].startswith("cannot ")
    for reason in reasons.values():  # one clean line: no path, no decoder internals
        assert "\n" not in reason and str(broken_media[SHORT].parent) not in reason
        assert ".cc:" not in reason and " @ 0x" not in reason

    # A rerun tries the failed samples again and skips the stored ones.
    again = _run(ddft_store, ddft_workspace, "generate", params)
    assert (again.result["generated"], again.result["skipped"], again.result["failed"]) == (
        0, len(ids) - len(bad), len(bad))
    with session_scope(ddft_store) as session:
        assert len(queries.list_generation_failures(session, current=False)) == 2 * len(bad)
        assert len(queries.list_generation_failures(session)) == len(bad)  # the latest only
        assert queries.generation_failure_counts(
            session, dataset_id=queries.get_dataset(session, name=EVAL_SET).id) == {
                "tiny": len(bad)}


def test_the_timestamps_job_goes_on_past_bad_files(ddft_store, ddft_workspace,
                                                   engine_tiny_model, kitchen_root,
                                                   broken_media):
    ids = mixed_eval_set(ddft_store, kitchen_root, broken_media, model=engine_tiny_model)
    bad = {TRUNCATED, SHORT} | ({ROTATED} if not readable(broken_media[ROTATED]) else set())
    job = _run(ddft_store, ddft_workspace, "timestamps",
               {"variant": "tiny", "eval_set": EVAL_SET, "max_new_tokens": 4, "batch_size": 8})
    assert job.status == "succeeded", job.error
    assert (job.result["generated"], job.result["failed"]) == (len(ids) - len(bad), len(bad))
    with session_scope(ddft_store) as session:
        failures = queries.list_generation_failures(session, task="timestamps")
        assert queries.list_generation_failures(session, task="recipe") == []
    assert {f.external_id for f in failures} == bad


def test_a_later_success_supersedes_a_failure(ddft_store, kitchen_root, broken_media):
    ids = mixed_eval_set(ddft_store, kitchen_root, broken_media, model=Path("/m"))
    with session_scope(ddft_store) as session:
        variant = queries.get_variant(session, name="tiny")
        dataset_id = queries.get_dataset(session, name=EVAL_SET).id
        for name in (SHORT, TRUNCATED):
            queries.add_generation_failure(session, variant_id=variant.id, sample_id=ids[name],
                                           task="recipe", reason="video too short")
        queries.add_generation_failure(session, variant_id=variant.id, sample_id=ids[SHORT],
                                       task="timestamps", reason="video too short")
        # The short video was fixed and generated again.
        queries.add_generation(session, variant_id=variant.id, sample_id=ids[SHORT], prompt="p",
                               text="t", params_key="k")
        assert [f.external_id for f in queries.list_generation_failures(
            session, task="recipe")] == [TRUNCATED]
        # A recipe does not stand in for timed steps.
        assert [f.external_id for f in queries.list_generation_failures(
            session, task="timestamps")] == [SHORT]
        assert queries.generation_failure_counts(session, dataset_id=dataset_id) == {"tiny": 1}
        with pytest.raises(ValueError, match="task must be one of recipe, timestamps, "
                                             "grounding, got 'judge'"):
            queries.add_generation_failure(session, variant_id=variant.id, sample_id=ids[SHORT],
                                           task="judge", reason="x")


def test_samples_the_data_check_failed_are_left_out_and_named(ddft_store, ddft_workspace,
                                                              engine_tiny_model, kitchen_root,
                                                              broken_media, capsys):
    from datetime import datetime, timezone

    ids = mixed_eval_set(ddft_store, kitchen_root,
                         {TRUNCATED: broken_media[TRUNCATED], SHORT: broken_media[SHORT]},
                         model=engine_tiny_model)
    with session_scope(ddft_store) as session:
        queries.record_sample_checks(session, checks=[
            queries.SampleCheck(sample_id=ids[name], status="failed", reasons=["media: bad"],
                                meta=queries.get_sample(session, sample_id=ids[name]).meta,
                                checked_at=datetime.now(timezone.utc))
            for name in (TRUNCATED, SHORT)])
    params = {"variant": "tiny", "eval_set": EVAL_SET, "max_new_tokens": 4}
    job = _run(ddft_store, ddft_workspace, "generate", params)
    assert job.status == "succeeded"
    assert (job.result["generated"], job.result["failed"], job.result["left_out"]) == (2, 0, 2)
    assert job.result["left_out_samples"] == [TRUNCATED, SHORT]
    assert (f"left out 2 samples that failed ddft data check: {TRUNCATED}, {SHORT}; "
            "--include-failed to try them") in capsys.readouterr().out
    with session_scope(ddft_store) as session:
        assert queries.list_generation_failures(session) == []

    tried = _run(ddft_store, ddft_workspace, "generate", {**params, "include_failed": True})
    assert (tried.result["generated"], tried.result["skipped"], tried.result["failed"]) == (
        0, 2, 2)
    assert "left_out" not in tried.result

    # The same through the command line.
    from engine.cli.main import app

    result = CliRunner().invoke(app, ["timestamps", "--variant", "tiny", "--max-new-tokens", "4",
                                      "--workspace", str(ddft_workspace)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert (f"left out 2 samples that failed ddft data check: {TRUNCATED}, {SHORT}; "
            "--include-failed to try them") in result.output
    result = CliRunner().invoke(app, ["ground", "--variant", "tiny", "--include-failed",
                                      "--layers", "all", "--workspace", str(ddft_workspace)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"2 samples have no recipe to ground (their generation failed): {TRUNCATED}, " \
        f"{SHORT}" in result.output


def test_the_ground_job_goes_on_past_a_video_that_broke_after_its_recipe(
        ddft_store, ddft_workspace, engine_tiny_model, kitchen_root, broken_media, tmp_path):
    """A recipe was generated from a good copy; the file was then cut short (a failed sync).
    Before, the whole ground job failed on it."""
    damaged = tmp_path / "damaged.mp4"
    write_video(damaged, faststart=True, seed=3)
    ids = mixed_eval_set(ddft_store, kitchen_root, {"damaged": damaged},
                         model=engine_tiny_model)
    with session_scope(ddft_store) as session:
        variant = queries.get_variant(session, name="tiny")
        for sample in queries.list_samples(session, limit=None,
                                           dataset_id=queries.get_dataset(session,
                                                                          name=EVAL_SET).id):
            sampled = sample_frames(sample.media_path, 8)
            queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                   prompt=format_prompt("video", RECIPE_PROMPT),
                                   text=sample.answer, params_key="hand",
                                   frame_indices=sampled.indices, frame_times=sampled.times)
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    job = _run(ddft_store, ddft_workspace, "ground",
               {"variant": "tiny", "eval_set": EVAL_SET, "layers": "all"})
    assert job.status == "succeeded", job.error
    assert (job.result["grounded"], job.result["failed"]) == (2, 1)
    assert job.result["failures"][0]["sample"] == "damaged"
    assert "no_recipe" not in job.result
    with session_scope(ddft_store) as session:
        (failure,) = queries.list_generation_failures(session, task="grounding")
    assert failure.sample_id == ids["damaged"] and failure.reason.startswith("cannot ")


# ------------------------------------------------------------------ the report and coverage


def test_the_report_counts_failed_samples_next_to_n(ddft_store, kitchen_root, broken_media):
    from engine.evaluation import offline_judge as offline
    from engine.evaluation.report import ReportSelection, build_report, render

    ids = mixed_eval_set(ddft_store, kitchen_root, broken_media, model=Path("/m"))
    with session_scope(ddft_store) as session:
        tiny = queries.get_variant(session, name="tiny")
        other = queries.create_variant(session, name="other", base_model="/m")
        for name, sample_id in ids.items():
            if name in broken_media:
                queries.add_generation_failure(session, variant_id=tiny.id, sample_id=sample_id,
                                               task="recipe", reason="video too short")
                continue
            generation = queries.add_generation(session, variant_id=tiny.id,
                                                sample_id=sample_id, prompt="p", text="x",
                                                params_key="k")
            queries.add_judgment(session, generation_id=generation.id, judge=offline.JUDGE_NAME,
                                 protocol=offline.PROTOCOL, prompt_version=offline.PROMPT_VERSION,
                                 score=2.0, verdict="no", raw="", details={})
        queries.add_generation_failure(session, variant_id=other.id, sample_id=ids[SHORT],
                                       task="recipe", reason="video too short")
        built = build_report(session, ReportSelection(eval_set=EVAL_SET), n_boot=50)
    (row,) = built.rows
    assert (row.variant, row.n, row.failed) == ("tiny", 2, 3)
    md = render(built, "md")
    assert "| n | Unparsable | Failed |" in md
    assert "| 2 | 0 | 3 |" in md
    assert "Variants with failures and nothing judged: other (1)." in md
    header, line = render(built, "csv").splitlines()[:2]
    cells = dict(zip(header.split(","), line.split(",")))
    assert (cells["n"], cells["unparsable"], cells["failed"]) == ("2", "0", "3")
    data = json.loads(render(built, "json"))
    assert data["rows"][0]["failed"] == 3 and data["failed"] == {"tiny": 3, "other": 1}


def test_coverage_counts_failed_unreadable_and_excluded_videos_apart(ddft_store, kitchen_root,
                                                                     broken_media):
    from datetime import datetime, timezone

    from engine.evaluation.timestamps import coverage_report, render_coverage_markdown

    ids = mixed_eval_set(ddft_store, kitchen_root, broken_media, model=Path("/m"))
    good = [name for name in ids if name not in broken_media]
    with session_scope(ddft_store) as session:
        dataset_id = queries.get_dataset(session, name=EVAL_SET).id
        queries.record_sample_checks(session, checks=[queries.SampleCheck(
            sample_id=ids[TRUNCATED], status="failed", reasons=["media: cut short"],
            meta=queries.get_sample(session, sample_id=ids[TRUNCATED]).meta,
            checked_at=datetime.now(timezone.utc))])
        queries.set_sample_included(session, sample_id=ids[good[1]], included=False)
        before = render_coverage_markdown(coverage_report(session, dataset_id=dataset_id))
    # Neither checked nor generated: the frame times of the short and rotated videos are
    # simply unknown.
    assert "2 videos have no known frame times (run `ddft data check` or `ddft generate`)." \
        in before
    assert (f"1 failed `ddft data check` and are left out (the check's reasons are on each "
            f"sample): {TRUNCATED}.") in before
    assert "1 excluded from the eval set are left out." in before
    assert good[1] not in before  # an excluded video is not listed

    with session_scope(ddft_store) as session:
        queries.add_generation_failure(session, variant_id=queries.get_variant(
            session, name="tiny").id, sample_id=ids[SHORT], task="recipe",
            reason="video too short: 8 frames needed, it has 3")
        report = coverage_report(session, dataset_id=dataset_id)
    assert [v.external_id for v in report.videos] == [good[0], ROTATED]
    assert report.without_frames == 1
    assert report.failed_check == (TRUNCATED,)
    assert report.unreadable == ((SHORT, "video too short: 8 frames needed, it has 3"),)
    assert report.excluded == 1
    md = render_coverage_markdown(report)
    assert "1 video has no known frame times (run `ddft data check` or `ddft generate`)." in md
    assert (f"1 could not be read when generating, so their frame times are unknown: "
            f"{SHORT} (video too short: 8 frames needed, it has 3).") in md
    assert report.to_dict()["failed_check"] == [TRUNCATED]


# ------------------------------------------------------------------ every command, end to end


def test_every_command_exits_0_stores_the_good_and_names_the_bad(
        ddft_store, ddft_workspace, engine_tiny_model, kitchen_root, broken_media):
    from engine.cli.main import app

    ids = mixed_eval_set(ddft_store, kitchen_root, broken_media, model=engine_tiny_model)
    bad = {TRUNCATED, SHORT} | ({ROTATED} if not readable(broken_media[ROTATED]) else set())
    good = set(ids) - bad
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [*args, "--workspace", str(ddft_workspace)],
                               env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        return result.output

    out = invoke("generate", "--variant", "tiny", "--eval-set", EVAL_SET, "--max-new-tokens",
                 "4", "--batch-size", "4")
    assert f"{len(bad)} failed (not stored" in out
    for name in bad:  # named, with the path printed literally (its `[red]` is not markup)
        assert f"  {name} ({broken_media[name]}): " in out
    assert "video too short: 8 frames needed, it has 3" in out

    invoke("judge", "--eval-set", EVAL_SET)
    out = invoke("timestamps", "--variant", "tiny", "--eval-set", EVAL_SET,
                 "--max-new-tokens", "4")
    assert f"{len(bad)} failed (not stored" in out
    out = invoke("ground", "--variant", "tiny", "--eval-set", EVAL_SET, "--layers", "all")
    assert f"{len(bad)} samples have no recipe to ground (their generation failed)" in out
    assert all(name in out for name in bad)

    with session_scope(ddft_store) as session:
        recipes = queries.list_generations(session, task="recipe")
        assert {g.sample_id for g in recipes} == {ids[name] for name in good}
        assert {g.sample_id for g in queries.list_generations(session, task="timestamps")} == {
            ids[name] for name in good}
        judged = [j for g in recipes
                  for j in queries.judgments_for_generation(session, generation_id=g.id)]
        assert len(judged) == len(good)
        grounded = {g.id for g in recipes
                    if queries.groundings_for_generation(session, generation_id=g.id)}
        assert grounded == {g.id for g in recipes}
        jobs = queries.list_jobs(session)
    assert {job.status for job in jobs} == {"succeeded"}

    data = json.loads(invoke("report", "--eval-set", EVAL_SET, "--format", "json"))
    (row,) = data["rows"]
    assert (row["n"], row["failed"]) == (len(good), len(bad))
    md = invoke("report", "--eval-set", EVAL_SET)
    assert f"| {len(good)} | 0 | {len(bad)} |" in md
    assert "could not be read when generating" in md and SHORT in md
