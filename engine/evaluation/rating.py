"""Blind rating campaigns: making one from an eval set's generations, its progress, the rows
behind its agreement statistics, and the export of its ratings with the blinding key."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

from db.campaigns import (
    CampaignError,
    add_campaign,
    campaign_assignments,
    campaign_items,
    campaign_ratings,
    get_campaign,
    list_raters,
)
from db.models import CAMPAIGN_MODES, RATING_FIELDS, Campaign, Generation
from db.names import check_name
from db.queries import (
    generation_sources,
    get_dataset,
    get_dataset_by_id,
    get_variant,
    list_generations,
    list_samples,
    list_variants,
    scored_judgments,
)
from engine.evaluation.spreadsheet import csv_writer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from engine.evaluation.agreement import CampaignAgreement, HumanRating

EXPORT_FORMATS = ("csv", "json")
EXPORT_COLUMNS = ("campaign", "mode", "eval_set", "item", "position", "sample", "rater",
                  "variant", "other_variant", "generation", "other_generation", "swapped",
                  "ingredients", "steps", "overall", "choice", "preferred", "seconds",
                  "created_at")


@dataclass(frozen=True)
class CampaignCreated:
    name: str
    mode: str
    items: int
    samples: int  # samples with a generation from every chosen variant
    left_out: int  # included samples lacking a generation from some chosen variant
    seed: int

    @property
    def message(self) -> str:
        text = (f"campaign {self.name}: {self.items} {self.mode} items over {self.samples} "
                f"samples (seed {self.seed})")
        if self.left_out:
            text += (f"; {self.left_out} sample{'' if self.left_out == 1 else 's'} left out "
                     f"because a chosen variant has no recipe for them")
        return text


def _newest_recipes(session: Session, *, variant_id: int, dataset_id: int) -> dict[int, Generation]:
    """sample id → the variant's newest recipe generation of it."""
    newest: dict[int, Generation] = {}
    for generation in list_generations(session, variant_id=variant_id, dataset_id=dataset_id,
                                       task="recipe"):
        newest[generation.sample_id] = generation  # oldest first, so the last one wins
    return newest


def create_campaign(
    db_engine: Engine,
    *,
    name: str,
    eval_set: str,
    variants: Sequence[str],
    mode: str = "pairwise",
    raters_per_item: int = 1,
    seed: int | None = None,
    description: str = "",
) -> CampaignCreated:
    """Make a campaign over the included samples of `eval_set` and the newest recipe
    generations of `variants` (two or more): single — one item per (sample, variant); pairwise —
    one item per sample and unordered pair of variants. A sample lacking a recipe from any
    chosen variant is left out, and counted. `seed` (random when None) is stored and fixes
    every rater's order and sides.

    Raises CampaignError naming every problem at once (blank or taken name, unknown mode, eval
    set or variants, fewer than two variants, k < 1) or when nothing is left to rate; nothing is
    written then."""
    from db.store import session_scope

    names = list(dict.fromkeys(v.strip() for v in variants if v and v.strip()))
    with session_scope(db_engine) as session:
        problems = []
        named = (name or "").strip()
        bad_name = check_name("campaign", named) if named else "the campaign needs a name"
        if bad_name:
            problems.append(bad_name)
        elif get_campaign(session, name=named) is not None:
            problems.append(f"a campaign named {name.strip()!r} exists already")
        if mode not in CAMPAIGN_MODES:
            problems.append(f"mode must be one of {', '.join(CAMPAIGN_MODES)}, got {mode!r}")
        if raters_per_item < 1:
            problems.append(f"raters per item must be at least 1, got {raters_per_item}")
        dataset = get_dataset(session, name=eval_set)
        if dataset is None:
            problems.append(f"no eval set named {eval_set!r}")
        if len(names) < 2:
            given = [v.strip() for v in variants if v and v.strip()]
            if len(given) > len(names):
                problems.append(f"a campaign compares at least two different variants, got "
                                f"{', '.join(given)}")
            else:
                problems.append(f"a campaign compares at least two variants, got {len(names)}")
        found = {n: get_variant(session, name=n) for n in names}
        unknown = [n for n, v in found.items() if v is None]
        if unknown:
            known = ", ".join(v.name for v in list_variants(session)) or "none"
            problems.append(f"no variant named {', '.join(map(repr, unknown))} "
                            f"(variants: {known})")
        if problems:
            raise CampaignError("cannot make the campaign: " + "; ".join(problems))
        chosen = [found[n] for n in names]
        recipes = [_newest_recipes(session, variant_id=v.id, dataset_id=dataset.id)
                   for v in chosen]
        samples = [s.id for s in list_samples(session, dataset_id=dataset.id, included=True,
                                              limit=None)]
        complete = [s for s in samples if all(s in r for r in recipes)]
        if not complete:
            raise CampaignError(
                f"nothing to rate: no included sample of {eval_set} has a recipe from every one "
                f"of {', '.join(names)}; run `ddft generate` for each variant first")
        items: list[tuple[int, int, int | None]] = []
        for sample_id in complete:
            if mode == "single":
                items += [(sample_id, r[sample_id].id, None) for r in recipes]
            else:
                items += [(sample_id, recipes[i][sample_id].id, recipes[j][sample_id].id)
                          for i in range(len(recipes)) for j in range(i + 1, len(recipes))]
        chosen_seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
        campaign = add_campaign(session, name=name.strip(), mode=mode, dataset_id=dataset.id,
                                variant_ids=[v.id for v in chosen],
                                raters_per_item=raters_per_item, seed=chosen_seed, items=items,
                                description=description)
        return CampaignCreated(name=campaign.name, mode=mode, items=len(items),
                               samples=len(complete), left_out=len(samples) - len(complete),
                               seed=chosen_seed)


