"""The comparison report of a modality ablation grid: every cell and the base as rows of Table 1
with their intervals, each cell's paired tests against the base and against the all-modalities
cell, Holm-corrected across the grid, and each cell's training cost; built by one function
(`build_grid_report`) on engine.evaluation.report's Table 1, intervals and paired tests, and
rendered as markdown, CSV or JSON."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from db.errors import UserError
from engine.evaluation.report import (
    Comparison,
    Table1Row,
    VariantStats,
    compare_variants,
    format_interval,
    report_from_rows,
)
from engine.evaluation.spreadsheet import csv_writer
from engine.evaluation.stats import holm

if TYPE_CHECKING:
    from sqlmodel import Session

MODALITY_WORDS = {"image": "image", "video": "video", "text": "questions"}


class GridReportError(UserError, ValueError):
    """A grid report was asked for a grid or judge setting the store does not hold."""


@dataclass(frozen=True)
class CellCost:
    """What a cell's training run cost: optimizer steps, training samples, device-hours
    (wall time from its first start to its end, times the GPUs it held)."""

    steps: Optional[int]
    samples: Optional[int]
    gpus: int
    gpu_hours: Optional[float]


@dataclass(frozen=True)
class GridTest:
    """A cell's paired comparison against a reference (the base or the all-modalities cell),
    with its p-values Holm-adjusted across the grid."""

    against: str  # base | all
    comparison: Comparison
    mcnemar_p_holm: Optional[float]
    score_p_holm: Optional[float]


@dataclass(frozen=True)
class GridRow:
    """One row of the grid's table: a cell (or the base), its Table 1 row and intervals (None
    until judged), its tests and its cost."""

    variant: str
    is_base: bool
    modalities: tuple[str, ...]
    settings: dict[str, str]
    state: str
    table: Optional[Table1Row]
    stats: Optional[VariantStats]
    tests: tuple[GridTest, ...] = ()
    cost: Optional[CellCost] = None

    @property
    def label(self) -> str:
        if self.is_base:
            return "base (untuned)"
        words = " + ".join(MODALITY_WORDS.get(m, m) for m in self.modalities)
        return words + "".join(f" · {k}={v}" for k, v in self.settings.items())


@dataclass
class GridReport:
    """A grid's comparison report under one judge setting."""

    grid: str
    eval_set: str
    judge: Optional[str]
    protocol: Optional[str]
    prompt_version: Optional[str]
    rows: list[GridRow]
    family: int = 0  # tests in each Holm family
    n_boot: int = 10_000
    seed: int = 0
    confidence: float = 0.95
    judge_settings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def done(self) -> bool:
        return all(row.state == "done" for row in self.rows)


def _cost(job: Any) -> Optional[CellCost]:
    if job is None:
        return None
    result = job.result or {}
    hours = None
    if job.started_at is not None and job.finished_at is not None and job.status == "succeeded":
        hours = (job.finished_at - job.started_at).total_seconds() / 3600 * max(1, job.devices)
    steps = result.get("steps")
    samples = result.get("n_samples")
    return CellCost(steps=steps if isinstance(steps, int) else None,
                    samples=samples if isinstance(samples, int) else None,
                    gpus=max(1, job.devices), gpu_hours=hours)


def _setting(rows: list[Any], judge: Optional[str], protocol: Optional[str],
             prompt_version: Optional[str]) -> tuple[Optional[tuple[str, str, str]], list[str]]:
    """The judge setting a grid's table is under: the asked fields, the rest the most used
    among the rows (ties by name); with every setting present, as "judge · protocol · version"."""
    counts = Counter((r.judge, r.protocol, r.prompt_version) for r in rows)
    there = sorted(" · ".join(s) for s in counts)
    fitting = {s: n for s, n in counts.items()
               if (judge is None or s[0] == judge) and (protocol is None or s[1] == protocol)
               and (prompt_version is None or s[2] == prompt_version)}
    if not fitting:
        if judge is None and protocol is None and prompt_version is None:
            return None, there
        asked = " · ".join(x or "any" for x in (judge, protocol, prompt_version))
        raise GridReportError(f"no judgments of this grid by {asked}; there: "
                              f"{'; '.join(there) or 'none'}")
    return min(fitting.items(), key=lambda item: (-item[1], item[0]))[0], there


