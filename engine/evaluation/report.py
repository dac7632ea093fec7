"""The paper's Table 1 (Yes, No, Accuracy, Average Score per variant) with its statistics:
intervals, paired tests between variants, per-stage scores, offline metrics and a histogram."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Optional

from db.queries import JudgedRow
from engine.evaluation.judge_prompts import STAGES as TWO_STAGES
from engine.evaluation.stats import cluster_bootstrap_mean, mcnemar, paired_bootstrap_diff, wilson_interval

SCORE_BINS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Table1Row:
    variant: str
    yes: int
    no: int
    unparsable: int
    n: int  # judged generations, unparsable included
    accuracy: Optional[float]  # percent of yes among parsed verdicts
    average_score: Optional[float]  # mean of parsed scores


@dataclass(frozen=True)
class StageScore:
    """One stage of a two-stage judgment (ingredients, steps) averaged over a variant."""

    mean: float
    n: int
    low: Optional[float]  # clustered bootstrap interval of the mean
    high: Optional[float]


@dataclass(frozen=True)
class VariantStats:
    """The uncertainty around one Table 1 row, and what lies under its average."""

    variant: str
    accuracy_low: Optional[float]  # percent; Wilson interval over parsed yes/no verdicts
    accuracy_high: Optional[float]
    score_low: Optional[float]  # bootstrap interval of the mean score, recipes resampled whole
    score_high: Optional[float]
    recipes: int  # clusters behind the score interval
    histogram: dict[int, int]  # parsed scores rounded half up to 1..5 → count
    stages: dict[str, StageScore] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """`variant` against `baseline` on the samples both were judged on (same judge setting)."""

    variant: str
    baseline: str
    pairs: int  # samples with a yes/no verdict from both
    both_yes: int
    variant_only_yes: int  # McNemar's b
    baseline_only_yes: int  # McNemar's c
    both_no: int
    accuracy_diff: Optional[float]  # percentage points, variant minus baseline, on the pairs
    mcnemar_p: Optional[float]  # exact two-sided; None without pairs
    score_pairs: int  # samples with a parsed score from both
    score_diff: Optional[float]  # mean of variant minus baseline
    score_diff_low: Optional[float]  # clustered paired bootstrap interval
    score_diff_high: Optional[float]
    score_p: Optional[float]  # paired bootstrap, two-sided


@dataclass(frozen=True)
class OfflineSummary:
    """`engine.evaluation.metrics.recipe_metrics` averaged over a variant's generations; a mean over the
    generations where the metric is defined, None when it never is."""

    variant: str
    n: int  # generations
    ingredient_precision: Optional[float]
    ingredient_recall: Optional[float]
    ingredient_f1: Optional[float]
    measurement_rate: Optional[float]
    kendall_tau: Optional[float]
    kendall_n: int  # generations with at least two matched steps
    words: float
    ingredients: float
    steps: float


@dataclass
class Report:
    rows: list[Table1Row]
    judges: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)
    decoding: list[dict[str, Any]] = field(default_factory=list)
    eval_set: str = ""
    stats: list[VariantStats] = field(default_factory=list)  # one per row, same order
    comparisons: list[Comparison] = field(default_factory=list)
    offline: list[OfflineSummary] = field(default_factory=list)
    baseline: str = ""  # the variant the csv's comparison columns are against
    confidence: float = 0.95
    n_boot: int = 10_000
    seed: int = 0
    # engine.evaluation.agreement.CampaignAgreement per rating campaign on the eval set; rendered only
    # when there is one.
    agreement: list[Any] = field(default_factory=list)
    # Where in the video: "timestamps" (engine.evaluation.timestamps.TimestampReport), "coverage"
    # (CoverageReport) and "grounding" (engine.evaluation.grounding.GroundingReport), each only when the
    # eval set has something to show for it.
    video: dict[str, Any] = field(default_factory=dict)


def accuracy_percent(yes: int, no: int) -> Optional[float]:
    """Yes over yes + no, as a percentage; None when nothing was judged."""
    total = yes + no
    return 100.0 * yes / total if total else None


def _group_by_variant(rows: Iterable[JudgedRow]) -> dict[str, list[JudgedRow]]:
    grouped: dict[str, list[JudgedRow]] = {}
    for row in rows:
        grouped.setdefault(row.variant, []).append(row)
    return grouped


def _scored(row: JudgedRow) -> bool:
    return row.score is not None and row.verdict != "unparsable"


def table1(rows: Iterable[JudgedRow]) -> list[Table1Row]:
    """One Table 1 row per variant, in the order variants first appear."""
    result = []
    for variant, items in _group_by_variant(rows).items():
        yes = sum(1 for r in items if r.verdict == "yes")
        no = sum(1 for r in items if r.verdict == "no")
        scores = [r.score for r in items if _scored(r)]
        result.append(
            Table1Row(
                variant=variant,
                yes=yes,
                no=no,
                unparsable=sum(1 for r in items if r.verdict == "unparsable"),
                n=len(items),
                accuracy=accuracy_percent(yes, no),
                average_score=sum(scores) / len(scores) if scores else None,
            )
        )
    return result


def _cluster(row: JudgedRow) -> str:
    # A sample without a recipe group is its own cluster, never lumped with other ungrouped ones.
    return row.group or f"sample:{row.sample_id}"


def score_bin(score: float) -> int:
    """The histogram bin of a score: rounded half up (3.5 → 4, matching the paper's 'yes'
    threshold) and clamped to 1..5."""
    return min(5, max(1, math.floor(score + 0.5)))


def score_histogram(scores: Iterable[float]) -> dict[int, int]:
    """Counts of scores per bin 1..5 (every bin present, zeros included)."""
    counts = dict.fromkeys(SCORE_BINS, 0)
    for score in scores:
        counts[score_bin(score)] += 1
    return counts


def stage_scores(details: Mapping[str, Any] | None) -> dict[str, float]:
    """Per-stage scores from a judgment's details. The two-stage GPT judge stores each stage's
    score under the stage's name (`details["ingredients"]`, `details["steps"]`, as named in
    `engine.evaluation.judge_prompts.STAGES`); a `details["stages"]` mapping of stage name to a number or
    to a mapping with a numeric "score" is read too. A stage whose reply was unparsable (None)
    is left out."""
    details = details or {}
    stages = details.get("stages")
    if not isinstance(stages, Mapping):
        stages = {name: details[name] for name in TWO_STAGES if name in details}
    result = {}
    for name, value in stages.items():
        if isinstance(value, Mapping):
            value = value.get("score")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result[str(name)] = float(value)
    return result


def _interval(values: list[float], clusters: list[str], *, n_boot: int, seed: int,
              confidence: float) -> tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    return cluster_bootstrap_mean(values, clusters, n_boot=n_boot, seed=seed,
                                  confidence=confidence)


def variant_stats(
    rows: Iterable[JudgedRow],
    *,
    details: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[VariantStats]:
    """Per variant, in the order of `table1`: Wilson interval for accuracy (percent), clustered
    bootstrap interval for the mean score (clusters = JudgedRow.group, the recipe), the score
    histogram and, where judgments carry stages, per-stage means. A row's details come from its
    own `details` attribute when it has one, else from `details[(variant, sample_id)]`."""
    result = []
    for variant, items in _group_by_variant(rows).items():
        yes = sum(1 for r in items if r.verdict == "yes")
        no = sum(1 for r in items if r.verdict == "no")
        acc = wilson_interval(yes, yes + no, confidence) if yes + no else None
        scored = [r for r in items if _scored(r)]
        low, high = _interval([r.score for r in scored], [_cluster(r) for r in scored],
                              n_boot=n_boot, seed=seed, confidence=confidence)
        per_stage: dict[str, tuple[list[float], list[str]]] = {}
        for r in items:
            extra = getattr(r, "details", None)
            if not extra and details is not None:
                extra = details.get((r.variant, r.sample_id))
            for stage, value in stage_scores(extra).items():
                values, clusters = per_stage.setdefault(stage, ([], []))
                values.append(value)
                clusters.append(_cluster(r))
        stages = {}
        for stage, (values, clusters) in per_stage.items():
            s_low, s_high = _interval(values, clusters, n_boot=n_boot, seed=seed,
                                      confidence=confidence)
            stages[stage] = StageScore(mean=sum(values) / len(values), n=len(values),
                                       low=s_low, high=s_high)
        result.append(
            VariantStats(
                variant=variant,
                accuracy_low=None if acc is None else 100.0 * acc[0],
                accuracy_high=None if acc is None else 100.0 * acc[1],
                score_low=low,
                score_high=high,
                recipes=len({_cluster(r) for r in scored}),
                histogram=score_histogram(r.score for r in scored),
                stages=stages,
            )
        )
    return result


def _pair_key(row: JudgedRow) -> tuple:
    # Only judgments by the same judge setting are paired; scales differ between protocols.
    return row.sample_id, row.judge, row.protocol, row.prompt_version


def compare_variants(
    rows: Iterable[JudgedRow],
    variant: str,
    baseline: str,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison:
    """`variant` against `baseline`, paired by sample (and judge setting): McNemar's exact test
    on yes/no verdicts and a paired bootstrap, clustered by recipe, on scores. Should a variant
    hold several judgments of one sample under one judge setting (several decodings), the first
    is used."""
    by_variant: dict[str, dict[tuple, JudgedRow]] = {variant: {}, baseline: {}}
    for row in rows:
        if row.variant in by_variant:
            by_variant[row.variant].setdefault(_pair_key(row), row)
    ours, theirs = by_variant[variant], by_variant[baseline]
    shared = [k for k in ours if k in theirs]

    verdicts = [(ours[k].verdict == "yes", theirs[k].verdict == "yes") for k in shared
                if ours[k].verdict in ("yes", "no") and theirs[k].verdict in ("yes", "no")]
    both_yes = sum(1 for a, b in verdicts if a and b)
    b_count = sum(1 for a, b in verdicts if a and not b)
    c_count = sum(1 for a, b in verdicts if b and not a)
    both_no = len(verdicts) - both_yes - b_count - c_count

    scored = [k for k in shared if _scored(ours[k]) and _scored(theirs[k])]
    diff = low = high = p = None
    if scored:
        diff, low, high, p = paired_bootstrap_diff(
            [ours[k].score for k in scored], [theirs[k].score for k in scored],
            [_cluster(ours[k]) for k in scored], n_boot=n_boot, seed=seed, confidence=confidence,
        )
    return Comparison(
        variant=variant,
        baseline=baseline,
        pairs=len(verdicts),
        both_yes=both_yes,
        variant_only_yes=b_count,
        baseline_only_yes=c_count,
        both_no=both_no,
        accuracy_diff=100.0 * (b_count - c_count) / len(verdicts) if verdicts else None,
        mcnemar_p=mcnemar(b_count, c_count) if verdicts else None,
        score_pairs=len(scored),
        score_diff=diff,
        score_diff_low=low,
        score_diff_high=high,
        score_p=p,
    )


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def _defined(metrics: list, name: str) -> list[float]:
    return [getattr(m, name) for m in metrics if getattr(m, name) is not None]


def offline_summary(generations: Iterable[tuple[str, str, str]]) -> list[OfflineSummary]:
    """`engine.evaluation.metrics.recipe_metrics` over (variant, generated text, reference text) triples,
    averaged per variant in the order variants first appear."""
    from engine.evaluation.metrics import recipe_metrics

    grouped: dict[str, list] = {}
    for variant, generated, reference in generations:
        grouped.setdefault(variant, []).append(recipe_metrics(generated, reference))
    result = []
    for variant, items in grouped.items():
        taus = _defined(items, "kendall_tau")
        result.append(
            OfflineSummary(
                variant=variant,
                n=len(items),
                ingredient_precision=_mean(_defined(items, "ingredient_precision")),
                ingredient_recall=_mean(_defined(items, "ingredient_recall")),
                ingredient_f1=_mean(_defined(items, "ingredient_f1")),
                measurement_rate=_mean(_defined(items, "measurement_rate")),
                kendall_tau=_mean(taus),
                kendall_n=len(taus),
                words=sum(m.words for m in items) / len(items),
                ingredients=sum(m.ingredients for m in items) / len(items),
                steps=sum(m.steps for m in items) / len(items),
            )
        )
    return result


def build_report(
    rows: list[JudgedRow],
    *,
    eval_set: str = "",
    baseline: Optional[str] = None,
    generations: Iterable[tuple[str, str, str]] | None = None,
    details: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Report:
    """Table 1 plus the provenance every report names (judges, protocols, prompt versions,
    decoding), the intervals of `variant_stats`, paired comparisons and offline metrics.

    Comparisons: every variant against `baseline` when it is given, else every pair (a later
    variant against an earlier one). `generations` are (variant, generated, reference) triples
    for the offline metrics; `details` maps (variant, sample_id) to a judgment's details for rows
    that do not carry their own. Deterministic for a given `seed`.

    Raises ValueError when `baseline` names no variant in `rows`.
    """
    decoding: list[dict[str, Any]] = []
    for row in rows:
        if row.decoding not in decoding:
            decoding.append(row.decoding)
    table = table1(rows)
    names = [r.variant for r in table]
    if baseline is not None and baseline not in names:
        raise ValueError(f"no judged variant named {baseline!r}; judged variants: "
                         f"{', '.join(names) or 'none'}")
    if baseline is not None:
        pairs = [(name, baseline) for name in names if name != baseline]
    else:
        pairs = [(later, earlier) for i, earlier in enumerate(names) for later in names[i + 1:]]
    options = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    return Report(
        rows=table,
        judges=sorted({r.judge for r in rows}),
        protocols=sorted({r.protocol for r in rows}),
        prompt_versions=sorted({r.prompt_version for r in rows}),
        decoding=decoding,
        eval_set=eval_set,
        stats=variant_stats(rows, details=details, **options),
        comparisons=[compare_variants(rows, a, b, **options) for a, b in pairs],
        offline=offline_summary(generations) if generations is not None else [],
        baseline=baseline or (names[0] if names else ""),
        **options,
    )


def _fmt(value: Optional[float], pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _fmt_range(low: Optional[float], high: Optional[float], pattern: str) -> str:
    if low is None or high is None:
        return "—"
    return f"{pattern.format(low)}–{pattern.format(high)}"


def _fmt_p(p: Optional[float]) -> str:
    if p is None:
        return "—"
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def histogram_bars(histogram: Mapping[int, int], *, width: int = 30) -> list[str]:
    """A text bar chart of a score histogram, one line per bin: `4 │██████████ 12`."""
    top = max(histogram.values(), default=0)
    lines = []
    for score in SCORE_BINS:
        count = histogram.get(score, 0)
        bar = "█" * (round(width * count / top) if top else 0)
        lines.append(f"{score} │{bar:<{width}} {count}")
    return lines


def render_markdown(report: Report) -> str:
    level = f"{report.confidence * 100:g}%"
    lines = [
        f"| Variant | Yes | No | Accuracy | Average Score | n | Unparsable "
        f"| Accuracy {level} CI | Score {level} CI | Recipes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    stats = {s.variant: s for s in report.stats}
    for row in report.rows:
        s = stats.get(row.variant)
        extra = ("| — | — | — |" if s is None else
                 f"| {_fmt_range(s.accuracy_low, s.accuracy_high, '{:.2f}%')} "
                 f"| {_fmt_range(s.score_low, s.score_high, '{:.2f}')} | {s.recipes} |")
        lines.append(
            f"| {row.variant} | {row.yes} | {row.no} | {_fmt(row.accuracy, '{:.2f}%')} "
            f"| {_fmt(row.average_score, '{:.2f}')} | {row.n} | {row.unparsable} {extra}"
        )
    if report.stats:
        lines += ["", f"Accuracy CI: Wilson score interval over parsed verdicts. Score CI: "
                      f"percentile bootstrap resampling recipes ({report.n_boot} resamples, "
                      f"seed {report.seed})."]

    if report.comparisons:
        lines += [
            "",
            "## Paired comparisons",
            "",
            "| Variant | Baseline | Pairs | Both yes | Only variant | Only baseline | Both no "
            "| Δ Accuracy | McNemar p | Score pairs | Δ Score | Δ Score CI | Bootstrap p |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in report.comparisons:
            lines.append(
                f"| {c.variant} | {c.baseline} | {c.pairs} | {c.both_yes} | "
                f"{c.variant_only_yes} | {c.baseline_only_yes} | {c.both_no} "
                f"| {_fmt(c.accuracy_diff, '{:+.2f} pp')} | {_fmt_p(c.mcnemar_p)} "
                f"| {c.score_pairs} | {_fmt(c.score_diff, '{:+.3f}')} "
                f"| {_fmt_range(c.score_diff_low, c.score_diff_high, '{:+.3f}')} "
                f"| {_fmt_p(c.score_p)} |"
            )
        lines += ["", "McNemar: exact two-sided binomial test on discordant pairs. Bootstrap: "
                      "paired, resampling recipes; p from the distribution shifted to zero."]

    staged = [s for s in report.stats if s.stages]
    if staged:
        lines += ["", "## Per-stage scores", "", f"| Variant | Stage | Mean | {level} CI | n |",
                  "|---|---|---:|---:|---:|"]
        for s in staged:
            for stage, score in s.stages.items():
                lines.append(f"| {s.variant} | {stage} | {score.mean:.2f} "
                             f"| {_fmt_range(score.low, score.high, '{:.2f}')} | {score.n} |")

    if report.offline:
        lines += [
            "",
            "## Offline metrics",
            "",
            "| Variant | n | Ingredient P | Ingredient R | Ingredient F1 | Measurement rate "
            "| Kendall τ (n) | Words | Ingredients | Steps |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for o in report.offline:
            lines.append(
                f"| {o.variant} | {o.n} | {_fmt(o.ingredient_precision, '{:.3f}')} "
                f"| {_fmt(o.ingredient_recall, '{:.3f}')} | {_fmt(o.ingredient_f1, '{:.3f}')} "
                f"| {_fmt(o.measurement_rate, '{:.1%}')} "
                f"| {_fmt(o.kendall_tau, '{:.3f}')} ({o.kendall_n}) | {o.words:.1f} "
                f"| {o.ingredients:.1f} | {o.steps:.1f} |"
            )

    if any(sum(s.histogram.values()) for s in report.stats):
        lines += ["", "## Score histogram", "", "```text"]
        for i, s in enumerate(report.stats):
            if i:
                lines.append("")
            lines.append(s.variant)
            lines += [f"  {bar}" for bar in histogram_bars(s.histogram)]
        lines.append("```")

    for summary in report.agreement:
        lines += [""] + agreement_markdown(summary, level=level)
    lines += video_markdown(report.video)

    lines.append("")
    if report.eval_set:
        lines.append(f"Eval set: {report.eval_set}")
    lines.append(f"Judge: {', '.join(report.judges) or '—'}")
    lines.append(f"Protocol: {', '.join(report.protocols) or '—'}")
    lines.append(f"Prompt version: {', '.join(report.prompt_versions) or '—'}")
    for params in report.decoding:
        lines.append(f"Decoding: {json.dumps(params, sort_keys=True)}")
    return "\n".join(lines)


def _cell(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"


def _cell_p(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.6g}"


def render_csv(report: Report) -> str:
    """One row per variant: Table 1, provenance, intervals, histogram counts, the comparison
    against `report.baseline` (empty on the baseline's own row), offline metric means and
    per-stage means (`stage_<name>`). Rectangular, so any CSV reader loads it; comparisons
    between other pairs are in the md and json renderings."""
    stats = {s.variant: s for s in report.stats}
    against = {c.variant: c for c in report.comparisons if c.baseline == report.baseline}
    offline = {o.variant: o for o in report.offline}
    stage_names = sorted({name for s in report.stats for name in s.stages})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["variant", "yes", "no", "accuracy", "average_score", "n", "unparsable",
         "judge", "protocol", "prompt_version",
         "accuracy_ci_low", "accuracy_ci_high", "score_ci_low", "score_ci_high", "recipes"]
        + [f"hist_{score}" for score in SCORE_BINS]
        + ["baseline", "both_yes", "variant_only_yes", "baseline_only_yes", "both_no",
           "mcnemar_p", "score_diff", "score_diff_low", "score_diff_high", "score_diff_p"]
        + ["ingredient_precision", "ingredient_recall", "ingredient_f1", "measurement_rate",
           "kendall_tau", "words", "ingredients", "steps"]
        + [f"stage_{name}" for name in stage_names]
        + agreement_columns(report.agreement)
        + video_columns(report.video)
    )
    for row in report.rows:
        s, c, o = stats.get(row.variant), against.get(row.variant), offline.get(row.variant)
        cells = [row.variant, row.yes, row.no, _cell(row.accuracy), _cell(row.average_score),
                 row.n, row.unparsable, ";".join(report.judges), ";".join(report.protocols),
                 ";".join(report.prompt_versions)]
        cells += ([_cell(s.accuracy_low), _cell(s.accuracy_high), _cell(s.score_low),
                   _cell(s.score_high), s.recipes] + [s.histogram[b] for b in SCORE_BINS]
                  if s else [""] * (5 + len(SCORE_BINS)))
        cells += ([c.baseline, c.both_yes, c.variant_only_yes, c.baseline_only_yes, c.both_no,
                   _cell_p(c.mcnemar_p), _cell(c.score_diff), _cell(c.score_diff_low),
                   _cell(c.score_diff_high), _cell_p(c.score_p)] if c else [""] * 10)
        cells += ([_cell(o.ingredient_precision), _cell(o.ingredient_recall),
                   _cell(o.ingredient_f1), _cell(o.measurement_rate), _cell(o.kendall_tau),
                   _cell(o.words), _cell(o.ingredients), _cell(o.steps)] if o else [""] * 8)
        cells += [_cell(s.stages[name].mean) if s and name in s.stages else ""
                  for name in stage_names]
        cells += agreement_cells(report.agreement, row.variant)
        cells += video_cells(report.video, row.variant)
        writer.writerow(cells)
    return out.getvalue()


def render_json(report: Report) -> str:
    extra: dict[str, Any] = {}
    if report.agreement:
        extra["agreement"] = [asdict(a) for a in report.agreement]
    if report.video:
        extra["video"] = {name: part.to_dict() for name, part in report.video.items()}
    return json.dumps(
        {
            "eval_set": report.eval_set,
            "rows": [asdict(row) for row in report.rows],
            "judges": report.judges,
            "protocols": report.protocols,
            "prompt_versions": report.prompt_versions,
            "decoding": report.decoding,
            "confidence": report.confidence,
            "n_boot": report.n_boot,
            "seed": report.seed,
            "baseline": report.baseline,
            "stats": [asdict(s) for s in report.stats],
            "comparisons": [asdict(c) for c in report.comparisons],
            "offline": [asdict(o) for o in report.offline],
            **extra,
        },
        indent=2,
    )


# ---------------------------------------------------------------- people against the judge


def _fmt_n(value: Optional[float], n: int, pattern: str = "{:.3f}") -> str:
    return f"{_fmt(value, pattern)} (n={n})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _items(rated: int, total: int) -> str:
    """`5 of 12 items`, or `5 items` when the campaign's size is not known."""
    return f"{rated} of {_count(total, 'item')}" if total else _count(rated, "item")


def agreement_markdown(summary: Any, *, level: str = "95%") -> list[str]:
    """Markdown lines for one campaign's `engine.evaluation.agreement.CampaignAgreement`."""
    s = summary
    lines = [f"## Human ratings: {s.campaign}", "",
             f"{s.mode} campaign: {_count(s.ratings, 'rating')} by {_count(s.raters, 'rater')} on "
             f"{_items(s.items, s.total_items)}; "
             f"judge compared: {s.judge or '—'}", "",
             "| Agreement | Value (n) |", "|---|---:|"]
    if s.mode == "single":
        lines.append(f"| Human vs judge: Cohen's kappa, yes/no at 3.5 | "
                     f"{_fmt_n(s.kappa, s.kappa_n)} |")
        lines.append(f"| Human vs judge: Spearman, overall vs score | "
                     f"{_fmt_n(s.spearman, s.spearman_n)} |")
    else:
        lines.append(f"| Human vs judge: preferences the judge's scores share | "
                     f"{_fmt_n(s.judge_agreement, s.judge_agreement_n, '{:.1%}')} |")
    lines.append(f"| Between raters: Krippendorff's alpha ({s.alpha_level or '—'}) | "
                 f"{_fmt(s.alpha, '{:.3f}')} (items={s.alpha_units}) |")
    if s.variants and s.mode == "single":
        lines += ["", f"| Variant | Ratings | Human overall | {level} CI | Ingredients | Steps "
                      f"| Judge mean |", "|---|---:|---:|---:|---:|---:|---:|"]
        for v in s.variants:
            lines.append(f"| {v.variant} | {v.n} | {_fmt(v.mean_overall, '{:.2f}')} "
                         f"| {_fmt_range(v.overall_low, v.overall_high, '{:.2f}')} "
                         f"| {_fmt(v.mean_ingredients, '{:.2f}')} | {_fmt(v.mean_steps, '{:.2f}')} "
                         f"| {_fmt(v.judge_mean, '{:.2f}')} |")
    elif s.variants:
        lines += ["", f"| Variant | Wins | Losses | Ties | Both bad | n | Human win rate "
                      f"| {level} CI |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for v in s.variants:
            w = v.win
            lines.append(f"| {v.variant} | {w.wins} | {w.losses} | {w.ties} | {w.both_bad} "
                         f"| {w.n} | {_fmt(w.rate, '{:.1%}')} "
                         f"| {_fmt_range(w.low, w.high, '{:.1%}')} |")
    if s.disagreements:
        lines += ["", "### Where people and the judge disagree most", "",
                  "| Item | Sample | Variants | People | Judge | Gap | Ratings |",
                  "|---:|---|---|---|---|---:|---:|"]
        for d in s.disagreements:
            gap = f"{d.gap:.2f}" if s.mode == "single" else f"{d.gap:.0%}"
            lines.append(f"| {d.item_id} | {d.sample} | {' vs '.join(d.variants)} | {d.human} "
                         f"| {d.judge} | {gap} | {d.n} |")
    if s.notes:
        lines += [""] + [f"Note: {note}." for note in s.notes]
    return lines


def agreement_columns(agreements: list[Any]) -> list[str]:
    """CSV columns for the campaigns' per-variant human results and campaign-wide agreement
    (repeated on every row, so the file stays rectangular); none without campaigns."""
    columns = []
    for a in agreements:
        prefix = f"rating_{a.campaign}_"
        value = "human_overall" if a.mode == "single" else "human_win_rate"
        columns += [prefix + name for name in ("human_n", value, f"{value}_low", f"{value}_high",
                                               "kappa" if a.mode == "single" else
                                               "judge_agreement", "alpha")]
    return columns


def agreement_cells(agreements: list[Any], variant: str) -> list[Any]:
    cells: list[Any] = []
    for a in agreements:
        mine = next((v for v in a.variants if v.variant == variant), None)
        if mine is None:
            cells += ["", "", "", ""]
        elif a.mode == "single":
            cells += [mine.n, _cell(mine.mean_overall), _cell(mine.overall_low),
                      _cell(mine.overall_high)]
        else:
            cells += [mine.n, _cell(mine.win.rate), _cell(mine.win.low), _cell(mine.win.high)]
        cells += [_cell(a.kappa if a.mode == "single" else a.judge_agreement), _cell(a.alpha)]
    return cells


AGREEMENT_CSV_COLUMNS = ("campaign", "mode", "judge", "variant", "human_n", "human_overall",
                         "human_overall_low", "human_overall_high", "wins", "losses", "ties",
                         "both_bad", "human_win_rate", "human_win_rate_low",
                         "human_win_rate_high", "kappa", "kappa_n", "spearman", "spearman_n",
                         "judge_agreement", "judge_agreement_n", "alpha", "alpha_level",
                         "alpha_units")


def render_agreement_csv(agreements: list[Any]) -> str:
    """One row per campaign and variant: people's results for the variant, then the campaign's
    agreement figures (repeated, so the file stays rectangular)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(AGREEMENT_CSV_COLUMNS)
    for a in agreements:
        wide = [_cell(a.kappa), a.kappa_n, _cell(a.spearman), a.spearman_n,
                _cell(a.judge_agreement), a.judge_agreement_n, _cell(a.alpha), a.alpha_level,
                a.alpha_units]
        for v in a.variants or [None]:
            if v is None:
                cells = [""] * 11
            elif v.win is None:
                cells = [v.n, _cell(v.mean_overall), _cell(v.overall_low), _cell(v.overall_high)]
                cells += [""] * 7
            else:
                w = v.win
                cells = [v.n, "", "", "", w.wins, w.losses, w.ties, w.both_bad, _cell(w.rate),
                         _cell(w.low), _cell(w.high)]
            writer.writerow([a.campaign, a.mode, a.judge, v.variant if v else ""] + cells + wide)
    return out.getvalue()


# ---------------------------------------------------------------- where in the video


def video_sections(timestamps: Any, coverage: Any, grounding: Any) -> dict[str, Any]:
    """The report's `video` parts that have something to show: timestamp answers, eval videos
    with annotated segments and known frame times, grounded generations."""
    parts: dict[str, Any] = {}
    if timestamps is not None and timestamps.rows:
        parts["timestamps"] = timestamps
    if coverage is not None and coverage.steps:
        parts["coverage"] = coverage
    if grounding is not None and any(row.generations for row in grounding.rows):
        parts["grounding"] = grounding
    return parts


def video_markdown(video: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the timestamp, frame-coverage and grounding sections present."""
    from engine.evaluation.grounding import render_grounding_markdown
    from engine.evaluation.timestamps import render_coverage_markdown, render_timestamps_markdown

    renderers = {"timestamps": render_timestamps_markdown, "coverage": render_coverage_markdown,
                 "grounding": render_grounding_markdown}
    lines: list[str] = []
    for name, render in renderers.items():
        if name in video:
            lines += [""] + render(video[name]).splitlines()
    return lines


VIDEO_COLUMNS = ("ts_answers", "ts_steps", "ts_beyond_share", "ts_overlap_share",
                 "ts_identical_share", "ts_order_share", "ts_mean_iou", "grounding_setting",
                 "grounding_matched", "grounding_hit_rate", "grounding_baseline")


def video_columns(video: Mapping[str, Any]) -> list[str]:
    """CSV columns for the per-variant timestamp checks and grounding hit rate (the variant's
    most used grounding setting, named in `grounding_setting`; md and json carry every
    setting)."""
    return list(VIDEO_COLUMNS) if "timestamps" in video or "grounding" in video else []


def video_cells(video: Mapping[str, Any], variant: str) -> list[Any]:
    if not video_columns(video):
        return []
    cells: list[Any] = [""] * 7
    timestamps = video.get("timestamps")
    row = next((r for r in timestamps.rows if r.variant == variant), None) if timestamps else None
    if row is not None:
        cells = [row.n, row.steps, _cell(row.beyond_share), _cell(row.overlap_share),
                 _cell(row.identical_share), _cell(row.order_share), _cell(row.mean_iou)]
    grounding = video.get("grounding")
    # The variant's setting with the most grounded generations (then matched steps): the one
    # its recipes were grounded with throughout, when another was tried on a few.
    candidates = [r for r in grounding.rows if r.variant == variant and r.generations] \
        if grounding else []
    grounded = max(candidates, key=lambda r: (r.generations, r.matched), default=None)
    if grounded is None:
        return cells + [""] * 4
    return cells + [grounded.params, grounded.matched, _cell(grounded.hit_rate),
                    _cell(grounded.baseline)]