def require_campaign(session: Session, name: str) -> Campaign:
    """The campaign called `name`. Raises CampaignError naming the campaigns there are."""
    from db.campaigns import list_campaigns

    campaign = get_campaign(session, name=name)
    if campaign is None:
        known = ", ".join(c.name for c in list_campaigns(session)) or "none yet"
        raise CampaignError(f"no campaign named {name!r} (campaigns: {known})")
    return campaign


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class RaterProgress:
    rater: str
    rated: int
    skipped: int
    open: int  # shown, not yet rated


@dataclass(frozen=True)
class CampaignProgress:
    name: str
    mode: str
    eval_set: str
    variants: tuple[str, ...]
    raters_per_item: int
    seed: int
    items: int
    ratings: int
    complete: int  # items with at least k ratings
    raters: tuple[RaterProgress, ...]

    @property
    def wanted(self) -> int:
        """Ratings the campaign asks for: k per item."""
        return self.items * self.raters_per_item


def campaign_progress(session: Session, campaign: Campaign) -> CampaignProgress:
    """Items, ratings and per-rater counts of a campaign."""
    items = campaign_items(session, campaign_id=campaign.id)
    ratings = campaign_ratings(session, campaign_id=campaign.id)
    names = {r.id: r.name for r in list_raters(session)}
    per_item = Counter(r.item_id for r in ratings)
    counts: dict[int, Counter] = {}
    for a in campaign_assignments(session, campaign_id=campaign.id):
        counts.setdefault(a.rater_id, Counter())[a.state] += 1
    variants = {v.id: v.name for v in list_variants(session)}
    dataset = get_dataset_by_id(session, dataset_id=campaign.dataset_id)
    return CampaignProgress(
        name=campaign.name, mode=campaign.mode, eval_set=dataset.name if dataset else "",
        variants=tuple(variants.get(i, f"#{i}") for i in campaign.variant_ids),
        raters_per_item=campaign.raters_per_item, seed=campaign.seed, items=len(items),
        ratings=len(ratings),
        complete=sum(1 for i in items if per_item[i.id] >= campaign.raters_per_item),
        raters=tuple(RaterProgress(rater=names.get(rid, f"#{rid}"), rated=c["rated"],
                                   skipped=c["skipped"], open=c["open"])
                     for rid, c in sorted(counts.items(), key=lambda kv: names.get(kv[0], ""))),
    )


# ---------------------------------------------------------------- agreement


