"""The timestamp evaluation: parsing what models write, the metrics on hand-made answers, the
per-variant report and the frame coverage of the synthetic kitchen's eval videos."""

from __future__ import annotations

import pytest

from db import queries
from db.store import session_scope
from engine.importers.kitchen import EVAL_SET, import_kitchen
from engine.kitchen.build import build_kitchen
from engine.media import sample_frames
from engine.evaluation.timestamps import (
    TIMESTAMP_PROMPT,
    Segment,
    aggregate_scores,
    annotated_segments,
    coverage_report,
    parse_time,
    parse_timed_line,
    parse_timestamped_steps,
    render_coverage_markdown,
    render_timestamps_markdown,
    sampled_frame_times,
    score_timestamps,
    temporal_iou,
    timestamp_report,
)

SEGMENTS = [Segment(0.0, 3.0, "beat"), Segment(3.0, 6.5, "fry"), Segment(6.5, 9.0, "cook")]


@pytest.mark.parametrize("text, seconds", [
    ("12", 12.0), ("12.5s", 12.5), ("12 sec", 12.0), ("7 seconds", 7.0), ("0:12", 12.0),
    ("1:05.5", 65.5), ("01:02:03", 3723.0),
])
def test_times_in_every_usual_form(text, seconds):
    assert parse_time(text) == seconds


def test_a_time_that_is_no_time_is_refused():
    with pytest.raises(ValueError, match="expected a time like 12.5s or 1:05, found 'soon'"):
        parse_time("soon")


@pytest.mark.parametrize("line, expected", [
    ("1. [12.0s - 31.5s] Chop the onion.", (12.0, 31.5, "Chop the onion.")),
    ("2) 0:30 to 1:05 Fry it", (30.0, 65.0, "Fry it")),
    ("Step 3: Boil water (65–80 s)", (65.0, 80.0, "Boil water")),
    ("- 10 — 20: stir", (10.0, 20.0, "stir")),
    ("4. Add 1-2 cups flour [40s - 52s]", (40.0, 52.0, "Add 1-2 cups flour")),
    ("5. Simmer for 10 minutes.", None),
])
def test_step_lines_are_read_liberally(line, expected):
    assert parse_timed_line(line) == expected


def test_the_prompts_own_example_parses():
    parsed = parse_timestamped_steps(TIMESTAMP_PROMPT.split("format:\n", 1)[1])
    assert [(s.start, s.end) for s in parsed.steps] == [(12.0, 31.5), (31.5, 50.0)]


def test_unparsable_lines_are_counted_and_headers_skipped():
    parsed = parse_timestamped_steps(
        "Dish: Omelette\nSteps:\n1. [0s - 3s] Beat the eggs.\nthen something\n\n"
        "2. Fry the tomato.\n3. [6s - 9s] Cook.")
    assert [s.text for s in parsed.steps] == ["Beat the eggs.", "Cook."]
    assert [s.index for s in parsed.steps] == [0, 1] and parsed.steps[1].line == 6
    assert parsed.unparsable == ("then something", "2. Fry the tomato.")
    assert parsed.headers == 2


def test_temporal_iou():
    assert temporal_iou(0.0, 3.0, SEGMENTS[0]) == 1.0
    assert temporal_iou(1.0, 4.0, SEGMENTS[0]) == pytest.approx(2.0 / 4.0)
    assert temporal_iou(5.0, 2.0, SEGMENTS[0]) == 0.0  # inverted
    assert temporal_iou(10.0, 12.0, SEGMENTS[2]) == 0.0


def test_metrics_of_a_hand_made_answer():
    # Step 2 overlaps step 1, step 3 repeats step 2 exactly, step 4 starts before step 3 and
    # runs past the 9 s video, step 5 is inverted and beyond it.
    answer = ("1. [0s - 4s] Beat the eggs.\n2. [3s - 6s] Fry the tomato.\n"
              "3. [3s - 6s] Fry the tomato again.\n4. [2s - 12s] Cook.\n5. [15s - 14s] Serve.\n"
              "Enjoy!")
    score = score_timestamps(parse_timestamped_steps(answer), SEGMENTS, 9.0)
    assert score.n_steps == 5 and score.unparsable_lines == 1
    assert score.n_times == 10 and score.beyond_duration == 3  # 12, 15 and 14
    assert score.pairs == 4
    assert score.overlapping == 3  # 1→2 (3 < 4), 2→3 (3 < 6), 3→4 (2 < 6); 4→5 starts at 15
    assert score.identical == 1
    assert score.order_violations == 1  # step 4 starts at 2, before step 3's 3
    assert score.inverted == 1
    assert score.matched == 3 and score.unmatched_steps == 2 and score.missed_segments == 0
    # tIoU: [0,4]∩[0,3] = 3/4; [3,6]∩[3,6.5] = 3/3.5; [3,6]∩[6.5,9] = 0
    assert score.ious == pytest.approx((0.75, 3 / 3.5, 0.0))
    assert score.mean_iou == pytest.approx((0.75 + 3 / 3.5) / 3)


