"""The paper's Table 1 (Yes, No, Accuracy, Average Score per variant) from stored judgments."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

from db.queries import JudgedRow


@dataclass(frozen=True)
class Table1Row:
    variant: str
    yes: int
    no: int
    unparsable: int
    n: int  # judged generations, unparsable included
    accuracy: Optional[float]  # percent of yes among parsed verdicts
    average_score: Optional[float]  # mean of parsed scores


@dataclass
class Report:
    rows: list[Table1Row]
    judges: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)
    decoding: list[dict[str, Any]] = field(default_factory=list)
    eval_set: str = ""


def accuracy_percent(yes: int, no: int) -> Optional[float]:
    """Yes over yes + no, as a percentage; None when nothing was judged."""
    total = yes + no
    return 100.0 * yes / total if total else None


def table1(rows: Iterable[JudgedRow]) -> list[Table1Row]:
    """One Table 1 row per variant, in the order variants first appear."""
    grouped: dict[str, list[JudgedRow]] = {}
    for row in rows:
        grouped.setdefault(row.variant, []).append(row)
    result = []
    for variant, items in grouped.items():
        yes = sum(1 for r in items if r.verdict == "yes")
        no = sum(1 for r in items if r.verdict == "no")
        scores = [r.score for r in items if r.score is not None and r.verdict != "unparsable"]
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


def build_report(rows: list[JudgedRow], *, eval_set: str = "") -> Report:
    """Table 1 plus the provenance every report names: judges, protocols, prompt versions, decoding."""
    decoding: list[dict[str, Any]] = []
    for row in rows:
        if row.decoding not in decoding:
            decoding.append(row.decoding)
    return Report(
        rows=table1(rows),
        judges=sorted({r.judge for r in rows}),
        protocols=sorted({r.protocol for r in rows}),
        prompt_versions=sorted({r.prompt_version for r in rows}),
        decoding=decoding,
        eval_set=eval_set,
    )


def _fmt(value: Optional[float], pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def render_markdown(report: Report) -> str:
    lines = [
        "| Variant | Yes | No | Accuracy | Average Score | n | Unparsable |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.rows:
        lines.append(
            f"| {row.variant} | {row.yes} | {row.no} | {_fmt(row.accuracy, '{:.2f}%')} "
            f"| {_fmt(row.average_score, '{:.2f}')} | {row.n} | {row.unparsable} |"
        )
    lines.append("")
    if report.eval_set:
        lines.append(f"Eval set: {report.eval_set}")
    lines.append(f"Judge: {', '.join(report.judges) or '—'}")
    lines.append(f"Protocol: {', '.join(report.protocols) or '—'}")
    lines.append(f"Prompt version: {', '.join(report.prompt_versions) or '—'}")
    for params in report.decoding:
        lines.append(f"Decoding: {json.dumps(params, sort_keys=True)}")
    return "\n".join(lines)


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["variant", "yes", "no", "accuracy", "average_score", "n", "unparsable",
         "judge", "protocol", "prompt_version"]
    )
    for row in report.rows:
        writer.writerow(
            [row.variant, row.yes, row.no,
             "" if row.accuracy is None else f"{row.accuracy:.4f}",
             "" if row.average_score is None else f"{row.average_score:.4f}",
             row.n, row.unparsable, ";".join(report.judges), ";".join(report.protocols),
             ";".join(report.prompt_versions)]
        )
    return out.getvalue()


def render_json(report: Report) -> str:
    return json.dumps(
        {
            "eval_set": report.eval_set,
            "rows": [asdict(row) for row in report.rows],
            "judges": report.judges,
            "protocols": report.protocols,
            "prompt_versions": report.prompt_versions,
            "decoding": report.decoding,
        },
        indent=2,
    )
