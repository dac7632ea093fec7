"""Where in the video: asking a variant for each step's start and end time, reading the answer
back, scoring it against the annotated segments, and the frame coverage of an eval set.

The answer format ddft asks for, one step a line::

    1. [12.0s - 31.5s] Chop the onion.

The parser is liberal about what models write instead: times as seconds (`12`, `12.5`,
`12.5s`, `12 sec`) or clock times (`0:12`, `01:02:03`, `1:05.5`), ranges joined by `-`, `–`,
`—` or `to`, with or without brackets or parentheses, anywhere in the line, with or without
a step number. A line that is neither a step with a time range nor a header ("Steps:",
"Dish: …") is counted as unparsable, never silently dropped.

**Matching.** Generated step i is compared with annotated segment i (both in order). Both the
kitchen's and YouCook2's segments are in temporal order and follow the recipe's steps, and
an in-order match uses nothing the model said about time, so it cannot hide a wrong order
(a best-IoU matching would pair a step with whichever segment its times happen to hit) and it
is the one matching the keyframe grounding can use too, where a best-frame matching would be
circular. Steps beyond the annotated count, and segments beyond the generated count, are
counted as unmatched.

Intervals are closed: a frame or time equal to a segment's end lies inside it.

Nothing here imports torch; the workbench may use it.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlmodel import Session

TASK = "timestamps"
# Bump when the prompt below changes: stored answers keep the prompt they were asked with.
TIMESTAMP_PROMPT_VERSION = "t1"
TIMESTAMP_PROMPT = (
    "List the steps of the recipe shown in the video, in the order they happen, one per line. "
    "Start each line with the step's number and the time in seconds when the step starts and "
    "ends in the video, in this format:\n"
    "1. [12.0s - 31.5s] Chop the onion.\n"
    "2. [31.5s - 50.0s] Fry the onion in the oil."
)

# ------------------------------------------------------------------ parsing

_CLOCK = r"\d{1,2}(?::\d{1,2}){1,2}(?:\.\d+)?"
_SECONDS = r"\d+(?:\.\d+)?(?:\s*(?:s|sec|secs|second|seconds)\b)?"
_TIME = rf"(?:{_CLOCK}|{_SECONDS})"
_RANGE = re.compile(
    rf"[\[(]?\s*(?P<start>{_TIME})\s*(?:-|–|—|to)\s*(?P<end>{_TIME})\s*[\])]?", re.IGNORECASE
)
_STEP_MARKER = re.compile(
    r"^\s*(?:[-*\u2022+]\s+|\(?\d{1,3}\s*[.):](?!\d)\s*|step\s+\d{1,3}\s*[.):]?\s*)",
    re.IGNORECASE,
)
_INGREDIENTS = re.compile(r"^[#*\s]*ingredients?\s*:?[*\s]*$", re.IGNORECASE)
_NUMBERED = re.compile(r"^\s*(?:\(?\d{1,3}\s*[.):](?!\d)|step\s+\d)", re.IGNORECASE)
_HEADER = re.compile(
    r"^[#*\s]*(?:steps?|instructions|directions|method|dish|recipe|title|ingredients?)"
    r"\s*:?(?:\s|$)", re.IGNORECASE
)


def parse_time(text: str) -> float:
    """Seconds from `12`, `12.5s`, `12 sec`, `0:12`, `1:05.5` or `01:02:03`.
    Raises ValueError when `text` is none of these."""
    value = text.strip().lower()
    value = re.sub(r"\s*(?:seconds|second|secs|sec|s)$", "", value)
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if re.fullmatch(_CLOCK, value):
        parts = [float(p) for p in value.split(":")]
        if any(part >= 60 for part in parts[1:]):
            raise ValueError(f"expected minutes and seconds below 60, found {text!r}")
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    raise ValueError(f"expected a time like 12.5s or 1:05, found {text!r}")


@dataclass(frozen=True)
class TimedStep:
    """One generated step with the times the model gave it."""

    index: int  # 0-based, in the order the answer gives the steps
    start: float
    end: float
    text: str
    line: int  # 0-based line number in the answer


@dataclass(frozen=True)
class ParsedTimestamps:
    steps: tuple[TimedStep, ...]
    unparsable: tuple[str, ...]  # lines that were neither a timed step nor a header
    headers: int = 0  # lines skipped: headers ("Steps:", "Dish: …") and ingredient lines


def _bracketed(match: re.Match[str]) -> bool:
    text = match.group(0).strip()
    return text[:1] in "[(" and text[-1:] in "])"


def _is_time_range(match: re.Match[str], body: str) -> bool:
    ends = match["start"] + " " + match["end"]
    # A bare range that opens the step as its label ("10 - 20: stir") is a time too.
    label = match.start() == 0 and body[match.end():].lstrip().startswith(":")
    return (_bracketed(match) or label or ":" in ends
            or re.search(r"[a-z]", ends, re.IGNORECASE) is not None)


def parse_timed_line(line: str) -> tuple[float, float, str] | None:
    """(start, end, step text) of one answer line, or None when it holds no time range."""
    body = _STEP_MARKER.sub("", line, count=1)
    # A range is a time when it is bracketed, a clock time, in seconds or the step's label:
    # "[12s - 31s]", "0:12-0:31", "12 to 31 seconds", "10 - 20: stir"; "simmer 2-3 minutes"
    # and "2-3 cloves" are not.
    matches = [m for m in _RANGE.finditer(body) if _is_time_range(m, body)]
    if not matches:
        return None
    match = next((m for m in matches if _bracketed(m)), matches[0])
    try:
        start, end = parse_time(match["start"]), parse_time(match["end"])
    except ValueError:
        return None
    rest = (body[: match.start()] + " " + body[match.end():]).strip()
    rest = re.sub(r"^[\s:,.\-–—]+|[\s:,\-–—]+$", "", rest)
    return start, end, " ".join(rest.split())


def _is_header(line: str) -> bool:
    bare = line.replace("**", "").strip()  # markdown bold: "**Steps:**"
    return bool(_HEADER.match(bare)) and not _STEP_MARKER.match(bare)


def parse_timestamped_steps(text: str) -> ParsedTimestamps:
    """Every timed step of an answer to TIMESTAMP_PROMPT, in the order written, with the lines
    that could not be read. Never raises on junk."""
    steps: list[TimedStep] = []
    unparsable: list[str] = []
    headers = 0
    in_ingredients = False
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line:
            continue
        if _INGREDIENTS.match(line):
            in_ingredients = True  # an ingredient list is not steps, whatever numbers it holds
            headers += 1
            continue
        if in_ingredients:
            if _is_header(line):
                in_ingredients = False  # "Steps:" or another section ends the list
                headers += 1
                continue
            if not _NUMBERED.match(line) and parse_timed_line(line) is None:
                headers += 1  # an ingredient line, skipped like a header
                continue
            # A numbered or timed line: the steps began without a "Steps:" header.
            in_ingredients = False
        parsed = parse_timed_line(line)
        if parsed is not None:
            start, end, step_text = parsed
            steps.append(TimedStep(len(steps), start, end, step_text, number))
        elif _is_header(line):
            headers += 1
        else:
            unparsable.append(line)
    return ParsedTimestamps(tuple(steps), tuple(unparsable), headers)


# ------------------------------------------------------------------ segments and metrics


@dataclass(frozen=True)
class Segment:
    """An annotated step: where it lies in the video and what it says."""

    start: float
    end: float
    sentence: str = ""

    def contains(self, time: float) -> bool:
        return self.start <= time <= self.end


def annotated_segments(meta: dict[str, Any]) -> list[Segment]:
    """A sample's annotated step segments in time order, read from `meta["segments"]`
    (YouCook2's layout, which the kitchen uses too: `{"segment": [start, end], "sentence"}`).
    Malformed entries are left out; an absent key gives an empty list."""
    found = []
    for item in meta.get("segments") or []:
        if not isinstance(item, dict):
            continue
        bounds = item.get("segment")
        if (isinstance(bounds, (list, tuple)) and len(bounds) == 2
                and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in bounds)):
            found.append(Segment(float(bounds[0]), float(bounds[1]), str(item.get("sentence", ""))))
    return sorted(found, key=lambda s: (s.start, s.end))


def temporal_iou(start: float, end: float, segment: Segment) -> float:
    """Intersection over union of [start, end] and the segment; 0 for an inverted or empty
    predicted interval."""
    if end <= start:
        return 0.0
    inter = max(0.0, min(end, segment.end) - max(start, segment.start))
    union = (end - start) + (segment.end - segment.start) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class TimestampScore:
    """The timestamp checks of one answer, as counts (shares are computed from them)."""

    n_steps: int
    unparsable_lines: int
    n_times: int  # start and end of every step
    beyond_duration: int  # times later than the video's duration (unknown duration: 0)
    pairs: int  # consecutive step pairs
    overlapping: int  # pairs where the next step starts before the previous one ends
    identical: int  # pairs with the same start and end
    order_violations: int  # pairs where the next step starts before the previous one starts
    inverted: int  # steps ending before they start
    matched: int  # steps with an annotated segment at the same position
    unmatched_steps: int
    missed_segments: int
    iou_sum: float
    ious: tuple[float, ...] = ()

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.matched if self.matched else None


def score_timestamps(parsed: ParsedTimestamps, segments: Sequence[Segment],
                     duration: float | None) -> TimestampScore:
    """Score one parsed answer against the video's annotated segments and duration."""
    steps = parsed.steps
    pairs = list(pairwise(steps))
    times = [t for s in steps for t in (s.start, s.end)]
    ious = tuple(temporal_iou(step.start, step.end, segment)
                 for step, segment in zip(steps, segments))
    return TimestampScore(
        n_steps=len(steps),
        unparsable_lines=len(parsed.unparsable),
        # Times are checked against the duration only when it is known.
        n_times=len(times) if duration else 0,
        beyond_duration=sum(t > duration for t in times) if duration else 0,
        pairs=len(pairs),
        overlapping=sum(b.start < a.end for a, b in pairs),
        identical=sum(a.start == b.start and a.end == b.end for a, b in pairs),
        order_violations=sum(b.start < a.start for a, b in pairs),
        inverted=sum(s.end < s.start for s in steps),
        matched=len(ious),
        unmatched_steps=max(0, len(steps) - len(segments)),
        missed_segments=max(0, len(segments) - len(steps)),
        iou_sum=sum(ious),
        ious=ious,
    )


def _share(count: int, n: int) -> float | None:
    return count / n if n else None


@dataclass(frozen=True)
class TimestampRow:
    """One variant's timestamp checks over an eval set's answers, counts and shares."""

    variant: str
    n: int  # answers
    no_steps: int  # answers in which no timed step could be read
    steps: int
    unparsable_lines: int
    times: int
    beyond_duration: int
    pairs: int
    overlapping: int
    identical: int
    order_violations: int
    inverted: int
    matched: int
    unmatched_steps: int
    missed_segments: int
    mean_iou: float | None  # over matched steps
    iou_at_05: int  # matched steps with tIoU >= 0.5
    # Over every annotated segment, a segment without a step counting 0: a model that gives
    # one lucky step per video cannot look good here.
    mean_iou_segments: float | None = None

    @property
    def beyond_share(self) -> float | None:
        return _share(self.beyond_duration, self.times)

    @property
    def overlap_share(self) -> float | None:
        return _share(self.overlapping, self.pairs)

    @property
    def identical_share(self) -> float | None:
        return _share(self.identical, self.pairs)

    @property
    def order_share(self) -> float | None:
        return _share(self.order_violations, self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "beyond_share": self.beyond_share,
                "overlap_share": self.overlap_share, "identical_share": self.identical_share,
                "order_share": self.order_share}


def aggregate_scores(variant: str, scores: Sequence[TimestampScore]) -> TimestampRow:
    """Sum one variant's per-answer counts; the mean tIoU is over every matched step."""
    total = lambda name: sum(getattr(s, name) for s in scores)
    ious = [iou for s in scores for iou in s.ious]
    return TimestampRow(
        variant=variant, n=len(scores), no_steps=sum(s.n_steps == 0 for s in scores),
        steps=total("n_steps"), unparsable_lines=total("unparsable_lines"), times=total("n_times"),
        beyond_duration=total("beyond_duration"), pairs=total("pairs"),
        overlapping=total("overlapping"), identical=total("identical"),
        order_violations=total("order_violations"), inverted=total("inverted"),
        matched=total("matched"), unmatched_steps=total("unmatched_steps"),
        missed_segments=total("missed_segments"),
        mean_iou=sum(ious) / len(ious) if ious else None,
        iou_at_05=sum(iou >= 0.5 for iou in ious),
        mean_iou_segments=(sum(ious) / (len(ious) + total("missed_segments"))
                           if ious or total("missed_segments") else None),
    )


@dataclass(frozen=True)
class TimestampReport:
    eval_set: str
    prompt_version: str
    rows: tuple[TimestampRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"eval_set": self.eval_set, "prompt_version": self.prompt_version,
                "matching": "in order: generated step i with annotated segment i",
                "rows": [row.to_dict() for row in self.rows]}


def _latest_by_variant_and_sample(generations) -> dict[int, dict[int, Any]]:
    latest: dict[int, dict[int, Any]] = defaultdict(dict)
    for generation in generations:  # oldest first, so the newest wins
        latest[generation.variant_id][generation.sample_id] = generation
    return latest


def timestamp_report(session: Session, *, dataset_id: int) -> TimestampReport:
    """Per variant, the timestamp checks of its newest timestamp answer for each sample of the
    eval set, with counts. Variants without timestamp answers are left out."""
    from db import queries

    dataset = queries.get_dataset_by_id(session, dataset_id=dataset_id)
    samples = {s.id: s for s in queries.list_samples(session, dataset_id=dataset_id, limit=None)}
    variants = {v.id: v.name for v in queries.list_variants(session)}
    generations = queries.list_generations(session, dataset_id=dataset_id, task=TASK)
    rows = []
    for variant_id, by_sample in sorted(_latest_by_variant_and_sample(generations).items()):
        scores = []
        for sample_id, generation in sorted(by_sample.items()):
            sample = samples[sample_id]
            scores.append(score_timestamps(parse_timestamped_steps(generation.text),
                                           annotated_segments(sample.meta), sample.duration_s))
        rows.append(aggregate_scores(variants[variant_id], scores))
    return TimestampReport(eval_set=dataset.name if dataset else str(dataset_id),
                           prompt_version=TIMESTAMP_PROMPT_VERSION, rows=tuple(rows))


# ------------------------------------------------------------------ frame coverage


def frames_inside(times: Sequence[float], segment: Segment) -> int:
    """How many of the sampled frame times lie inside the segment."""
    return sum(segment.contains(t) for t in times)


@dataclass(frozen=True)
class VideoCoverage:
    """Which annotated steps of one eval video none of the sampled frames falls in."""

    sample_id: int
    external_id: str
    frame_times: tuple[float, ...]
    source: str  # where the frame times came from: sample, generation, frame-count or none
    segments: int
    uncovered: tuple[tuple[int, Segment], ...]  # (position among the segments, segment)


@dataclass(frozen=True)
class CoverageReport:
    eval_set: str
    videos: tuple[VideoCoverage, ...]
    without_segments: int  # eval videos with no annotated segments (not counted below)
    without_frames: int  # videos whose sampled frame times are unknown, not known to be broken
    # Left out of the videos and counts above, each with its own hint:
    failed_check: tuple[str, ...] = ()  # external ids of videos `ddft data check` failed
    unreadable: tuple[tuple[str, str], ...] = ()  # (external id, reason): generation failed
    excluded: int = 0  # videos excluded from the eval set (Samples screen, `ddft data exclude`)

    @property
    def steps(self) -> int:
        return sum(v.segments for v in self.videos if v.frame_times)

    @property
    def uncovered(self) -> int:
        return sum(len(v.uncovered) for v in self.videos if v.frame_times)

    @property
    def uncovered_share(self) -> float | None:
        return _share(self.uncovered, self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "eval_set": self.eval_set, "steps": self.steps, "uncovered": self.uncovered,
            "uncovered_share": self.uncovered_share, "without_segments": self.without_segments,
            "without_frames": self.without_frames, "failed_check": list(self.failed_check),
            "unreadable": [{"external_id": external_id, "reason": reason}
                           for external_id, reason in self.unreadable],
            "excluded": self.excluded,
            "videos": [{"sample_id": v.sample_id, "external_id": v.external_id,
                        "frame_times": list(v.frame_times), "source": v.source,
                        "segments": v.segments,
                        "uncovered": [{"position": i, "start": s.start, "end": s.end,
                                       "sentence": s.sentence} for i, s in v.uncovered]}
                       for v in self.videos],
        }


def sampled_frame_times(meta: dict[str, Any], generation_times: Sequence[float] | None,
                        n: int = 8) -> tuple[tuple[float, ...], str]:
    """The times of the frames the model sees, and where they came from: the sample's own
    record, a stored generation's, or Video-LLaVA's uniform rule over the frame count and
    rate `ddft data check` stored (no decoding)."""
    if meta.get("frame_times"):
        return tuple(float(t) for t in meta["frame_times"]), "sample"
    if generation_times:
        return tuple(float(t) for t in generation_times), "generation"
    n_frames, fps = meta.get("n_frames"), meta.get("fps")
    if isinstance(n_frames, (int, float)) and isinstance(fps, (int, float)) and fps > 0 \
            and n_frames >= n:
        from engine.evaluation.frames import uniform_indices

        return tuple(round(i / float(fps), 3) for i in uniform_indices(int(n_frames), n)), \
            "frame-count"
    return (), "none"


def video_coverage(sample_id: int, external_id: str, segments: Sequence[Segment],
                   frame_times: Sequence[float], source: str) -> VideoCoverage:
    uncovered = tuple((i, s) for i, s in enumerate(segments) if frames_inside(frame_times, s) == 0)
    return VideoCoverage(sample_id, external_id, tuple(frame_times), source, len(segments),
                         uncovered if frame_times else ())


def coverage_report(session: Session, *, dataset_id: int) -> CoverageReport:
    """For every included eval video with annotated segments, the steps that got none of the
    sampled frames: an upper bound on what the model could have seen. Videos that `ddft data
    check` failed, and videos of unknown frame times whose generation failed, are named apart;
    excluded videos are only counted."""
    from db import queries

    dataset = queries.get_dataset_by_id(session, dataset_id=dataset_id)
    generation_times: dict[int, list[float]] = {}
    for generation in queries.list_generations(session, dataset_id=dataset_id, task=None):
        if generation.frame_times:
            generation_times.setdefault(generation.sample_id, generation.frame_times)
    # Why a video's generation failed (its latest failure of any variant wins).
    failures = {f.sample_id: f.reason for f in sorted(
        queries.list_generation_failures(session, dataset_id=dataset_id),
        key=lambda f: f.created_at) if f.task != "grounding"}
    videos, without_segments, without_frames, excluded = [], 0, 0, 0
    failed_check, unreadable = [], []
    for sample in queries.list_samples(session, dataset_id=dataset_id, limit=None):
        if sample.modality != "video":
            continue
        if not sample.included:
            excluded += 1
            continue
        if sample.check_status == "failed":
            failed_check.append(sample.external_id)
            continue
        segments = annotated_segments(sample.meta)
        if not segments:
            without_segments += 1
            continue
        times, source = sampled_frame_times(sample.meta, generation_times.get(sample.id))
        if not times and sample.id in failures:
            unreadable.append((sample.external_id, failures[sample.id]))
            continue
        without_frames += not times
        videos.append(video_coverage(sample.id, sample.external_id, segments, times, source))
    return CoverageReport(eval_set=dataset.name if dataset else str(dataset_id),
                          videos=tuple(videos), without_segments=without_segments,
                          without_frames=without_frames, failed_check=tuple(failed_check),
                          unreadable=tuple(unreadable), excluded=excluded)


# ------------------------------------------------------------------ rendering


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _of(count: int, n: int) -> str:
    return f"{_pct(_share(count, n))} ({count}/{n})"


def render_timestamps_markdown(report: TimestampReport) -> str:
    lines = [f"## Timestamps on {report.eval_set} (prompt {report.prompt_version})", ""]
    if not report.rows:
        command = shlex.join(["ddft", "timestamps", "--variant", "NAME", "--eval-set",
                              report.eval_set])
        lines.append(f"No timestamp answers yet: run `{command}`.")
        return "\n".join(lines)
    lines += [
        ("| Variant | n | Steps | Unparsable lines | No steps | Beyond duration | "
         "Overlapping | Identical | Order violations | Inverted | Matched | Mean tIoU | "
         "tIoU ≥ 0.5 | Mean tIoU, every segment |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.rows:
        iou = "—" if row.mean_iou is None else f"{row.mean_iou:.3f}"
        every = "—" if row.mean_iou_segments is None else f"{row.mean_iou_segments:.3f}"
        lines.append(
            f"| {row.variant} | {row.n} | {row.steps} | {row.unparsable_lines} | {row.no_steps} "
            f"| {_of(row.beyond_duration, row.times)} | {_of(row.overlapping, row.pairs)} "
            f"| {_of(row.identical, row.pairs)} | {_of(row.order_violations, row.pairs)} "
            f"| {row.inverted} | {row.matched} (+{row.unmatched_steps} unmatched, "
            f"{row.missed_segments} segments missed) | {iou} | {_of(row.iou_at_05, row.matched)} "
            f"| {every} |"
        )
    lines += ["", ("Beyond duration counts start and end times (of videos whose duration is "
                   "known); overlapping, identical and order violations count consecutive step "
                   "pairs. Step i is matched with annotated segment i. Mean tIoU is over matched "
                   "steps; over every segment, a segment without a step counts 0.")]
    return "\n".join(lines)


def _span(segment: Segment) -> str:
    return f"{segment.start:g}–{segment.end:g}s"


def _videos(count: int) -> str:
    return f"{count} video has" if count == 1 else f"{count} videos have"


def _names(names: Sequence[str], shown: int = 10) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _left_apart(report: CoverageReport) -> list[str]:
    """The lines for videos left out of the coverage: each kind counted apart, with its hint."""
    lines = []
    if report.failed_check:
        lines.append(f"{len(report.failed_check)} failed `ddft data check` and are left out "
                     f"(the check's reasons are on each sample): {_names(report.failed_check)}.")
    if report.unreadable:
        lines.append(f"{len(report.unreadable)} could not be read when generating, so their "
                     "frame times are unknown: " + "; ".join(
                         f"{name} ({reason})" for name, reason in report.unreadable[:10])
                     + (f" and {len(report.unreadable) - 10} more" if len(report.unreadable) > 10
                        else "") + ".")
    if report.excluded:
        lines.append(f"{report.excluded} excluded from the eval set are left out.")
    return lines


def render_coverage_markdown(report: CoverageReport) -> str:
    lines = [f"## Frame coverage on {report.eval_set}", ""]
    if not report.videos:
        lines.append("No eval video has annotated step segments.")
        return "\n".join(lines + _left_apart(report))
    lines.append(f"Annotated steps that none of the 8 sampled frames falls in: "
                 f"{_of(report.uncovered, report.steps)} over "
                 f"{sum(1 for v in report.videos if v.frame_times)} videos.")
    if report.without_frames:
        lines.append(f"{_videos(report.without_frames)} no known frame times "
                     "(run `ddft data check` or `ddft generate`).")
    if report.without_segments:
        lines.append(f"{report.without_segments} eval videos have no annotated segments.")
    lines += _left_apart(report)
    lines += ["", "| Video | Steps | Uncovered | Uncovered steps |", "|---|---:|---:|---|"]
    for video in report.videos:
        if not video.frame_times:
            lines.append(f"| {video.external_id} | {video.segments} | — | frame times unknown |")
            continue
        names = "; ".join(f"{i + 1}. {s.sentence} ({_span(s)})" for i, s in video.uncovered)
        lines.append(f"| {video.external_id} | {video.segments} | {len(video.uncovered)} "
                     f"| {names or '—'} |")
    return "\n".join(lines)



# ------------------------------------------------------------------ paired comparison

# Per-video figures a variant is compared on, paired video by video with a baseline: (key,
# label, whether higher is better).
COMPARED = (
    ("mean_iou", "Mean tIoU, matched steps", True),
    ("mean_iou_segments", "Mean tIoU, every segment", True),
    ("iou_at_05", "Segments with tIoU ≥ 0.5", True),
    ("beyond", "Times past the end", False),
    ("overlap", "Overlapping pairs", False),
    ("order", "Order violations", False),
)


def video_figures(score: TimestampScore) -> dict[str, float]:
    """One answer's figures for the paired comparison, each a share or a mean in [0, 1]; an
    answer with nothing to count (no matched step, no pair, no time) counts 0, so a variant
    that writes no timed step gets no tIoU rather than none at all."""
    segments = score.matched + score.missed_segments
    return {
        "mean_iou": score.iou_sum / score.matched if score.matched else 0.0,
        "mean_iou_segments": score.iou_sum / segments if segments else 0.0,
        "iou_at_05": sum(iou >= 0.5 for iou in score.ious) / segments if segments else 0.0,
        "beyond": score.beyond_duration / score.n_times if score.n_times else 0.0,
        "overlap": score.overlapping / score.pairs if score.pairs else 0.0,
        "order": score.order_violations / score.pairs if score.pairs else 0.0,
    }


@dataclass(frozen=True)
class TimestampDifference:
    """A variant against the baseline on one figure, over the videos both answered: the two
    means, their difference and its clustered paired bootstrap interval."""

    variant: str
    figure: str  # a key of COMPARED
    value: float
    baseline_value: float
    diff: float
    low: float
    high: float
    p: float
    n: int  # paired videos
    clusters: int  # recipes (sample groups) among them


@dataclass(frozen=True)
class TimestampComparison:
    eval_set: str
    baseline: str
    rows: tuple[TimestampDifference, ...]
    missing: tuple[str, ...] = ()  # variants named without timestamp answers on the eval set

    def to_dict(self) -> dict[str, Any]:
        return {"eval_set": self.eval_set, "baseline": self.baseline,
                "missing": list(self.missing), "rows": [asdict(row) for row in self.rows]}


def timestamp_comparison(session: Session, *, dataset_id: int, baseline: str,
                         variants: Sequence[str] | None = None, n_boot: int = 10_000,
                         seed: int = 0) -> TimestampComparison:
    """Each variant's timestamp figures (`video_figures`, from its newest timestamp answer per
    video) against `baseline`'s on the same videos: the mean difference with its 95% paired
    bootstrap interval, videos resampled by recipe (the sample's group) as Table 1's paired
    tests do. `variants` (default: every variant with answers) keeps that order.

    Raises ValueError when the baseline has no timestamp answers on the eval set.
    """
    from db import queries
    from engine.evaluation.stats import paired_bootstrap_diff

    dataset = queries.get_dataset_by_id(session, dataset_id=dataset_id)
    samples = {s.id: s for s in queries.list_samples(session, dataset_id=dataset_id, limit=None)}
    names = {v.id: v.name for v in queries.list_variants(session)}
    latest = _latest_by_variant_and_sample(
        queries.list_generations(session, dataset_id=dataset_id, task=TASK))
    figures: dict[str, dict[int, dict[str, float]]] = {}
    for variant_id, by_sample in latest.items():
        figures[names[variant_id]] = {
            sample_id: video_figures(score_timestamps(
                parse_timestamped_steps(generation.text),
                annotated_segments(samples[sample_id].meta), samples[sample_id].duration_s))
            for sample_id, generation in by_sample.items()
            if annotated_segments(samples[sample_id].meta)}
    eval_set = dataset.name if dataset else str(dataset_id)
    if baseline not in figures:
        raise ValueError(f"baseline {baseline!r}: no timestamp answers on {eval_set}; run "
                         f"`ddft timestamps --variant {baseline} --eval-set {eval_set}`")
    wanted = list(variants) if variants is not None else sorted(figures)
    rows = []
    for name in wanted:
        if name == baseline or name not in figures:
            continue
        paired = sorted(set(figures[name]) & set(figures[baseline]))
        if not paired:
            continue
        clusters = [samples[i].group or f"sample-{i}" for i in paired]
        for key, _, _ in COMPARED:
            a = [figures[name][i][key] for i in paired]
            b = [figures[baseline][i][key] for i in paired]
            diff, low, high, p = paired_bootstrap_diff(a, b, clusters, n_boot=n_boot, seed=seed)
            rows.append(TimestampDifference(name, key, sum(a) / len(a), sum(b) / len(b), diff,
                                            low, high, p, len(paired), len(set(clusters))))
    return TimestampComparison(eval_set=eval_set, baseline=baseline, rows=tuple(rows),
                               missing=tuple(n for n in wanted if n not in figures))


def render_comparison_markdown(comparison: TimestampComparison) -> str:
    """One row a variant: each figure with its difference from the baseline and the 95%
    paired bootstrap interval of that difference."""
    lines = [f"## Timestamps against {comparison.baseline} on {comparison.eval_set}", ""]
    by_variant: dict[str, dict[str, TimestampDifference]] = defaultdict(dict)
    for row in comparison.rows:
        by_variant[row.variant][row.figure] = row
    if not by_variant:
        lines.append("No variant has timestamp answers on the same videos as the baseline.")
        return "\n".join(lines)
    lines.append("| Variant | n | " + " | ".join(label for _, label, _ in COMPARED) + " |")
    lines.append("|---|---:|" + "---:|" * len(COMPARED))
    first = next(iter(by_variant.values()))
    base = [f"{first[key].baseline_value:.3f}" for key, _, _ in COMPARED]
    lines.append(f"| {comparison.baseline} (baseline) | {next(iter(first.values())).n} | "
                 + " | ".join(base) + " |")
    for variant, rows in by_variant.items():
        cells = [f"{rows[key].value:.3f} ({rows[key].diff:+.3f}, {rows[key].low:+.3f} to "
                 f"{rows[key].high:+.3f})" for key, _, _ in COMPARED]
        n = next(iter(rows.values()))
        lines.append(f"| {variant} | {n.n} | " + " | ".join(cells) + " |")
    lines += ["", ("Each figure is a mean over the videos both variants answered (a share per "
                   "video: of matched steps, of every annotated segment, of start and end times, "
                   "of consecutive step pairs; a video with nothing to count counts 0). In "
                   "brackets: the difference from the baseline and its 95% paired bootstrap "
                   f"interval, videos resampled by recipe ({n.clusters} recipes). Higher is "
                   "better for the tIoU figures, lower for the last three.")]
    if comparison.missing:
        lines.append(f"No timestamp answers yet: {', '.join(comparison.missing)}.")
    return "\n".join(lines)
