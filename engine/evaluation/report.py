"""The report: the paper's Table 1 (Yes, No, Accuracy, Average Score per variant) with its
intervals, paired tests against a baseline, per-stage scores, offline metrics, histograms, human
agreement and where in the video, built by one function (`build_report`) from one explicit
selection, in typed sections that each render to markdown, CSV columns and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Collection, Iterable, Mapping, Optional

from db.errors import UserError
from db.queries import JudgedRow
from engine.evaluation.judge_prompts import STAGES as TWO_STAGES
from engine.evaluation.spreadsheet import csv_writer
from engine.evaluation.stats import cluster_bootstrap_mean, mcnemar, paired_bootstrap_diff, wilson_interval
from engine.evaluation.words import plural

if TYPE_CHECKING:
    from sqlmodel import Session

    from db.models import Dataset

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
    failed: int = 0  # eval samples whose latest generation failed (an unreadable video); not in n


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


# ---------------------------------------------------------------- what a report is about

DEFAULT_RULE = ("eval set: the one with the most judged recipes (the oldest on a tie); judge: the most used among the eval set's "
                "judgments; protocol: the most used of that judge's; prompt version: the most "
                "used of that judge and protocol's (ties by name); baseline: the first variant; "
                "campaigns: every campaign on the eval set")

def default_eval_set(eval_sets) -> int | None:
    """The eval set a report or the Compare screen shows when none is named: the one with the
    most judged recipe generations, the oldest on a tie or when none is judged; None without
    eval sets. `eval_sets`: `db.compare.EvalSetCount`s, oldest first."""
    best = None
    for candidate in eval_sets:
        if best is None or candidate.judged > best.judged:
            best = candidate
    return best.id if best is not None else None


PARTS = frozenset({"table", "offline", "agreement", "video"})


class ReportError(UserError, ValueError):
    """A report was asked for something the store does not hold (an eval set, judge, protocol,
    prompt version, variant or campaign); the message names what there is."""


@dataclass(frozen=True)
class ReportSelection:
    """What a report is about. A field left None asks for its default (`DEFAULT_RULE`)."""

    eval_set: Optional[str] = None
    judge: Optional[str] = None
    protocol: Optional[str] = None
    prompt_version: Optional[str] = None
    baseline: Optional[str] = None  # the variant every other one is compared with
    campaign: Optional[str] = None  # one rating campaign; None: every campaign on the eval set


@dataclass(frozen=True)
class ResolvedSelection:
    """A `ReportSelection` with its defaults filled from the store, which of them were
    defaults, and the choices the store offers (for selectors)."""

    eval_set: str  # "" when the store holds no eval set
    judge: Optional[str]  # None when nothing on the eval set is judged
    protocol: Optional[str]
    prompt_version: Optional[str]
    baseline: Optional[str]  # None without a judged variant
    campaign: Optional[str]
    defaults: tuple[str, ...] = ()  # the fields filled by DEFAULT_RULE, in field order
    eval_sets: tuple[str, ...] = ()  # eval sets, oldest first
    judges: tuple[str, ...] = ()  # judges on the eval set, by name
    protocols: tuple[str, ...] = ()  # of the chosen judge
    prompt_versions: tuple[str, ...] = ()  # of the chosen judge and protocol
    variants: tuple[str, ...] = ()  # in the table, in its order

    def to_dict(self) -> dict[str, Any]:
        return {
            "eval_set": self.eval_set, "judge": self.judge, "protocol": self.protocol,
            "prompt_version": self.prompt_version, "baseline": self.baseline,
            "campaign": self.campaign, "defaults": list(self.defaults), "rule": DEFAULT_RULE,
            "available": {"eval_sets": list(self.eval_sets), "judges": list(self.judges),
                          "protocols": list(self.protocols),
                          "prompt_versions": list(self.prompt_versions),
                          "variants": list(self.variants)},
        }


def _most_used(counts: Counter) -> Optional[str]:
    """The most frequent value, ties by name; None when there is none."""
    if not counts:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


class _Resolver:
    """Fills a selection field by field, remembering which fields took their default."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.defaults: list[str] = []

    def pick(self, field_name: str, asked: Optional[str], counts: Counter, *,
             missing: str) -> Optional[str]:
        """`asked` when the store holds it, else the most used value. Raises ReportError for
        an asked value the store lacks when strict (`missing` names it)."""
        if asked is not None and asked in counts:
            return asked
        if asked is not None and self.strict:
            there = ", ".join(sorted(counts)) or "none"
            raise ReportError(f"{missing} {asked!r}; there: {there}")
        if counts:
            self.defaults.append(field_name)
        return _most_used(counts)