def build_grid_report(session: Session, name: str, *, states: Optional[dict[str, str]] = None,
                      judge: Optional[str] = None, protocol: Optional[str] = None,
                      prompt_version: Optional[str] = None, n_boot: int = 10_000,
                      seed: int = 0, confidence: float = 0.95) -> GridReport:
    """The report of grid `name`: Table 1 over its cells' and its base's judged recipes under
    one judge setting (default: the most used among them, ties by name), each cell against the
    base and against the all-modalities cell of the same settings (McNemar's test and the
    paired bootstrap of engine.evaluation.report.compare_variants), Holm-adjusted across the
    grid (one family per test), and each cell's training cost. `states` gives each variant's
    cell state (engine.jobs.grid.CellStatus.state) for the rows. Cells not judged yet are rows
    without numbers. Raises GridReportError for an unknown grid or judge setting."""
    from db import queries

    grid = queries.get_grid(session, name=name)
    if grid is None:
        raise GridReportError(f"no grid named {name!r}; `ddft ablate list` shows the grids")
    cells = queries.grid_cells(session, grid_id=grid.id)
    variants = [c.variant for c in cells]
    dataset = queries.get_dataset(session, name=grid.eval_set)
    rows = [] if dataset is None else [
        r for r in queries.judged_rows(session, dataset_id=dataset.id) if r.variant in variants]
    setting, there = _setting(rows, judge, protocol, prompt_version)
    chosen = [r for r in rows if (r.judge, r.protocol, r.prompt_version) == setting]
    failed = (queries.generation_failure_counts(session, dataset_id=dataset.id, task="recipe")
              if dataset is not None else {})
    # Table 1 in the grid's order, the base first: rows sorted by cell position.
    order = {v: i for i, v in enumerate(variants)}
    chosen.sort(key=lambda r: (order[r.variant], r.sample_id))
    options = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    judged = {v for v in (r.variant for r in chosen)}
    base = grid.base_variant
    table = report_from_rows(chosen, eval_set=grid.eval_set,
                             baseline=base if base in judged else None,
                             failed={v: n for v, n in failed.items() if v in order},
                             **options) if chosen else None
    by_table = {r.variant: r for r in table.rows} if table else {}
    by_stats = {s.variant: s for s in table.stats} if table else {}
    everything = tuple(sorted({m for c in cells for m in c.modalities}))
    reference_of = {}
    for cell in cells:
        if cell.is_base:
            continue
        all_cell = next((c for c in cells if not c.is_base and
                         tuple(sorted(c.modalities)) == everything
                         and c.settings == cell.settings), None)
        if all_cell is not None and all_cell.variant != cell.variant:
            reference_of[cell.variant] = all_cell.variant
    tests: list[tuple[str, str, Comparison]] = []
    for cell in cells:
        if cell.is_base or cell.variant not in judged:
            continue
        if base in judged:
            tests.append((cell.variant, "base", compare_variants(chosen, cell.variant, base,
                                                                 **options)))
        reference = reference_of.get(cell.variant)
        if reference in judged:
            tests.append((cell.variant, "all", compare_variants(chosen, cell.variant, reference,
                                                                **options)))
    mcnemar_holm = holm([c.mcnemar_p for _, _, c in tests])
    score_holm = holm([c.score_p for _, _, c in tests])
    tests_of: dict[str, list[GridTest]] = {}
    for (variant, against, comparison), mh, sh in zip(tests, mcnemar_holm, score_holm):
        tests_of.setdefault(variant, []).append(GridTest(against=against, comparison=comparison,
                                                         mcnemar_p_holm=mh, score_p_holm=sh))
    jobs = queries.jobs_by_id(session, job_ids=[c.train_job_id for c in cells
                                                if c.train_job_id is not None])
    out_rows = [GridRow(variant=c.variant, is_base=c.is_base, modalities=tuple(c.modalities),
                        settings=dict(c.settings), state=(states or {}).get(c.variant, "—"),
                        table=by_table.get(c.variant), stats=by_stats.get(c.variant),
                        tests=tuple(tests_of.get(c.variant, ())),
                        cost=None if c.is_base else _cost(jobs.get(c.train_job_id)))
                for c in cells]
    return GridReport(grid=grid.name, eval_set=grid.eval_set,
                      judge=setting[0] if setting else None,
                      protocol=setting[1] if setting else None,
                      prompt_version=setting[2] if setting else None, rows=out_rows,
                      family=len(tests), judge_settings=tuple(there), **options)


