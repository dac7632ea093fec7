"""`ddft campaign` (make, list, show and export blind rating campaigns) and `ddft rate`, which
opens the workbench on the rating screen for one rater."""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from engine.cli.console import (
    WorkspaceOption,
    checked_name,
    console,
    fail,
    friendly,
    open_workspace,
    print_json,
    print_output,
    print_table,
    write_output,
)
from engine.evaluation.words import plural

app = typer.Typer(help="Blind human rating campaigns: make, list, show, export.",
                  no_args_is_help=True)


class Mode(str, Enum):
    single = "single"
    pairwise = "pairwise"


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


@app.command("create")
@friendly
def create(
    name: Annotated[str, typer.Argument(help="Name of the new campaign.",
                                        callback=checked_name("campaign"))],
    variant: Annotated[list[str], typer.Option("--variant", "-v", help="A variant to rate "
                                               "(give two or more).")],
    eval_set: Annotated[str, typer.Option(help="Eval dataset.")] = "kitchen-eval",
    mode: Annotated[Mode, typer.Option(help="single: rate one generation 1–5 against the "
                                       "reference; pairwise: which of two is closer.")]
    = Mode.pairwise,
    raters_per_item: Annotated[int, typer.Option("--raters-per-item", "-k", min=1,
                                                 help="How many raters each item is for.")] = 1,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Seed of every rater's order and "
                                                "sides (default: random, stored).")] = None,
    description: Annotated[str, typer.Option(help="A note for the team.")] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Make a blind rating campaign over the newest recipes of two or more variants."""
    from db.campaigns import CampaignError
    from engine.evaluation.rating import create_campaign

    _, db_engine = open_workspace(workspace)
    try:
        created = create_campaign(db_engine, name=name, eval_set=eval_set, variants=variant,
                                  mode=mode.value, raters_per_item=raters_per_item, seed=seed,
                                  description=description)
    except CampaignError as exc:
        fail(str(exc))
        return
    console.print(created.message, markup=False, highlight=False)
    command = shlex.join(["ddft", "rate", "--rater", "NAME", "--campaign", created.name])
    console.print(f"raters start with `{command}`", markup=False, highlight=False)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of "
                                          "a table.")]


def _progress_json(p: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(p), "wanted": p.wanted}


@app.command("list")
@friendly
def list_(json_out: JsonOption = False, workspace: WorkspaceOption = None) -> None:
    """Every campaign with its mode, eval set, variants and progress."""
    from db.campaigns import list_campaigns
    from db.store import session_scope
    from engine.evaluation.rating import campaign_progress

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        progress = [campaign_progress(session, c) for c in list_campaigns(session)]
    if json_out:
        print_json([_progress_json(p) for p in progress])
        return
    if not progress:
        console.print("no campaigns yet: `ddft campaign create NAME --variant A --variant B`")
        return
    table = Table("name", "mode", "eval set", "variants", "k", "items", "ratings", "complete")
    for p in progress:
        table.add_row(Text(p.name), p.mode, Text(p.eval_set), Text(", ".join(p.variants)),
                      str(p.raters_per_item),
                      str(p.items), f"{p.ratings} of {p.wanted}", f"{p.complete} of {p.items}")
    print_table(table)


@app.command("show")
@friendly
def show(name: str, json_out: JsonOption = False, workspace: WorkspaceOption = None) -> None:
    """A campaign's settings and each rater's progress."""
    from db.campaigns import CampaignError
    from db.store import session_scope
    from engine.evaluation.rating import campaign_progress, require_campaign

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        try:
            progress = campaign_progress(session, require_campaign(session, name))
        except CampaignError as exc:
            fail(str(exc))
            return
    p = progress
    if json_out:
        print_json(_progress_json(p))
        return
    console.print(f"campaign {p.name}: {p.mode}, eval set {p.eval_set}, variants "
                  f"{', '.join(p.variants)}, {plural(p.raters_per_item, 'rater')} per item, "
                  f"seed {p.seed}", markup=False, highlight=False)
    console.print(f"{p.ratings} of {plural(p.wanted, 'rating')}; {p.complete} of "
                  f"{plural(p.items, 'item')} rated by {plural(p.raters_per_item, 'rater')}",
                  markup=False, highlight=False)
    if not p.raters:
        command = shlex.join(["ddft", "rate", "--rater", "NAME", "--campaign", p.name])
        console.print(f"no rater yet: `{command}`", markup=False, highlight=False)
        return
    table = Table("rater", "rated", "skipped", "open")
    for r in p.raters:
        table.add_row(Text(r.rater), str(r.rated), str(r.skipped), str(r.open))
    print_table(table)


@app.command("export")
@friendly
def export(
    name: str,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or json.")] = ExportFormat.csv,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (default: "
                                                "print).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Every rating of a campaign with the blinding key: which variant wrote each side."""
    from db.campaigns import CampaignError
    from db.store import session_scope
    from engine.evaluation.rating import render_export, require_campaign

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        try:
            text = render_export(session, require_campaign(session, name), fmt.value)
        except CampaignError as exc:
            fail(str(exc))
            return
    if not text.endswith("\n"):
        text += "\n"
    if out is None:
        print_output(text)
        return
    write_output(out, text)
    console.print(f"wrote {out}", markup=False, highlight=False)