def test_a_clean_answer_has_no_violations_and_full_iou():
    answer = "1. [0s - 3s] Beat.\n2. [3s - 6.5s] Fry.\n3. [6.5s - 9s] Cook."
    score = score_timestamps(parse_timestamped_steps(answer), SEGMENTS, 9.0)
    assert (score.beyond_duration, score.overlapping, score.identical,
            score.order_violations) == (0, 0, 0, 0)  # touching ends are no overlap
    assert score.mean_iou == 1.0


def test_aggregation_sums_counts_and_averages_iou_over_steps():
    good = score_timestamps(parse_timestamped_steps("1. [0s - 3s] a\n2. [3s - 6.5s] b"),
                            SEGMENTS, 9.0)
    junk = score_timestamps(parse_timestamped_steps("no times at all"), SEGMENTS, 9.0)
    late = score_timestamps(parse_timestamped_steps("1. [20s - 30s] a"), SEGMENTS, 9.0)
    row = aggregate_scores("tuned", [good, junk, late])
    assert (row.n, row.no_steps, row.steps, row.unparsable_lines) == (3, 1, 3, 1)
    assert (row.times, row.beyond_duration, row.beyond_share) == (6, 2, pytest.approx(2 / 6))
    assert row.missed_segments == 1 + 3 + 2
    assert row.mean_iou == pytest.approx(2 / 3) and row.iou_at_05 == 2
    assert row.to_dict()["overlap_share"] == 0.0


def test_segments_are_read_in_time_order_and_bad_entries_left_out():
    meta = {"segments": [{"segment": [5, 9], "sentence": "b"}, {"segment": [0, 5], "sentence": "a"},
                         {"segment": "oops"}, "junk"]}
    assert annotated_segments(meta) == [Segment(0.0, 5.0, "a"), Segment(5.0, 9.0, "b")]
    assert annotated_segments({}) == []


def _store_answers(db_engine, answers: dict[str, list[str]]):
    """Timestamp answers of each named variant for the eval samples, in sample order."""
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        for name, texts in answers.items():
            variant = queries.create_variant(session, name=name, base_model="/m")
            for sample, text in zip(samples, texts):
                queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       prompt=TIMESTAMP_PROMPT, text=text, params_key="t",
                                       task="timestamps",
                                       frame_times=sample.meta["frame_times"])
        return dataset.id, samples


@pytest.fixture(scope="module")
def kitchen_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen")
    build_kitchen(root, videos_per_dish=1, held_out_per_dish=1, images_per_dish=0, seed=1,
                  dishes=("tomato-soup", "garden-salad"))
    return root


def test_the_report_scores_each_variant_on_the_kitchens_own_segments(ddft_store, kitchen_root):
    import_kitchen(ddft_store, kitchen_root)
    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
    # "exact" answers each video's annotated segments; "late" shifts every step past the end.
    exact, late = [], []
    for sample in samples:
        segments = annotated_segments(sample.meta)
        exact.append("\n".join(f"{i + 1}. [{s.start}s - {s.end}s] {s.sentence}"
                               for i, s in enumerate(segments)))
        late.append("\n".join(f"{i + 1}. [{s.start + 100}s - {s.end + 100}s] {s.sentence}"
                              for i, s in enumerate(segments)))
    dataset_id, _ = _store_answers(ddft_store, {"exact": exact, "late": late})
    with session_scope(ddft_store) as session:
        queries.add_generation(session, variant_id=queries.get_variant(session, name="exact").id,
                               sample_id=samples[0].id, prompt="recipe", text="1. [0s - 99s] x",
                               params_key="r")  # a recipe: never part of the timestamp report
        report = timestamp_report(session, dataset_id=dataset_id)
    rows = {row.variant: row for row in report.rows}
    n_steps = sum(len(annotated_segments(s.meta)) for s in samples)
    assert rows["exact"].n == 2 and rows["exact"].steps == n_steps
    assert rows["exact"].mean_iou == 1.0 and rows["exact"].beyond_duration == 0
    assert rows["late"].beyond_duration == rows["late"].times == 2 * n_steps
    assert rows["late"].mean_iou == 0.0
    markdown = render_timestamps_markdown(report)
    assert f"| exact | 2 | {n_steps} | 0 | 0 | 0.0% (0/{2 * n_steps}) |" in markdown
    assert f"| late | 2 | {n_steps} | 0 | 0 | 100.0% ({2 * n_steps}/{2 * n_steps}) |" in markdown