# ---------------------------------------------------------------- rendering


def _num(value: Optional[float], pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _p(value: Optional[float]) -> str:
    if value is None:
        return "—"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _test(row: GridRow, against: str) -> Optional[GridTest]:
    return next((t for t in row.tests if t.against == against), None)


def _test_cell(test: Optional[GridTest]) -> str:
    if test is None:
        return "—"
    c = test.comparison
    return (f"Δacc {_num(c.accuracy_diff, '{:+.1f}')} pp, p={_p(test.mcnemar_p_holm)}; "
            f"Δscore {_num(c.score_diff, '{:+.2f}')}, p={_p(test.score_p_holm)}")


def table_headers(report: GridReport) -> tuple[str, ...]:
    """The grid table's column names, as the markdown and the Grid screen show them."""
    level = f"{report.confidence * 100:g}%"
    return ("Cell", "Variant", "State", "Yes", "No", "Accuracy", f"Accuracy {level} CI",
            "Average Score", f"Score {level} CI", "n", "Failed", "vs base (Holm)",
            "vs all (Holm)", "Steps", "Samples", "GPU-hours")


def table_cells(row: GridRow) -> tuple[str, ...]:
    """One row of the grid table, a string per column of `table_headers`."""
    t, s, cost = row.table, row.stats, row.cost
    return (
        row.label, row.variant, row.state,
        str(t.yes) if t else "—", str(t.no) if t else "—",
        _num(t.accuracy if t else None, "{:.2f}%"),
        format_interval(s.accuracy_low, s.accuracy_high, "{:.2f}%") if s else "—",
        _num(t.average_score if t else None, "{:.2f}"),
        format_interval(s.score_low, s.score_high, "{:.2f}") if s else "—",
        str(t.n) if t else "—", str(t.failed) if t else "—",
        _test_cell(_test(row, "base")), _test_cell(_test(row, "all")),
        _num(cost.steps if cost else None, "{}"),
        _num(cost.samples if cost else None, "{}"),
        _num(cost.gpu_hours if cost else None, "{:.3f}"),
    )


def table_heading(report: GridReport) -> str:
    return (f"Grid {report.grid} on {report.eval_set} · judge {report.judge or '—'} · "
            f"protocol {report.protocol or '—'} · prompt version {report.prompt_version or '—'}")


def table_notes(report: GridReport) -> list[str]:
    """How the table was computed, and what is missing from it, a paragraph a line."""
    notes = [
        f"Paired tests on the eval samples both variants were judged on: McNemar's exact test "
        f"on yes/no (Δacc in percentage points) and a paired bootstrap of the score resampling "
        f"recipes ({report.n_boot} resamples, seed {report.seed}). p-values are Holm-adjusted "
        f"across the grid's {report.family} comparisons (each cell against the base and "
        f"against the all-modalities cell of the same settings), one family per test.",
        "GPU-hours: wall time of each training run from its first start to its end, times the "
        "GPUs it held (on a CPU, device-hours); Samples: training samples of its datasets.",
    ]
    if len(report.judge_settings) > 1:
        notes.append("Other judge settings in this grid (`--judge`, `--protocol`, "
                     "`--prompt-version`): " + "; ".join(report.judge_settings))
    if not report.done:
        notes.append("The grid is not finished: rows without numbers are still training, "
                     "generating or being judged (`ddft ablate status " + report.grid + "`).")
    return notes


def render_markdown(report: GridReport) -> str:
    """The grid's table as markdown, with the lines saying how it was computed."""
    headers = table_headers(report)
    aligned = {"Cell", "Variant", "State", "vs base (Holm)", "vs all (Holm)"}
    lines = [f"## {table_heading(report)}", "",
             "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if h in aligned else "---:" for h in headers) + "|"]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in report.rows]
    return "\n".join(lines + [""] + table_notes(report)) + "\n"


CSV_COLUMNS = ["grid", "cell", "variant", "is_base", "modalities", "settings", "state", "yes",
               "no", "accuracy_percent", "accuracy_ci_low_percent", "accuracy_ci_high_percent",
               "average_score", "score_ci_low", "score_ci_high", "n", "unparsable", "failed",
               "vs_base_accuracy_diff_pp", "vs_base_mcnemar_p", "vs_base_mcnemar_p_holm",
               "vs_base_score_diff", "vs_base_score_p", "vs_base_score_p_holm",
               "vs_all_variant", "vs_all_accuracy_diff_pp", "vs_all_mcnemar_p",
               "vs_all_mcnemar_p_holm", "vs_all_score_diff", "vs_all_score_p",
               "vs_all_score_p_holm", "steps", "samples", "gpus", "gpu_hours", "judge",
               "protocol", "prompt_version"]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def render_csv(report: GridReport) -> str:
    """One CSV row per cell (the base first); percentages are percent, p-values as computed
    and Holm-adjusted, empty cells where there is nothing yet."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        t, s, cost = row.table, row.stats, row.cost
        base, every = _test(row, "base"), _test(row, "all")
        cells: list[Any] = [report.grid, row.label, row.variant, row.is_base,
                            "+".join(row.modalities),
                            ";".join(f"{k}={v}" for k, v in row.settings.items()), row.state,
                            t and t.yes, t and t.no, t and t.accuracy,
                            s and s.accuracy_low, s and s.accuracy_high,
                            t and t.average_score, s and s.score_low, s and s.score_high,
                            t and t.n, t and t.unparsable, t and t.failed]
        for test in (base, every):
            c = test.comparison if test else None
            if test is every:
                cells.append(c.baseline if c else None)
            cells += [c and c.accuracy_diff, c and c.mcnemar_p, test and test.mcnemar_p_holm,
                      c and c.score_diff, c and c.score_p, test and test.score_p_holm]
        cells += [cost and cost.steps, cost and cost.samples, cost and cost.gpus,
                  cost and cost.gpu_hours, report.judge, report.protocol,
                  report.prompt_version]
        writer.writerow([_cell(v) for v in cells])
    return out.getvalue()


def report_json(report: GridReport) -> dict[str, Any]:
    """The report as plain data (the keys are stable)."""
    return {
        "grid": report.grid, "eval_set": report.eval_set, "judge": report.judge,
        "protocol": report.protocol, "prompt_version": report.prompt_version,
        "done": report.done, "holm_family": report.family, "n_boot": report.n_boot,
        "seed": report.seed, "confidence": report.confidence,
        "judge_settings": list(report.judge_settings),
        "rows": [{"label": row.label, "variant": row.variant, "is_base": row.is_base,
                  "modalities": list(row.modalities), "settings": row.settings,
                  "state": row.state,
                  "table": asdict(row.table) if row.table else None,
                  "stats": asdict(row.stats) if row.stats else None,
                  "tests": [{"against": t.against, **asdict(t.comparison),
                             "mcnemar_p_holm": t.mcnemar_p_holm,
                             "score_p_holm": t.score_p_holm} for t in row.tests],
                  "cost": asdict(row.cost) if row.cost else None}
                 for row in report.rows],
    }


def render(report: GridReport, fmt: str) -> str:
    """The report as md, csv or json. Raises ValueError for another format."""
    if fmt == "md":
        return render_markdown(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "json":
        return json.dumps(report_json(report), indent=2, sort_keys=True) + "\n"
    raise ValueError(f"format: expected md, csv or json, found {fmt!r}")
