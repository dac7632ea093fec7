"""`ddft report`'s "where in the video" parts: present only when there is something to show,
in every format."""

from __future__ import annotations

import csv
import io
import json

from db.queries import JudgedRow
from engine.evaluation.grounding import GroundingReport, GroundingRow
from engine.evaluation.report import (
    render_csv,
    render_json,
    render_markdown,
    report_from_rows,
    video_sections,
)
from engine.evaluation.timestamps import (
    CoverageReport,
    Segment,
    TimestampReport,
    VideoCoverage,
    aggregate_scores,
    parse_timestamped_steps,
    score_timestamps,
)

SEGMENTS = [Segment(0.0, 3.0, "beat"), Segment(3.0, 6.5, "fry"), Segment(6.5, 9.0, "cook")]


def _rows() -> list[JudgedRow]:
    return [JudgedRow(variant=v, sample_id=i, group=str(i), score=s, verdict="yes" if s >= 3.5
                      else "no", judge="offline", protocol="offline", prompt_version="v1",
                      decoding={}) for v, scores in (("base", (1, 2)), ("tuned", (4, 5)))
            for i, s in enumerate(scores)]


def _parts():
    answer = "1. [0s - 4s] Beat.\n2. [3s - 12s] Fry."  # overlapping, one time past 9 s
    row = aggregate_scores("tuned", [score_timestamps(parse_timestamped_steps(answer),
                                                      SEGMENTS, 9.0)])
    timestamps = TimestampReport(eval_set="e", prompt_version="t1", rows=(row,))
    coverage = CoverageReport(eval_set="e", videos=(VideoCoverage(
        sample_id=1, external_id="v1", frame_times=(0.5, 1.0, 7.0), source="sample",
        segments=3, uncovered=((1, SEGMENTS[1]),)),), without_segments=0, without_frames=0)
    grounding = GroundingReport(eval_set="e", rows=(
        GroundingRow(variant="tuned", params="layers 1-2 · heads all · top-1", params_key="k",
                     generations=2, steps=4, matched=4, hits=1, baseline=0.25),
        GroundingRow(variant="base", params="layers 1-2 · heads all · top-1", params_key="k",
                     generations=0, steps=0, matched=0, hits=0, baseline=None)))
    return timestamps, coverage, grounding


def test_empty_parts_are_left_out():
    timestamps, coverage, grounding = _parts()
    empty_ts = TimestampReport(eval_set="e", prompt_version="t1", rows=())
    empty_cov = CoverageReport(eval_set="e", videos=(), without_segments=2, without_frames=0)
    empty_gr = GroundingReport(eval_set="e", rows=(grounding.rows[1],))
    assert video_sections(empty_ts, empty_cov, empty_gr) == {}
    assert set(video_sections(timestamps, coverage, grounding)) == {"timestamps", "coverage",
                                                                     "grounding"}
    report = report_from_rows(_rows(), eval_set="e", n_boot=200)
    markdown = render_markdown(report)
    assert "Timestamps" not in markdown and "grounding" not in markdown.lower()
    assert "ts_answers" not in render_csv(report)
    assert "video" not in json.loads(render_json(report))


def test_every_format_carries_the_video_parts():
    report = report_from_rows(_rows(), eval_set="e", n_boot=200)
    report.video = video_sections(*_parts())
    markdown = render_markdown(report)
    assert "## Timestamps on e (prompt t1)" in markdown
    assert "## Frame coverage on e" in markdown and "33.3% (1/3)" in markdown
    assert "## Keyframe grounding on e" in markdown and "25.0%" in markdown
    data = json.loads(render_json(report))
    assert data["video"]["timestamps"]["rows"][0]["overlapping"] == 1
    assert data["video"]["coverage"]["uncovered"] == 1
    assert data["video"]["grounding"]["rows"][0]["hits"] == 1
    table = {row["variant"]: row for row in csv.DictReader(io.StringIO(render_csv(report)))}
    tuned, base = table["tuned"], table["base"]
    assert tuned["ts_answers"] == "1" and tuned["ts_steps"] == "2"
    assert float(tuned["ts_beyond_share"]) == 0.25  # 12 s of 4 times
    assert float(tuned["ts_overlap_share"]) == 1.0
    assert tuned["grounding_matched"] == "4" and float(tuned["grounding_hit_rate"]) == 0.25
    assert base["ts_answers"] == "" and base["grounding_hit_rate"] == ""
