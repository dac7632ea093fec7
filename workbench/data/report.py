"""The Report screen's data: `engine.evaluation.report.build_report` on the screen's selection
(the one builder `ddft report` and the demo call too), and its sections as the screen's lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.evaluation.words import plural

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from engine.evaluation.report import Report


def format_accuracy(accuracy: float | None) -> str:
    return "—" if accuracy is None else f"{accuracy:.2f}%"


def format_score(score: float | None) -> str:
    return "—" if score is None else f"{score:.2f}"


def format_range(low: float | None, high: float | None, pattern: str = "{:.2f}") -> str:
    """An interval as `ddft report` writes it (`[-1.672, -0.470]`): the one formatter."""
    from engine.evaluation.report import format_interval

    return format_interval(low, high, pattern)


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def load_report(db_engine: Engine, *, eval_set: str | None = None, judge: str | None = None,
                protocol: str | None = None, prompt_version: str | None = None,
                baseline: str | None = None) -> Report:
    """`build_report` on the screen's choices, each None left to its default. Not strict: a
    choice the store does not hold (left over from another eval set or judge) falls back to
    its default, as if it were not made."""
    from db.store import session_scope
    from engine.evaluation.report import ReportSelection, build_report

    selection = ReportSelection(eval_set=eval_set, judge=judge, protocol=protocol,
                                prompt_version=prompt_version, baseline=baseline)
    with session_scope(db_engine) as session:
        return build_report(session, selection, strict=False)


def histogram_bars(report: Report) -> list[tuple[str, list[str]]]:
    """(variant, bar lines) of the report's score histograms, sized for the screen."""
    from engine.evaluation.report import HistogramSection

    return HistogramSection(report).bars(width=24)


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
            ci = (f" (95% CI {format_range(interval[0], interval[1], '{:.1%}')})"
                  if interval else "")
            chance = "—" if row.baseline is None else f"{row.baseline:.1%}"
            lines.append((f"  {row.variant} [{row.params}]: hit rate {rate}{ci}, "
                          f"{row.hits}/{row.matched} steps · random frame {chance} · "
                          f"{plural(row.generations, 'generation')}",
                          ""))
    return lines


def _figure(value: float | None, n: int | str, pattern: str = "{:.3f}") -> str:
    return f"{'—' if value is None else pattern.format(value)} (n={n})"


def agreement_lines(summary: Any) -> list[tuple[str, str]]:
    """One campaign's agreement as (text, style) lines for the Report screen: people against
    the judge, between raters, per variant, the disagreement queue and why a figure is missing."""
    s = summary

    items = f"{s.items} of {plural(s.total_items, 'item')}" if s.total_items else plural(s.items, "item")
    lines = [(f"Human ratings: {s.campaign} — {s.mode}, {plural(s.ratings, 'rating')} by "
              f"{plural(s.raters, 'rater')} on {items} · judge {s.judge or '—'}", "bold")]
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
