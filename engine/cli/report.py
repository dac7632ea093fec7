"""`ddft report`: the paper's Table 1 with its intervals, the paired tests, human agreement and
where in the video, in markdown, CSV or JSON, and with `--samples` the rows behind it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli.console import (
    WorkspaceOption,
    console,
    err_console,
    fail,
    friendly,
    open_workspace,
    write_output,
)
from engine.evaluation.words import plural


class ReportFormat(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"


@friendly
def report(
    eval_set: Annotated[Optional[str], typer.Option(
        help="Eval dataset (default: the one with the most judged recipes).")] = None,
    judge_name: Annotated[Optional[str], typer.Option(
        "--judge", help="Judge (model name, or offline; default: the most used on the eval "
                        "set).")] = None,
    protocol: Annotated[Optional[str], typer.Option(
        help="Protocol (default: the judge's most used).")] = None,
    prompt_version: Annotated[Optional[str], typer.Option(
        "--prompt-version", help="Judge prompt version (default: the most used with that judge "
                                 "and protocol).")] = None,
    baseline: Annotated[Optional[str], typer.Option(
        help="Compare every other variant with this one (default: the first).")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.md,
    campaign: Annotated[Optional[str], typer.Option(
        help="Human-rating agreement of this campaign only (default: every campaign on the "
             "eval set).")] = None,
    samples: Annotated[Optional[Path], typer.Option(
        "--samples", metavar="FILE.jsonl", show_default=False,
        help="Also write the rows behind Table 1 to this file, one JSON line per eval sample "
             "and variant: reference, generation, the judgment counted and every other with "
             "its raw reply, offline metrics and grounding; then each failed sample.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """The paper's Table 1 per variant (Yes, No, Accuracy, Average Score) with 95% intervals
    under one judge, protocol and prompt version, paired tests against a baseline, per-stage
    scores, offline metrics and a score histogram; for blind rating campaigns on the eval set,
    how far people agree with the judge. Every output names the choices it used and which
    were defaults.

    In CSV every share (accuracy, rates, hit rates) is a fraction from 0 to 1; markdown and
    JSON give accuracy in percent. --samples writes the rows behind Table 1, as lmms-eval's
    --log_samples does.
    """
    from db.store import session_scope
    from engine.evaluation.report import (
        ReportError,
        ReportSelection,
        build_report,
        render,
        render_sample_log,
        sample_log,
    )

    _, db_engine = open_workspace(workspace)
    selection = ReportSelection(eval_set=eval_set, judge=judge_name, protocol=protocol,
                                prompt_version=prompt_version, baseline=baseline,
                                campaign=campaign)
    try:
        with session_scope(db_engine) as session:
            built = build_report(session, selection)
            # In the same transaction as the tables, from their resolved selection: the log
            # holds exactly the rows behind the numbers.
            records = sample_log(session, built.selection) if samples is not None else None
    except ReportError as exc:
        fail(str(exc))
        return
    if not built.rows and not built.agreement:
        fail(f"nothing judged on {built.eval_set} yet: run `ddft generate` and `ddft judge` "
             "first")
    if records is not None:
        write_output(samples, render_sample_log(records))
    console.print(render(built, fmt.value), markup=False, highlight=False, soft_wrap=True)
    if records is not None:
        judged = sum(1 for r in records if r["row"] == "judged")
        failed = len(records) - judged
        # On stderr, so a report piped to a file stays the report alone.
        err_console.print(f"wrote {plural(judged, 'judged sample')}"
                          + (f" and {plural(failed, 'failed sample')}" if failed else "")
                          + f" to {samples}", markup=False, highlight=False, soft_wrap=True)