def _resolve(session: Session, asked: ReportSelection, *,
             strict: bool) -> tuple[ResolvedSelection, Optional[Dataset], list[JudgedRow]]:
    """The selection with its defaults filled (DEFAULT_RULE), the eval set's row and every
    judged row on it (all judge settings). Raises ReportError (see `build_report`)."""
    from db import queries
    from db.campaigns import CampaignError

    resolver = _Resolver(strict=strict)
    from db.compare import eval_sets_judged

    eval_sets = queries.list_datasets(session, purpose="eval")
    dataset = queries.get_dataset(session, name=asked.eval_set) if asked.eval_set else None
    if asked.eval_set and dataset is None and strict:
        raise ReportError(f"no eval set named {asked.eval_set!r}; `ddft data list` shows the "
                          "datasets")
    if dataset is None and eval_sets:
        chosen = default_eval_set(eval_sets_judged(session))
        dataset = next(d for d in eval_sets if d.id == chosen)
        resolver.defaults.append("eval_set")
    if dataset is None:
        if strict:
            raise ReportError("no eval set yet: import one with `ddft data import kitchen`, or build a "
                              "demo workspace with `ddft demo`")
        return ResolvedSelection(eval_set="", judge=None, protocol=None, prompt_version=None,
                                 baseline=None, campaign=None), None, []
    where = f"on {dataset.name}"
    rows = queries.judged_rows(session, dataset_id=dataset.id)
    judges = Counter(r.judge for r in rows)
    judge = resolver.pick("judge", asked.judge, judges, missing=f"no judgments {where} by judge")
    of_judge = [r for r in rows if r.judge == judge]
    protocols = Counter(r.protocol for r in of_judge)
    protocol = resolver.pick("protocol", asked.protocol, protocols,
                             missing=f"no judgments by {judge} {where} with protocol")
    of_protocol = [r for r in of_judge if r.protocol == protocol]
    versions = Counter(r.prompt_version for r in of_protocol)
    version = resolver.pick("prompt_version", asked.prompt_version, versions,
                            missing=f"no judgments by {judge} ({protocol}) {where} with "
                                    "prompt version")
    variants = tuple(dict.fromkeys(r.variant for r in of_protocol
                                   if r.prompt_version == version))
    baseline = asked.baseline if asked.baseline in variants else None
    if asked.baseline is not None and baseline is None and strict:
        raise ReportError(f"no judged variant named {asked.baseline!r} in this table; judged "
                          f"variants: {', '.join(variants) or 'none'}")
    if baseline is None and variants:
        baseline = variants[0]
        resolver.defaults.append("baseline")
    campaign = asked.campaign
    if campaign is not None:
        from engine.evaluation.rating import require_campaign

        try:
            found = require_campaign(session, campaign)
        except CampaignError as exc:
            found = None
            if strict:
                raise ReportError(str(exc)) from None
        if found is not None and found.dataset_id != dataset.id and strict:
            raise ReportError(f"campaign {campaign!r} rates another eval set, not "
                              f"{dataset.name}")
        if found is None or found.dataset_id != dataset.id:
            campaign = None
    if campaign is None:
        resolver.defaults.append("campaign")
    order = ("eval_set", "judge", "protocol", "prompt_version", "baseline", "campaign")
    selection = ResolvedSelection(
        eval_set=dataset.name, judge=judge, protocol=protocol, prompt_version=version,
        baseline=baseline, campaign=campaign,
        defaults=tuple(name for name in order if name in resolver.defaults),
        eval_sets=tuple(d.name for d in eval_sets), judges=tuple(sorted(judges)),
        protocols=tuple(sorted(protocols)), prompt_versions=tuple(sorted(versions)),
        variants=variants,
    )
    return selection, dataset, rows


def resolve_selection(session: Session, asked: ReportSelection, *,
                      strict: bool = True) -> ResolvedSelection:
    """`asked` with its defaults filled by DEFAULT_RULE from what the store holds. Strict, a
    named eval set, judge, protocol, prompt version, baseline or campaign that the store lacks
    raises ReportError; not strict (a screen whose choices may be stale), it falls back to the
    default."""
    return _resolve(session, asked, strict=strict)[0]


@dataclass
class Report:
    """One report: Table 1 under one judge setting with its intervals, the paired comparisons
    against the baseline, per-stage scores, offline metrics, score histograms, human agreement
    per campaign and where in the video; `sections()` gives each as a renderable part."""

    selection: ResolvedSelection
    rows: list[Table1Row]
    stats: list[VariantStats] = field(default_factory=list)  # one per row, same order
    comparisons: list[Comparison] = field(default_factory=list)  # each against the baseline
    decoding: list[dict[str, Any]] = field(default_factory=list)  # settings behind the rows
    n_samples: int = 0  # distinct eval samples behind the table
    # Variant → eval samples whose latest recipe generation failed (unreadable or too-short
    # media), judged variants or not: db.queries.generation_failure_counts.
    failed: dict[str, int] = field(default_factory=dict)
    offline: list[OfflineSummary] = field(default_factory=list)
    confidence: float = 0.95
    n_boot: int = 10_000
    seed: int = 0
    # engine.evaluation.agreement.CampaignAgreement per rating campaign of the selection.
    agreement: list[Any] = field(default_factory=list)
    # "timestamps" (engine.evaluation.timestamps.TimestampReport), "coverage" (CoverageReport),
    # "grounding" (engine.evaluation.grounding.GroundingReport) of the eval set, empty ones
    # included; every rendering but `ddft report-video` shows only those with something in them.
    video: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_set(self) -> str:
        return self.selection.eval_set

    @property
    def baseline(self) -> str:
        return self.selection.baseline or ""

    def sections(self) -> list["Section"]:
        """The parts in reading order; markdown, CSV columns and JSON all walk them."""
        return [Table1Section(self), ComparisonSection(self), StageSection(self),
                OfflineSection(self), HistogramSection(self),
                *(AgreementSection(summary, self.confidence) for summary in self.agreement),
                VideoSection(self.video_parts()), SelectionSection(self)]

    def video_parts(self) -> dict[str, Any]:
        """The video reports with something to show (`video_sections`)."""
        return video_sections(self.video.get("timestamps"), self.video.get("coverage"),
                              self.video.get("grounding"))


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