def test_coverage_finds_the_steps_no_sampled_frame_falls_in(ddft_store, kitchen_root):
    import_kitchen(ddft_store, kitchen_root)
    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name=EVAL_SET)
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        report = coverage_report(session, dataset_id=dataset.id)
    assert len(report.videos) == 2 and report.without_frames == 0
    expected_uncovered = 0
    for sample, video in zip(samples, report.videos):
        times = sample_frames(sample.media_path, 8).times  # what the model really sees
        assert video.frame_times == tuple(times) and video.source == "sample"
        uncovered = [i for i, s in enumerate(annotated_segments(sample.meta))
                     if not any(s.start <= t <= s.end for t in times)]
        assert [i for i, _ in video.uncovered] == uncovered
        expected_uncovered += len(uncovered)
    assert report.uncovered == expected_uncovered
    assert report.steps == sum(len(annotated_segments(s.meta)) for s in samples)
    assert f"({report.uncovered}/{report.steps})" in render_coverage_markdown(report)


def test_coverage_with_a_made_up_video_whose_middle_step_is_missed():
    from engine.evaluation.timestamps import video_coverage

    # Frames at 0, 1, 2, 10, 11, 12, 13, 14 s; the step from 3 to 9 s gets none.
    times = [0, 1, 2, 10, 11, 12, 13, 14]
    segments = [Segment(0, 2.5), Segment(3, 9, "rest the dough"), Segment(9.5, 14)]
    video = video_coverage(1, "v", segments, times, "sample")
    assert [(i, s.sentence) for i, s in video.uncovered] == [(1, "rest the dough")]


def test_frame_times_come_from_the_sample_a_generation_or_the_frame_count():
    assert sampled_frame_times({"frame_times": [0, 1]}, [5.0]) == ((0.0, 1.0), "sample")
    assert sampled_frame_times({}, [5.0, 6.0]) == ((5.0, 6.0), "generation")
    times, source = sampled_frame_times({"n_frames": 24, "fps": 8}, None)
    assert source == "frame-count"
    assert times == (0.0, 0.375, 0.875, 1.25, 1.625, 2.0, 2.5, 2.875)  # frames 0,3,7,...,23
    assert sampled_frame_times({"n_frames": 4, "fps": 8}, None) == ((), "none")


@pytest.mark.parametrize("line", ["1. Simmer for 2-3 minutes", "Bake at 180-200 degrees",
                                  "- 2-3 cloves garlic", "5. Cook (2-3 minutes) until soft"])
def test_quantities_are_not_times(line):
    assert parse_timed_line(line) is None


def test_a_marker_without_a_space_and_an_ingredient_list_do_not_shift_the_steps():
    assert parse_timed_line("1.[12.0s - 31.5s] Chop") == (12.0, 31.5, "Chop")
    answer = ("Dish: Garlic pasta\nIngredients:\n- 200 g pasta\n- 2-3 cloves garlic\n"
              "- 1-2 tbsp olive oil\nSteps:\n1. [0.0s - 10.0s] Boil the pasta.\n"
              "2. [10.0s - 20.0s] Fry the garlic.\n3. [20.0s - 30.0s] Mix.")
    parsed = parse_timestamped_steps(answer)
    assert [(s.start, s.end) for s in parsed.steps] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    assert parsed.unparsable == () and parsed.headers == 6  # 3 headers, 3 ingredient lines
    score = score_timestamps(parsed, [Segment(0, 10), Segment(10, 20), Segment(20, 30)], 30.0)
    assert score.ious == (1.0, 1.0, 1.0) and score.order_violations == 0


def test_missed_segments_count_zero_over_every_segment_and_unknown_durations_are_not_checked():
    lucky = score_timestamps(parse_timestamped_steps("1. [0s - 3s] Beat."), SEGMENTS, None)
    assert (lucky.n_times, lucky.beyond_duration) == (0, 0)  # no duration: nothing to check
    row = aggregate_scores("lucky", [lucky])
    assert row.mean_iou == 1.0  # its one step matches perfectly ...
    assert row.mean_iou_segments == pytest.approx(1 / 3)  # ... but two of three segments missed
    assert row.beyond_share is None


def test_untimed_steps_after_ingredients_are_unparsable_not_hidden():
    parsed = parse_timestamped_steps("Ingredients:\n- flour\n1. Whisk the flour.\n2. Fry it.")
    assert parsed.steps == () and parsed.unparsable == ("1. Whisk the flour.", "2. Fry it.")
    bold = parse_timestamped_steps("**Steps:**\n1. [0s - 3s] Beat.")
    assert len(bold.steps) == 1 and bold.unparsable == () and bold.headers == 1
    assert parse_timed_line("1. [1:70 - 2:00] x") is None  # no such clock time
    assert parse_timed_line("100. [3s - 4s] Serve.") == (3.0, 4.0, "Serve.")
