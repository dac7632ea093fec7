"""The paper's Table 1 for one eval set and one judge setting, with its intervals, paired
comparisons against a baseline and score histograms, and the choices around it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
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
    rows: tuple[Any, ...]  # engine.report.Table1Row
    stats: tuple[Any, ...]  # engine.report.VariantStats, one per row, same order
    comparisons: tuple[Any, ...]  # engine.report.Comparison, each variant against `baseline`
    baseline: str | None  # the variant the comparisons are against
    histograms: tuple[tuple[str, tuple[str, ...]], ...]  # variant → engine.report.histogram_bars
    n_samples: int  # distinct eval samples behind the table
    decodings: int  # distinct decoding settings mixed in the table

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
    never share a row, with `engine.report.build_report`'s intervals and every other variant
    compared with `baseline`. A choice that does not exist falls back to the most used one;
    the baseline to the first variant."""
    from db.queries import judged_rows, list_datasets
    from db.store import session_scope
    from engine.report import build_report, histogram_bars

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
    )