def choose_campaign(session, *, rater: str, campaign: str | None) -> str:
    """The campaign `ddft rate` opens: the one named (it must exist), else the only one with
    work left for this rater. Raises CampaignError with the campaigns to choose from."""
    from db.campaigns import CampaignError, get_rater, list_campaigns, open_campaigns_for
    from engine.evaluation.rating import require_campaign

    if campaign is not None:
        return require_campaign(session, campaign).name
    known = list_campaigns(session)
    if not known:
        raise CampaignError("no campaigns yet: make one with `ddft campaign create NAME "
                            "--variant A --variant B`")
    existing = get_rater(session, name=rater)
    candidates = open_campaigns_for(session, rater_id=existing.id if existing else None)
    if len(candidates) == 1:
        return candidates[0].name
    if not candidates:
        raise CampaignError(f"no campaign has work left for {rater} (campaigns: "
                            f"{', '.join(c.name for c in known)})")
    raise CampaignError(f"{len(candidates)} campaigns have work for {rater}: "
                        f"{', '.join(c.name for c in candidates)}; choose one with --campaign")


@friendly
def rate(
    rater: Annotated[str, typer.Option(help="Your name as a rater (the same every time, so "
                                       "you resume where you stopped).")],
    campaign: Annotated[Optional[str], typer.Option(help="Campaign to rate (default: the only "
                                                    "one with work left for you).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Rate blind: open the workbench on the rating screen, keyboard only. Every rating is
    stored the moment it is given; run it again to resume."""
    from db.campaigns import CampaignError, validate_rater_name
    from db.store import session_scope

    path, db_engine = open_workspace(workspace)
    try:
        name = validate_rater_name(rater)
        with session_scope(db_engine) as session:
            chosen = choose_campaign(session, rater=name, campaign=campaign)
    except CampaignError as exc:
        fail(str(exc))
        return
    db_engine.dispose()
    open_rating(path, rater=name, campaign=chosen)


def open_rating(path: Path, *, rater: str, campaign: str) -> None:
    """Open the workbench on the rating screen."""
    from engine.cli.tui import open_workbench

    code = open_workbench(path, rater=rater, campaign=campaign)
    if code:
        raise typer.Exit(code)


def report_agreements(session, *, dataset_id: int, eval_set: str, campaign: str | None,
                      judge: str | None, protocol: str | None) -> list[Any]:
    """Agreement summaries (engine.evaluation.agreement.CampaignAgreement) for `ddft report`: the named
    campaign, else every campaign on the eval set. Raises CampaignError for an unknown campaign
    or one on another eval set."""
    from db.campaigns import CampaignError, list_campaigns
    from engine.evaluation.rating import campaign_agreement, require_campaign

    if campaign is not None:
        chosen = [require_campaign(session, campaign)]
        if chosen[0].dataset_id != dataset_id:
            raise CampaignError(f"campaign {campaign!r} rates another eval set, not {eval_set}")
    else:
        chosen = list_campaigns(session, dataset_id=dataset_id)
    return [campaign_agreement(session, c, judge=judge, protocol=protocol) for c in chosen]


def print_agreement_only(agreements: list[Any], *, eval_set: str, fmt: str, out=None) -> None:
    """The human-rating sections of `ddft report` when nothing on the eval set is judged."""
    import json
    from dataclasses import asdict

    from engine.evaluation.report import agreement_markdown, render_agreement_csv

    if fmt == "json":
        text = json.dumps({"eval_set": eval_set, "agreement": [asdict(a) for a in agreements]},
                          indent=2)
    elif fmt == "csv":
        text = render_agreement_csv(agreements)
    else:
        lines = [f"Nothing judged on {eval_set} yet (`ddft judge`); human ratings only.", ""]
        for summary in agreements:
            lines += agreement_markdown(summary) + [""]
        lines.append(f"Eval set: {eval_set}")
        text = "\n".join(lines)
    (out or console).print(text, markup=False, highlight=False, soft_wrap=True)