def table1(rows: Iterable[JudgedRow], failed: Mapping[str, int] | None = None
           ) -> list[Table1Row]:
    """One Table 1 row per variant, in the order variants first appear; `failed` gives each
    variant's count of samples whose generation failed (db.queries.generation_failure_counts)."""
    failed = failed or {}
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
                failed=failed.get(variant, 0),
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


def _selection_of(rows: list[JudgedRow], *, eval_set: str, baseline: Optional[str]
                  ) -> ResolvedSelection:
    """The selection a list of rows stands for (rows built without a store, as in tests)."""
    variants = tuple(dict.fromkeys(r.variant for r in rows))
    first = rows[0] if rows else None
    return ResolvedSelection(
        eval_set=eval_set, judge=first and first.judge, protocol=first and first.protocol,
        prompt_version=first and first.prompt_version,
        baseline=baseline or (variants[0] if variants else None), campaign=None,
        defaults=() if baseline else ("baseline",), variants=variants)


def report_from_rows(
    rows: list[JudgedRow],
    *,
    selection: Optional[ResolvedSelection] = None,
    eval_set: str = "",
    baseline: Optional[str] = None,
    generations: Iterable[tuple[str, str, str]] | None = None,
    details: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
    failed: Mapping[str, int] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Report:
    """Table 1, its intervals, the comparisons of every variant with the baseline and the
    offline metrics of rows already selected: `build_report`'s arithmetic, without the store.

    `selection` names what the rows are (else it is read off them, with `eval_set` and
    `baseline`, which defaults to the first variant). `generations` are (variant, generated,
    reference) triples for the offline metrics; `details` maps (variant, sample_id) to a
    judgment's details for rows that do not carry their own; `failed` maps a variant to its
    samples whose generation failed. Deterministic for a given `seed`.

    Raises ReportError when the rows mix judges, protocols or prompt versions (scores on
    different scales never share a table) or when `baseline` names no variant in them.
    """
    settings = sorted({(r.judge, r.protocol, r.prompt_version) for r in rows})
    if len(settings) > 1:
        raise ReportError("a table is one judge, protocol and prompt version; these rows hold "
                          + "; ".join(" · ".join(s) for s in settings))
    if selection is None:
        selection = _selection_of(rows, eval_set=eval_set, baseline=baseline)
    table = table1(rows, failed)
    names = [r.variant for r in table]
    chosen = selection.baseline
    if chosen is not None and rows and chosen not in names:
        raise ReportError(f"no judged variant named {chosen!r}; judged variants: "
                          f"{', '.join(names) or 'none'}")
    decoding: list[dict[str, Any]] = []
    for row in rows:
        if row.decoding not in decoding:
            decoding.append(row.decoding)
    options = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    return Report(
        selection=selection,
        rows=table,
        stats=variant_stats(rows, details=details, **options),
        comparisons=[compare_variants(rows, name, chosen, **options)
                     for name in names if name != chosen],
        decoding=decoding,
        n_samples=len({r.sample_id for r in rows}),
        offline=offline_summary(generations) if generations is not None else [],
        failed=dict(failed or {}),
        **options,
    )


def _generations(session: Session, dataset: Dataset) -> list[tuple[str, str, str]]:
    """(variant, generated recipe, reference) for every recipe generated on the eval set."""
    from db import queries

    variants = {v.id: v.name for v in queries.list_variants(session)}
    answers = {s.id: s.answer for s in queries.list_samples(session, dataset_id=dataset.id,
                                                             limit=None)}
    return [(variants[g.variant_id], g.text, answers[g.sample_id])
            for g in queries.list_generations(session, dataset_id=dataset.id)]


def _failed(session: Session, dataset: Dataset) -> dict[str, int]:
    """Variant → eval samples whose latest recipe generation failed."""
    from db import queries

    return queries.generation_failure_counts(session, dataset_id=dataset.id, task="recipe")


def _agreements(session: Session, dataset: Dataset, selection: ResolvedSelection) -> list[Any]:
    """People against the judge of the table, for the chosen campaign or every campaign on
    the eval set, oldest first."""
    from db.campaigns import list_campaigns
    from engine.evaluation.rating import campaign_agreement

    campaigns = [c for c in list_campaigns(session, dataset_id=dataset.id)
                 if selection.campaign is None or c.name == selection.campaign]
    # The judge setting of the table; campaign_agreement picks the most used one itself
    # when nothing is judged.
    return [campaign_agreement(session, c, judge=selection.judge, protocol=selection.protocol,
                               prompt_version=selection.prompt_version)
            for c in campaigns]


def _video(session: Session, dataset: Dataset) -> dict[str, Any]:
    from engine.evaluation.grounding import grounding_report
    from engine.evaluation.timestamps import coverage_report, timestamp_report

    return {"timestamps": timestamp_report(session, dataset_id=dataset.id),
            "coverage": coverage_report(session, dataset_id=dataset.id),
            "grounding": grounding_report(session, dataset_id=dataset.id)}


def build_report(
    session: Session,
    selection: ReportSelection,
    *,
    strict: bool = True,
    parts: Collection[str] = PARTS,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Report:
    """The report on `selection`, its defaults filled by `resolve_selection`: Table 1 over the
    eval set's judgments under exactly one judge, protocol and prompt version, with intervals
    and every other variant compared with the baseline; offline metrics of the eval set's
    recipes; human agreement of the chosen campaign (or every campaign on the eval set) against
    that judge and protocol; timestamp, frame-coverage and grounding reports of the eval set.
    `parts` leaves out what a caller does not show ("table", "offline", "agreement", "video").
    The CLI, the demo and the Report screen all call this; they only render what it returns.

    Raises ReportError for an eval set, judge, protocol, prompt version, baseline or campaign
    the store lacks (when `strict`; otherwise those fall back to their defaults).
    """
    resolved, dataset, rows = _resolve(session, selection, strict=strict)
    setting = (resolved.judge, resolved.protocol, resolved.prompt_version)
    chosen = [r for r in rows if (r.judge, r.protocol, r.prompt_version) == setting] \
        if "table" in parts else []
    report = report_from_rows(
        chosen, selection=resolved, n_boot=n_boot, seed=seed, confidence=confidence,
        generations=_generations(session, dataset)
        if dataset is not None and "offline" in parts else None,
        failed=_failed(session, dataset) if dataset is not None and "table" in parts else None)
    if dataset is not None and "agreement" in parts:
        report.agreement = _agreements(session, dataset, resolved)
    if dataset is not None and "video" in parts:
        report.video = _video(session, dataset)
    return report


# ---------------------------------------------------------------- the sample log


def _judgment_record(judgment: Any) -> dict[str, Any]:
    return {"id": judgment.id, "judge": judgment.judge, "protocol": judgment.protocol,
            "prompt_version": judgment.prompt_version, "score": judgment.score,
            "verdict": judgment.verdict, "raw": judgment.raw, "details": judgment.details,
            "job_id": judgment.job_id}


def _grounding_record(grounding: Any, segments: list, frame_times: list[float]
                      ) -> dict[str, Any]:
    from engine.evaluation.grounding import describe_params, step_hits

    hits = {h.index: h for h in step_hits(grounding.steps, segments, frame_times)}
    steps = []
    for step in grounding.steps:
        hit = hits.get(int(step.get("index", -1)))
        steps.append({key: step.get(key) for key in ("index", "text", "frames", "frame_indices",
                                                     "times")}
                     | {"hit": None if hit is None else hit.hit,
                        "chance": None if hit is None else hit.chance})
    return {"id": grounding.id, "params": describe_params(grounding.params),
            "params_key": grounding.params_key, "steps": steps}


def sample_log(session: Session, selection: ResolvedSelection) -> list[dict[str, Any]]:
    """The rows behind a report's Table 1, one record per eval sample and variant (a judged
    recipe generation), for `ddft report --samples`: the sample and its reference, the
    generation (text, decoding, frames), the judgment the table counts (`judgment`, under the
    selection's judge, protocol and prompt version) and every judgment of that generation with
    its raw reply (`judgments`), the offline metrics, and each grounding with its per-step hits.
    Then one record per sample whose latest generation failed (Table 1's Failed column), with
    its reason. Records carry `row`: "judged" or "failed"; the judged records of a variant are
    exactly its Table 1 n, and the mean of their parsed scores its Average Score.

    `selection` is the resolved selection of the report (Report.selection), so the log and the
    tables are about the same rows. Torch-free; reads only."""
    from db import queries
    from engine.evaluation.metrics import recipe_metrics
    from engine.evaluation.timestamps import annotated_segments

    dataset = queries.get_dataset(session, name=selection.eval_set) if selection.eval_set \
        else None
    if dataset is None:
        return []
    setting = (selection.judge, selection.protocol, selection.prompt_version)
    variants = {v.id: v for v in queries.list_variants(session)}
    samples = {s.id: s for s in queries.list_samples(session, dataset_id=dataset.id,
                                                     limit=None)}
    groundings: dict[int, list] = {}
    for grounding, generation, _ in queries.recipe_groundings(session, dataset_id=dataset.id):
        groundings.setdefault(generation.id, []).append(grounding)
    from db.compare import judgments_by_generation

    generations = queries.list_generations(session, dataset_id=dataset.id)
    # Every generation's judgments in one statement, not one a generation.
    judged_by = judgments_by_generation(session, generation_ids=[g.id for g in generations])
    judged = []
    for generation in generations:
        judgments = judged_by[generation.id]
        counted = next((j for j in judgments
                        if (j.judge, j.protocol, j.prompt_version) == setting), None)
        if counted is None:
            continue
        sample = samples[generation.sample_id]
        segments = annotated_segments(sample.meta)
        judged.append(((generation.variant_id, sample.id, generation.id), {
            "row": "judged",
            "eval_set": dataset.name,
            "variant": variants[generation.variant_id].name,
            "sample_id": sample.id,
            "external_id": sample.external_id,
            "group": sample.group,
            "media_path": sample.media_path,
            "prompt": generation.prompt,
            "reference": sample.answer,
            "generation": {"id": generation.id, "text": generation.text,
                           "params_key": generation.params_key,
                           "decoding": generation.decoding,
                           "frame_indices": generation.frame_indices,
                           "frame_times": generation.frame_times,
                           "n_tokens": generation.n_tokens, "job_id": generation.job_id},
            "judgment": _judgment_record(counted),
            "judgments": [_judgment_record(j) for j in judgments],
            "metrics": recipe_metrics(generation.text, sample.answer).as_dict(),
            "grounding": [_grounding_record(g, segments, generation.frame_times)
                          for g in groundings.get(generation.id, [])],
        }))
    # Table 1's order: variants as stored, then samples (db.queries.judged_rows).
    records = [record for _, record in sorted(judged, key=lambda item: item[0])]
    for failure in queries.list_generation_failures(session, dataset_id=dataset.id,
                                                    task="recipe"):
        records.append({"row": "failed", "eval_set": dataset.name, "variant": failure.variant,
                        "sample_id": failure.sample_id, "external_id": failure.external_id,
                        "media_path": failure.media_path,
                        "failure": {"id": failure.id, "reason": failure.reason,
                                    "job_id": failure.job_id}})
    return records


def render_sample_log(records: Iterable[Mapping[str, Any]]) -> str:
    """`sample_log`'s records as JSON Lines: one compact JSON object a line, text kept as
    written (not escaped to ASCII)."""
    return "".join(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"
                   for record in records)


def _fmt(value: Optional[float], pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def format_interval(low: Optional[float], high: Optional[float], pattern: str = "{:.2f}") -> str:
    """An interval as every rendering of the report shows it: `[low, high]` with each bound
    formatted by `pattern` (`[-1.672, -0.470]`, `[4.70%, 44.80%]`), so a negative bound never
    reads as a dash; — when either bound is unknown."""
    if low is None or high is None:
        return "—"
    return f"[{pattern.format(low)}, {pattern.format(high)}]"



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


def _cell(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"


def _fraction(percent: Optional[float]) -> Optional[float]:
    return None if percent is None else percent / 100.0


def _cell_p(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.6g}"



# ---------------------------------------------------------------- the sections


class Section:
    """One part of a report, in every format: markdown lines, CSV columns with one variant's
    cells (the CSV has a row per Table 1 variant), and JSON keys."""

    def markdown(self) -> list[str]:
        return []

    def columns(self) -> list[str]:
        return []

    def cells(self, variant: str) -> list[Any]:
        return []

    def json(self) -> dict[str, Any]:
        return {}


LABELS = {"eval_set": "Eval set", "judge": "Judge", "protocol": "Protocol",
          "prompt_version": "Prompt version", "baseline": "Baseline", "campaign": "Campaign"}


def _headline(s: ResolvedSelection) -> str:
    """The line naming what a table is, and which choices were defaults."""
    defaults = ", ".join(LABELS[name].lower() for name in s.defaults) or "none"
    return (f"## Table 1 on {s.eval_set} · judge {s.judge} · protocol {s.protocol} · "
            f"prompt version {s.prompt_version} · baseline {s.baseline} (defaults: {defaults})")


class Table1Section(Section):
    """The paper's Table 1 with its intervals, under one judge setting."""

    COLUMNS = ["yes", "no", "accuracy", "average_score", "n", "unparsable", "failed",
               "accuracy_ci_low",
               "accuracy_ci_high", "score_ci_low", "score_ci_high", "recipes"]

    def __init__(self, report: Report) -> None:
        self.report = report
        self.rows = {row.variant: row for row in report.rows}
        self.stats = {s.variant: s for s in report.stats}

    def markdown(self) -> list[str]:
        r = self.report
        if not r.rows:
            return [f"Nothing judged on {r.eval_set} yet (`ddft judge`); human ratings only."]
        level = f"{r.confidence * 100:g}%"
        lines = [_headline(r.selection), "",
                 f"| Variant | Yes | No | Accuracy | Average Score | n | Unparsable | Failed "
                 f"| Accuracy {level} CI | Score {level} CI | Recipes |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r.rows:
            s = self.stats.get(row.variant)
            extra = ("| — | — | — |" if s is None else
                     f"| {format_interval(s.accuracy_low, s.accuracy_high, '{:.2f}%')} "
                     f"| {format_interval(s.score_low, s.score_high, '{:.2f}')} | {s.recipes} |")
            lines.append(
                f"| {row.variant} | {row.yes} | {row.no} | {_fmt(row.accuracy, '{:.2f}%')} "
                f"| {_fmt(row.average_score, '{:.2f}')} | {row.n} | {row.unparsable} "
                f"| {row.failed} {extra}")
        lines += ["", f"{plural(r.n_samples, 'sample')}. Accuracy CI: Wilson score interval over parsed "
                      f"verdicts. Score CI: percentile bootstrap resampling recipes "
                      f"({r.n_boot} resamples, seed {r.seed})."]
        if len(r.decoding) > 1:
            lines.append(f"Note: {len(r.decoding)} decoding settings are mixed in these rows.")
        if any(r.failed.values()):
            judged = {row.variant for row in r.rows}
            unjudged = [f"{name} ({count})" for name, count in r.failed.items()
                        if count and name not in judged]
            lines.append("Failed: samples whose latest generation failed (a video or image "
                         "that cannot be read), not in n; `ddft jobs show ID` of the generate "
                         "job names them."
                         + (f" Variants with failures and nothing judged: {', '.join(unjudged)}."
                            if unjudged else ""))
        return lines

    def columns(self) -> list[str]:
        return list(self.COLUMNS)

    def cells(self, variant: str) -> list[Any]:
        row, s = self.rows[variant], self.stats.get(variant)
        # Accuracy is a percentage in markdown and JSON; the CSV holds every share as a
        # fraction (render_csv).
        cells = [row.yes, row.no, _cell(_fraction(row.accuracy)), _cell(row.average_score),
                 row.n, row.unparsable, row.failed]
        return cells + ([_cell(_fraction(s.accuracy_low)), _cell(_fraction(s.accuracy_high)),
                         _cell(s.score_low), _cell(s.score_high), s.recipes] if s else [""] * 5)

    def json(self) -> dict[str, Any]:
        r = self.report
        return {"rows": [asdict(row) for row in r.rows], "stats": [asdict(s) for s in r.stats],
                "decoding": r.decoding, "n_samples": r.n_samples, "confidence": r.confidence,
                "n_boot": r.n_boot, "seed": r.seed, "failed": dict(r.failed)}


class ComparisonSection(Section):
    """Every other variant against the baseline, paired by sample."""

    COLUMNS = ["baseline", "both_yes", "variant_only_yes", "baseline_only_yes", "both_no",
               "mcnemar_p", "score_diff", "score_diff_low", "score_diff_high", "score_diff_p"]

    def __init__(self, report: Report) -> None:
        self.report = report
        self.against = {c.variant: c for c in report.comparisons}

    def markdown(self) -> list[str]:
        if not self.report.comparisons:
            return []
        lines = ["## Paired comparisons", "",
                 "| Variant | Baseline | Pairs | Both yes | Only variant | Only baseline | Both no "
                 "| Δ Accuracy | McNemar p | Score pairs | Δ Score | Δ Score CI | Bootstrap p |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in self.report.comparisons:
            lines.append(
                f"| {c.variant} | {c.baseline} | {c.pairs} | {c.both_yes} | "
                f"{c.variant_only_yes} | {c.baseline_only_yes} | {c.both_no} "
                f"| {_fmt(c.accuracy_diff, '{:+.2f} pp')} | {_fmt_p(c.mcnemar_p)} "
                f"| {c.score_pairs} | {_fmt(c.score_diff, '{:+.3f}')} "
                f"| {format_interval(c.score_diff_low, c.score_diff_high, '{:+.3f}')} "
                f"| {_fmt_p(c.score_p)} |")
        return lines + ["", "McNemar: exact two-sided binomial test on discordant pairs. "
                            "Bootstrap: paired, resampling recipes; p from the distribution "
                            "shifted to zero."]

    def columns(self) -> list[str]:
        return list(self.COLUMNS)

    def cells(self, variant: str) -> list[Any]:
        c = self.against.get(variant)
        if c is None:  # the baseline's own row
            return [""] * len(self.COLUMNS)
        return [c.baseline, c.both_yes, c.variant_only_yes, c.baseline_only_yes, c.both_no,
                _cell_p(c.mcnemar_p), _cell(c.score_diff), _cell(c.score_diff_low),
                _cell(c.score_diff_high), _cell_p(c.score_p)]

    def json(self) -> dict[str, Any]:
        return {"baseline": self.report.baseline,
                "comparisons": [asdict(c) for c in self.report.comparisons]}


class StageSection(Section):
    """Per-stage means of two-stage judgments (ingredients, steps), where there are any."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.stats = {s.variant: s for s in report.stats}
        self.names = sorted({name for s in report.stats for name in s.stages})

    def markdown(self) -> list[str]:
        staged = [s for s in self.report.stats if s.stages]
        if not staged:
            return []
        level = f"{self.report.confidence * 100:g}%"
        lines = ["## Per-stage scores", "", f"| Variant | Stage | Mean | {level} CI | n |",
                 "|---|---|---:|---:|---:|"]
        for s in staged:
            for stage, score in s.stages.items():
                lines.append(f"| {s.variant} | {stage} | {score.mean:.2f} "
                             f"| {format_interval(score.low, score.high, '{:.2f}')} | {score.n} |")
        return lines

    def columns(self) -> list[str]:
        return [f"stage_{name}" for name in self.names]

    def cells(self, variant: str) -> list[Any]:
        s = self.stats.get(variant)
        return [_cell(s.stages[name].mean) if s and name in s.stages else ""
                for name in self.names]


class OfflineSection(Section):
    """`engine.evaluation.metrics.recipe_metrics` averaged per variant, when computed."""

    COLUMNS = ["ingredient_precision", "ingredient_recall", "ingredient_f1", "measurement_rate",
               "kendall_tau", "words", "ingredients", "steps"]

    def __init__(self, report: Report) -> None:
        self.report = report
        self.by_variant = {o.variant: o for o in report.offline}

    def markdown(self) -> list[str]:
        if not self.report.offline:
            return []
        lines = ["## Offline metrics", "",
                 "| Variant | n | Ingredient P | Ingredient R | Ingredient F1 | Measurement rate "
                 "| Kendall τ (n) | Words | Ingredients | Steps |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for o in self.report.offline:
            lines.append(
                f"| {o.variant} | {o.n} | {_fmt(o.ingredient_precision, '{:.3f}')} "
                f"| {_fmt(o.ingredient_recall, '{:.3f}')} | {_fmt(o.ingredient_f1, '{:.3f}')} "
                f"| {_fmt(o.measurement_rate, '{:.1%}')} "
                f"| {_fmt(o.kendall_tau, '{:.3f}')} ({o.kendall_n}) | {o.words:.1f} "
                f"| {o.ingredients:.1f} | {o.steps:.1f} |")
        return lines

    def columns(self) -> list[str]:
        return list(self.COLUMNS)

    def cells(self, variant: str) -> list[Any]:
        o = self.by_variant.get(variant)
        if o is None:
            return [""] * len(self.COLUMNS)
        return [_cell(o.ingredient_precision), _cell(o.ingredient_recall),
                _cell(o.ingredient_f1), _cell(o.measurement_rate), _cell(o.kendall_tau),
                _cell(o.words), _cell(o.ingredients), _cell(o.steps)]

    def json(self) -> dict[str, Any]:
        return {"offline": [asdict(o) for o in self.report.offline]}


class HistogramSection(Section):
    """Each variant's parsed scores per bin 1..5 (the counts live in `VariantStats`)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.stats = {s.variant: s for s in report.stats}

    def bars(self, *, width: int = 30) -> list[tuple[str, list[str]]]:
        """(variant, `histogram_bars`) for each variant with a parsed score."""
        return [(s.variant, histogram_bars(s.histogram, width=width))
                for s in self.report.stats if sum(s.histogram.values())]

    def markdown(self) -> list[str]:
        bars = self.bars()
        if not bars:
            return []
        lines = ["## Score histogram", "", "```text"]
        for i, (variant, chart) in enumerate(bars):
            lines += ([""] if i else []) + [variant] + [f"  {bar}" for bar in chart]
        return lines + ["```"]

    def columns(self) -> list[str]:
        return [f"hist_{score}" for score in SCORE_BINS]

    def cells(self, variant: str) -> list[Any]:
        s = self.stats.get(variant)
        return [s.histogram[b] for b in SCORE_BINS] if s else [""] * len(SCORE_BINS)


class AgreementSection(Section):
    """One rating campaign: people against the judge and between raters."""

    def __init__(self, summary: Any, confidence: float) -> None:
        self.summary = summary
        self.level = f"{confidence * 100:g}%"

    def markdown(self) -> list[str]:
        return agreement_markdown(self.summary, level=self.level)

    def columns(self) -> list[str]:
        return agreement_columns([self.summary])

    def cells(self, variant: str) -> list[Any]:
        return agreement_cells([self.summary], variant)

    def json(self) -> dict[str, Any]:
        return {"agreement": [asdict(self.summary)]}


class VideoSection(Section):
    """Timestamp checks, frame coverage and grounding hit rates that have something to show."""

    def __init__(self, parts: Mapping[str, Any]) -> None:
        self.parts = parts

    def markdown(self) -> list[str]:
        return video_markdown(self.parts)[1:]  # video_markdown opens with a blank line

    def columns(self) -> list[str]:
        return video_columns(self.parts)

    def cells(self, variant: str) -> list[Any]:
        return video_cells(self.parts, variant)

    def json(self) -> dict[str, Any]:
        if not self.parts:
            return {}
        return {"video": {name: part.to_dict() for name, part in self.parts.items()}}


class SelectionSection(Section):
    """What the report is about, which choices were defaults, and the decoding behind it."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def markdown(self) -> list[str]:
        s = self.report.selection
        values = {"eval_set": s.eval_set, "judge": s.judge, "protocol": s.protocol,
                  "prompt_version": s.prompt_version, "baseline": s.baseline,
                  "campaign": s.campaign or "every campaign on the eval set"}
        lines = [f"{LABELS[name]}: {values[name] or '—'}"
                 + (" (default)" if name in s.defaults else "") for name in LABELS]
        lines += [f"Decoding: {json.dumps(params, sort_keys=True)}"
                  for params in self.report.decoding]
        if s.defaults:
            lines.append(f"Defaults: {DEFAULT_RULE}.")
        return lines

    def columns(self) -> list[str]:
        return ["eval_set", "judge", "protocol", "prompt_version", "campaign", "defaults"]

    def cells(self, variant: str) -> list[Any]:
        s = self.report.selection
        return [s.eval_set, s.judge or "", s.protocol or "", s.prompt_version or "",
                s.campaign or "", ";".join(s.defaults)]

    def json(self) -> dict[str, Any]:
        return {"selection": self.report.selection.to_dict()}


# ---------------------------------------------------------------- the renderings


def render_markdown(report: Report) -> str:
    """The report as markdown: each section in reading order, a blank line between."""
    blocks = [section.markdown() for section in report.sections()]
    return "\n\n".join("\n".join(block) for block in blocks if block)


def render_csv(report: Report) -> str:
    """One row per Table 1 variant: `variant`, then each section's columns (Table 1 and its
    intervals, the comparison against the baseline, empty on the baseline's own row,
    per-stage means, offline metric means, histogram counts, per-campaign human results,
    timestamp and grounding figures, and the selection with the fields that took their
    default). Every share (accuracy and its interval, rates, agreement, hit rates) is a
    fraction from 0 to 1, never a percentage; scores are on the judge's scale.
    Rectangular, so any CSV reader loads it. With nothing judged, the human ratings
    alone (`render_agreement_csv`), with the selection's eval set and defaults."""
    out = io.StringIO()
    writer = csv_writer(out)
    if not report.rows and report.agreement:
        lines = list(csv.reader(io.StringIO(render_agreement_csv(report.agreement))))
        writer.writerow(lines[0] + ["eval_set", "defaults"])
        for line in lines[1:]:
            writer.writerow(line + [report.eval_set, ";".join(report.selection.defaults)])
        return out.getvalue()
    sections = report.sections()
    writer.writerow(["variant"] + [name for section in sections for name in section.columns()])
    for row in report.rows:
        writer.writerow([row.variant] + [cell for section in sections
                                         for cell in section.cells(row.variant)])
    return out.getvalue()


def render_json(report: Report) -> str:
    """The report as one JSON object: the selection first, then each section's keys
    (`agreement` and `video` only when there is something in them)."""
    data: dict[str, Any] = {"selection": None}
    for section in report.sections():
        for key, value in section.json().items():
            if key == "agreement":
                data.setdefault(key, []).extend(value)
            else:
                data[key] = value
    return json.dumps(data, indent=2)


# ---------------------------------------------------------------- people against the judge


def _fmt_n(value: Optional[float], n: int, pattern: str = "{:.3f}") -> str:
    return f"{_fmt(value, pattern)} (n={n})"


def _items(rated: int, total: int) -> str:
    """`5 of 12 items`, or `5 items` when the campaign's size is not known."""
    return f"{rated} of {plural(total, 'item')}" if total else plural(rated, "item")


def agreement_markdown(summary: Any, *, level: str = "95%") -> list[str]:
    """Markdown lines for one campaign's `engine.evaluation.agreement.CampaignAgreement`."""
    s = summary
    lines = [f"## Human ratings: {s.campaign}", "",
             f"{s.mode} campaign: {plural(s.ratings, 'rating')} by {plural(s.raters, 'rater')} on "
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
                         f"| {format_interval(v.overall_low, v.overall_high, '{:.2f}')} "
                         f"| {_fmt(v.mean_ingredients, '{:.2f}')} | {_fmt(v.mean_steps, '{:.2f}')} "
                         f"| {_fmt(v.judge_mean, '{:.2f}')} |")
    elif s.variants:
        lines += ["", f"| Variant | Wins | Losses | Ties | Both bad | n | Human win rate "
                      f"| {level} CI |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for v in s.variants:
            w = v.win
            lines.append(f"| {v.variant} | {w.wins} | {w.losses} | {w.ties} | {w.both_bad} "
                         f"| {w.n} | {_fmt(w.rate, '{:.1%}')} "
                         f"| {format_interval(w.low, w.high, '{:.1%}')} |")
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
    writer = csv_writer(out)
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


RENDERERS = {"md": render_markdown, "csv": render_csv, "json": render_json}


def render(report: Report, fmt: str) -> str:
    """The report in one of RENDERERS' formats (md, csv, json). Raises KeyError for another."""
    return RENDERERS[fmt](report)


def render_video(report: Report, fmt: str) -> str:
    """`ddft report-video`: the eval set's timestamp, frame-coverage and grounding reports,
    empty ones included (each says what to run), under the eval set they are about; md or
    json. Raises KeyError for another format."""
    from engine.evaluation.grounding import render_grounding_markdown
    from engine.evaluation.timestamps import render_coverage_markdown, render_timestamps_markdown

    renderers = {"timestamps": render_timestamps_markdown, "coverage": render_coverage_markdown,
                 "grounding": render_grounding_markdown}
    parts = {name: report.video[name] for name in renderers if name in report.video}
    if fmt == "json":
        return json.dumps({"selection": report.selection.to_dict(),
                           **{name: part.to_dict() for name, part in parts.items()}}, indent=2)
    if fmt != "md":
        raise KeyError(fmt)
    s = report.selection
    header = f"Eval set: {s.eval_set}" + (" (default)" if "eval_set" in s.defaults else "")
    return "\n\n".join([header] + [renderers[name](part) for name, part in parts.items()])