def _judge_scores(session: Session, generation_ids: set[int], *, judge: str | None,
                  protocol: str | None, prompt_version: str | None = None,
                  ) -> tuple[str, dict[int, float]]:
    """(judge setting label, generation id → score) for the most used judge, protocol and
    prompt version (or the ones asked for) among parsed, non-pairwise judgments of these
    generations, so that scores of two prompt versions are never pooled; the newest judgment
    of a generation wins."""
    judgments = scored_judgments(session, generation_ids=generation_ids, judge=judge,
                                 protocol=protocol, prompt_version=prompt_version)
    if not judgments:
        return "", {}
    settings = Counter((j.judge, j.protocol, j.prompt_version) for j in judgments)
    chosen = min(settings.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    scores = {j.generation_id: float(j.score) for j in judgments
              if (j.judge, j.protocol, j.prompt_version) == chosen}
    return f"{chosen[0]} ({chosen[1]}, {chosen[2]})", scores


def agreement_rows(session: Session, campaign: Campaign, *, judge: str | None = None,
                   protocol: str | None = None, prompt_version: str | None = None,
                   ) -> tuple[str, list[HumanRating]]:
    """(judge setting, one HumanRating per stored rating of the campaign, with its blinding key
    and the judge's scores of what was rated)."""
    from engine.evaluation.agreement import HumanRating

    items = {i.id: i for i in campaign_items(session, campaign_id=campaign.id)}
    ratings = campaign_ratings(session, campaign_id=campaign.id)
    generations = {i.generation_id for i in items.values()}
    generations |= {i.other_generation_id for i in items.values() if i.other_generation_id}
    variant_of, sample_of = _generation_keys(session, generations)
    label, scores = _judge_scores(session, generations, judge=judge, protocol=protocol,
                                  prompt_version=prompt_version)
    raters = {r.id: r.name for r in list_raters(session)}
    rows = []
    for r in ratings:
        item = items[r.item_id]
        rows.append(HumanRating(
            item_id=r.item_id, rater=raters.get(r.rater_id, f"#{r.rater_id}"),
            sample=sample_of[r.generation_id], variant=variant_of[r.generation_id],
            other_variant=variant_of.get(r.other_generation_id) if r.other_generation_id
            else None,
            scores=dict(r.scores), choice=r.choice, judge=scores.get(r.generation_id),
            other_judge=scores.get(r.other_generation_id) if r.other_generation_id else None,
            swapped=campaign.mode == "pairwise" and r.generation_id != item.generation_id,
        ))
    return label, rows


def _generation_keys(session: Session, ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    """(generation id → variant name, generation id → sample external id): the blinding key."""
    variant_of, sample_of = {}, {}
    for gid, (variant, sample) in generation_sources(session, generation_ids=ids).items():
        variant_of[gid], sample_of[gid] = variant, sample
    return variant_of, sample_of


def campaign_agreement(session: Session, campaign: Campaign, *, judge: str | None = None,
                       protocol: str | None = None, prompt_version: str | None = None,
                       limit: int = 20) -> CampaignAgreement:
    """`engine.evaluation.agreement.summarize_campaign` over the campaign's stored ratings."""
    from engine.evaluation.agreement import summarize_campaign

    from dataclasses import replace

    from db.campaigns import campaign_items

    label, rows = agreement_rows(session, campaign, judge=judge, protocol=protocol,
                                 prompt_version=prompt_version)
    summary = summarize_campaign(campaign.name, campaign.mode, rows, judge=label, limit=limit)
    return replace(summary, total_items=len(campaign_items(session, campaign_id=campaign.id)))


# ---------------------------------------------------------------- export


def export_rows(session: Session, campaign: Campaign) -> list[dict[str, Any]]:
    """One dict per rating (EXPORT_COLUMNS), with the blinding key: `variant` wrote the rated
    text (single) or the text shown on the left (pairwise), `other_variant` the one on the
    right; `swapped` says the item's second generation was shown on the left; `preferred` is
    the variant the choice names (or tie, both-bad)."""
    items = {i.id: i for i in campaign_items(session, campaign_id=campaign.id)}
    ratings = campaign_ratings(session, campaign_id=campaign.id)
    generations = {g for r in ratings for g in (r.generation_id, r.other_generation_id) if g}
    variant_of, sample_of = _generation_keys(session, generations)
    raters = {r.id: r.name for r in list_raters(session)}
    dataset = get_dataset_by_id(session, dataset_id=campaign.dataset_id)
    rows = []
    for r in ratings:
        item = items[r.item_id]
        left = variant_of.get(r.generation_id, "")
        right = variant_of.get(r.other_generation_id, "") if r.other_generation_id else ""
        preferred = {"left": left, "right": right}.get(r.choice, r.choice)
        rows.append({
            "campaign": campaign.name, "mode": campaign.mode,
            "eval_set": dataset.name if dataset else "", "item": r.item_id,
            "position": item.position, "sample": sample_of.get(r.generation_id, ""),
            "rater": raters.get(r.rater_id, f"#{r.rater_id}"), "variant": left,
            "other_variant": right, "generation": r.generation_id,
            "other_generation": r.other_generation_id,
            "swapped": campaign.mode == "pairwise" and r.generation_id != item.generation_id,
            **{name: r.scores.get(name) for name in RATING_FIELDS},
            "choice": r.choice or None, "preferred": preferred or None, "seconds": r.seconds,
            "created_at": _utc_iso(r.created_at),
        })
    return rows


def _utc_iso(moment) -> str:
    # SQLite returns stored times without their zone; ddft writes every time in UTC.
    from datetime import timezone

    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def render_export(session: Session, campaign: Campaign, fmt: str) -> str:
    """The campaign's ratings with the blinding key as CSV (one row per rating) or JSON (the
    campaign's settings and the rows). Raises CampaignError for another format."""
    if fmt not in EXPORT_FORMATS:
        raise CampaignError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, "
                            f"got {fmt!r}")
    rows = export_rows(session, campaign)
    if fmt == "json":
        progress = campaign_progress(session, campaign)
        header = {"name": campaign.name, "mode": campaign.mode, "eval_set": progress.eval_set,
                  "variants": list(progress.variants),
                  "raters_per_item": campaign.raters_per_item, "seed": campaign.seed,
                  "items": progress.items, "created_at": _utc_iso(campaign.created_at)}
        return json.dumps({"campaign": header, "ratings": rows}, indent=2)
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(k) is None else row[k] for k in EXPORT_COLUMNS])
    return out.getvalue()


def agreement_dict(agreement: CampaignAgreement) -> dict[str, Any]:
    """A campaign's agreement summary as plain JSON-ready values."""
    return asdict(agreement)
