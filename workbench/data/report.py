"""The paper's Table 1 for one eval set and one judge setting, with its intervals, paired
comparisons against a baseline and score histograms, and the choices around it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class ReportView:
    eval_sets: tuple[tuple[int, str], ...]
    dataset_id: int | None
    judges: tuple[str, ...]
    judge: str | None
    protocols: tuple[str, ...]
    protocol: str | None
    prompt_versions: tuple[str, ...]
    prompt_version: str | None
    rows: tuple[Any, ...]  # engine.evaluation.report.Table1Row
    stats: tuple[Any, ...]  # engine.evaluation.report.VariantStats, one per row, same order
    comparisons: tuple[Any, ...]  # engine.evaluation.report.Comparison, each variant against `baseline`
    baseline: str | None  # the variant the comparisons are against
    histograms: tuple[tuple[str, tuple[str, ...]], ...]  # variant → engine.evaluation.report.histogram_bars
    n_samples: int  # distinct eval samples behind the table
    decodings: int  # distinct decoding settings mixed in the table
    # engine.evaluation.agreement.CampaignAgreement per rating campaign on the eval set, against the
    # judge and protocol of the table
    agreements: tuple[Any, ...] = ()
    # engine.evaluation.report.video_sections of the eval set: timestamps, frame coverage, grounding.
    video: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_set(self) -> str:
        return dict(self.eval_sets).get(self.dataset_id, "") if self.dataset_id is not None else ""


def format_accuracy(accuracy: float | None) -> str:
    return "—" if accuracy is None else f"{accuracy:.2f}%"


def format_score(score: float | None) -> str:
    return "—" if score is None else f"{score:.2f}"


def format_range(low: float | None, high: float | None, pattern: str = "{:.2f}") -> str:
    if low is None or high is None:
        return "—"
    return f"{pattern.format(low)}–{pattern.format(high)}"


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def _pick(requested: str | None, counts: Counter) -> str | None:
    """The requested value when it exists, else the most used one (ties by name)."""
    if requested in counts:
        return requested
    if not counts:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


def load_report(
    engine: Engine,
    *,
    dataset_id: int | None = None,
    judge: str | None = None,
    protocol: str | None = None,
    prompt_version: str | None = None,
    baseline: str | None = None,
) -> ReportView:
    """Table 1 over one judge, protocol and prompt version, so that scores on different scales
    never share a row, with `engine.evaluation.report.build_report`'s intervals and every other variant
    compared with `baseline`. A choice that does not exist falls back to the most used one;
    the baseline to the first variant."""
    from db.queries import judged_rows, list_datasets
    from db.store import session_scope
    from engine.evaluation.report import build_report, histogram_bars

    with session_scope(engine) as session:
        eval_sets = tuple((d.id, d.name) for d in list_datasets(session, purpose="eval"))
        ids = [dataset for dataset, _ in eval_sets]
        if dataset_id not in ids:
            dataset_id = ids[0] if ids else None
        rows = judged_rows(session, dataset_id=dataset_id) if dataset_id is not None else []

    judges = Counter(r.judge for r in rows)
    judge = _pick(judge, judges)
    of_judge = [r for r in rows if r.judge == judge]
    protocols = Counter(r.protocol for r in of_judge)
    protocol = _pick(protocol, protocols)
    of_protocol = [r for r in of_judge if r.protocol == protocol]
    versions = Counter(r.prompt_version for r in of_protocol)
    prompt_version = _pick(prompt_version, versions)
    chosen = [r for r in of_protocol if r.prompt_version == prompt_version]
    decodings = []
    for row in chosen:
        if row.decoding not in decodings:
            decodings.append(row.decoding)
    names = list(dict.fromkeys(r.variant for r in chosen))
    if baseline not in names:
        baseline = names[0] if names else None
    report = build_report(chosen, eval_set=dict(eval_sets).get(dataset_id, ""), baseline=baseline)
    agreements = load_agreements(engine, dataset_id=dataset_id, judge=judge, protocol=protocol)
    video = load_video(engine, dataset_id=dataset_id)
    return ReportView(
        eval_sets=eval_sets,
        dataset_id=dataset_id,
        judges=tuple(sorted(judges)),
        judge=judge,
        protocols=tuple(sorted(protocols)),
        protocol=protocol,
        prompt_versions=tuple(sorted(versions)),
        prompt_version=prompt_version,
        rows=tuple(report.rows),
        stats=tuple(report.stats),
        comparisons=tuple(report.comparisons),
        baseline=baseline,
        histograms=tuple((s.variant, tuple(histogram_bars(s.histogram, width=24)))
                         for s in report.stats if sum(s.histogram.values())),
        n_samples=len({r.sample_id for r in chosen}),
        decodings=len(decodings),
        agreements=agreements,
        video=video,
    )


def load_agreements(engine: Engine, *, dataset_id: int | None, judge: str | None,
                    protocol: str | None) -> tuple[Any, ...]:
    """People against the judge (`engine.evaluation.rating.campaign_agreement`) for every rating campaign
    on the eval set, oldest first."""
    if dataset_id is None:
        return ()
    from db.campaigns import list_campaigns
    from db.store import session_scope
    from engine.evaluation.rating import campaign_agreement

    with session_scope(engine) as session:
        return tuple(campaign_agreement(session, campaign, judge=judge, protocol=protocol)
                     for campaign in list_campaigns(session, dataset_id=dataset_id))


def load_video(engine: Engine, *, dataset_id: int | None) -> dict[str, Any]:
    """The eval set's timestamp checks, frame coverage and grounding hit rates, the parts that
    have something to show."""
    if dataset_id is None:
        return {}
    from db.store import session_scope
    from engine.evaluation.grounding import grounding_report
    from engine.evaluation.report import video_sections
    from engine.evaluation.timestamps import coverage_report, timestamp_report

    with session_scope(engine) as session:
        return video_sections(timestamp_report(session, dataset_id=dataset_id),
                              coverage_report(session, dataset_id=dataset_id),
                              grounding_report(session, dataset_id=dataset_id))


def _share_text(part: int, whole: int) -> str:
    return "— (0/0)" if not whole else f"{part / whole:.1%} ({part}/{whole})"


def video_lines(video: dict[str, Any]) -> list[tuple[str, str]]:
    """The eval set's "where in the video" sections as (text, style) lines for the Report
    screen: timestamp checks per variant, frame coverage, grounding hit rates."""
    lines: list[tuple[str, str]] = []
    timestamps = video.get("timestamps")
    if timestamps is not None:
        lines.append((f"Timestamps (prompt {timestamps.prompt_version}; generated step i "
                      f"against annotated segment i)", "bold"))
        for row in timestamps.rows:
            iou = "—" if row.mean_iou is None else f"{row.mean_iou:.2f}"
            lines.append((f"  {row.variant}: {row.n} answers, {row.steps} timed steps, "
                          f"{row.unparsable_lines} unparsable lines · beyond the video "
                          f"{_share_text(row.beyond_duration, row.times)} · overlapping "
                          f"{_share_text(row.overlapping, row.pairs)} · identical "
                          f"{_share_text(row.identical, row.pairs)} · out of order "
                          f"{_share_text(row.order_violations, row.pairs)} · mean tIoU {iou} "
                          f"(n={row.matched})", ""))
    coverage = video.get("coverage")
    if coverage is not None:
        lines.append(("Frame coverage", "bold"))
        lines.append((f"  annotated steps none of the 8 sampled frames falls in: "
                      f"{_share_text(coverage.uncovered, coverage.steps)} over "
                      f"{sum(1 for v in coverage.videos if v.frame_times)} videos", ""))
    grounding = video.get("grounding")
    if grounding is not None:
        lines.append(("Keyframe grounding (a hit: the chosen frame lies in the step's annotated "
                      "segment)", "bold"))
        for row in grounding.rows:
            if not row.generations:
                continue
            rate = "—" if row.hit_rate is None else f"{row.hit_rate:.1%}"
            interval = row.interval
            ci = f" (95% CI {interval[0]:.1%}–{interval[1]:.1%})" if interval else ""
            chance = "—" if row.baseline is None else f"{row.baseline:.1%}"
            lines.append((f"  {row.variant} [{row.params}]: hit rate {rate}{ci}, "
                          f"{row.hits}/{row.matched} steps · random frame {chance} · "
                          f"{row.generations} generation{'' if row.generations == 1 else 's'}",
                          ""))
    return lines


def _figure(value: float | None, n: int | str, pattern: str = "{:.3f}") -> str:
    return f"{'—' if value is None else pattern.format(value)} (n={n})"


def agreement_lines(summary: Any) -> list[tuple[str, str]]:
    """One campaign's agreement as (text, style) lines for the Report screen: people against
    the judge, between raters, per variant, the disagreement queue and why a figure is missing."""
    s = summary

    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

    items = f"{s.items} of {count(s.total_items, 'item')}" if s.total_items else count(s.items, "item")
    lines = [(f"Human ratings: {s.campaign} — {s.mode}, {count(s.ratings, 'rating')} by "
              f"{count(s.raters, 'rater')} on {items} · judge {s.judge or '—'}", "bold")]
    if s.mode == "single":
        lines.append((f"  people vs judge: Cohen's kappa (yes/no at 3.5) "
                      f"{_figure(s.kappa, s.kappa_n)} · Spearman (overall vs score) "
                      f"{_figure(s.spearman, s.spearman_n)}", ""))
    else:
        lines.append((f"  people vs judge: preferences the judge's scores share "
                      f"{_figure(s.judge_agreement, s.judge_agreement_n, '{:.1%}')}", ""))
    lines.append((f"  between raters: Krippendorff's alpha ({s.alpha_level or '—'}) "
                  f"{_figure(s.alpha, f'{s.alpha_units} items')}", ""))
    for v in s.variants:
        if v.win is None:
            lines.append((f"  {v.variant}: human overall {format_score(v.mean_overall)} "
                          f"(95% CI {format_range(v.overall_low, v.overall_high)}) · ingredients "
                          f"{format_score(v.mean_ingredients)} · steps {format_score(v.mean_steps)}"
                          f" · judge {format_score(v.judge_mean)} · n={v.n}", ""))
        else:
            w = v.win
            rate = "—" if w.rate is None else f"{w.rate:.1%}"
            lines.append((f"  {v.variant}: human win rate {rate} (95% CI "
                          f"{format_range(w.low, w.high, '{:.1%}')}) · {w.wins} wins, "
                          f"{w.losses} losses, {w.ties} ties, {w.both_bad} both bad · n={w.n}", ""))
    if s.disagreements:
        lines.append(("  where people and the judge disagree most:", "bold"))
        for d in s.disagreements:
            gap = f"gap {d.gap:.2f}" if s.mode == "single" else f"{d.gap:.0%} against the judge"
            lines.append((f"    item {d.item_id} · {d.sample} · {' vs '.join(d.variants)} · "
                          f"people {d.human} · judge {d.judge} · {gap} · {d.n} ratings", ""))
    lines += [(f"  note: {note}", "dim") for note in s.notes]
    return lines
