"""Blind rating campaigns in the store: raters, claiming, saving, skipping and undoing ratings.

What a rater is shown (`RatingItem`) carries no variant, run or model identity; which variant
wrote which text (the blinding key) is read only by reports and exports.

Transactions. `next_item`, `save_rating`, `skip_item`, `undo_last` and `get_or_create_rater`
commit the session they are given before returning: a rating is stored the moment it is given,
and a claim holds the store's write lock no longer than the claim itself. Pass them a session
with nothing else pending (a short `session_scope` per call, as the rating screen does).

Many raters at once. Several OS processes may rate into one store. On SQLite each of these
writers opens its transaction with `BEGIN IMMEDIATE`, so reading the claim counts and writing the
claim happen under one write lock (pysqlite otherwise begins a transaction only at the first
write, after the counts were read). On other databases a claim locks only the item it takes
(`SELECT ... FOR NO KEY UPDATE` on the item's row) and counts that item's holders afresh under
the lock, so claims of different items run side by side and no save waits for a claim. The
unique (item, rater) constraints on assignments and ratings are the last guard: no item reaches
one rater twice, no rating is stored twice.

Claims. An item is meant for `Campaign.raters_per_item` (k) raters. A rated assignment always
counts toward k; an open (shown, not yet rated) assignment counts for `CLAIM_TIMEOUT` after it
was last shown, so a rater who vanished blocks an item for at most that long (when they come
back they still get their open item first, and the item may then end with more than k ratings);
a skipped assignment never counts, so a skip hands the item on to someone else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Optional, Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.errors import UserError
from db.models import (
    CAMPAIGN_MODES,
    PAIRWISE_CHOICES,
    RATING_FIELDS,
    Assignment,
    Campaign,
    CampaignItem,
    Generation,
    Rater,
    Rating,
    Sample,
    utcnow,
)
from db.names import check_name
from db.store import begin_write

# How long a shown but unrated item stays reserved for the rater it was shown to.
CLAIM_TIMEOUT = timedelta(minutes=30)
SCORE_RANGE = (1, 5)


class CampaignError(UserError, ValueError):
    """A rating campaign was asked for something it cannot do (bad input, unknown ids, a
    second rating of one assignment)."""


@dataclass(frozen=True)
class RatingItem:
    """What the rating screen shows for one assignment; no variant, run or model identity."""

    assignment_id: int
    item_id: int
    campaign: str  # campaign name
    mode: str  # "single" | "pairwise"
    number: int  # 1-based: this is item `number` of `total` for this rater
    total: int  # N for this rater (see `rater_progress`)
    sample_external_id: str
    prompt: str  # the sample's question
    reference: str  # the sample's reference recipe (Sample.answer)
    texts: tuple[str, ...]  # single: (text,), pairwise: (left text, right text) as shown


# ---------------------------------------------------------------- locking


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; ddft writes them all in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _begin_write(session: Session, campaign_id: int | None = None) -> None:
    """Take the store's write lock before reading what a write depends on (see the module doc);
    while other raters or a job hold it, wait and retry (db.store.begin_write). Raises
    db.store.StoreBusy when the store stayed locked past the write budget."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        begin_write(session)
        return
    # Other databases lock per item, not per campaign (`_lock_item`): a lock on the campaign's
    # row also blocked every rating saved meanwhile (its foreign key check waits on that row).


def _lock_item(session: Session, item_id: int) -> None:
    """On databases other than SQLite (where `_begin_write` holds the whole store), lock one
    campaign item's row until commit, so claims of that item take turns. NO KEY UPDATE: a
    rating saved for the item meanwhile (whose foreign key check shares the row) never waits."""
    if session.connection().dialect.name == "sqlite":
        return
    # key_share=True without read is PostgreSQL's FOR NO KEY UPDATE.
    session.exec(select(CampaignItem.id).where(CampaignItem.id == item_id)
                 .with_for_update(key_share=True)).first()


def _holders(session: Session, item_id: int, rater_id: int) -> tuple[int, Optional[int]]:
    """Read afresh (not from the session's cache): how many other raters hold the item now (see
    `_active`), and this rater's own assignment of it (its id), if any."""
    cutoff = utcnow() - CLAIM_TIMEOUT
    others, mine = 0, None
    for assignment_id, holder, state, updated_at in session.exec(
            select(Assignment.id, Assignment.rater_id, Assignment.state, Assignment.updated_at)
            .where(Assignment.item_id == item_id)):
        if holder == rater_id:
            mine = assignment_id
        elif state == "rated" or (state == "open" and _as_utc(updated_at) >= cutoff):
            others += 1
    return others, mine


# ---------------------------------------------------------------- raters and campaigns


def validate_rater_name(name: str) -> str:
    """The rater name as stored (surrounding blanks removed).

    Raises CampaignError for a name that breaks the one rule for names (db.names.check_name):
    empty or blank, over MAX_NAME characters, or with control characters."""
    cleaned = (name or "").strip()
    problem = check_name("rater", cleaned)
    if problem is not None:
        raise CampaignError(problem)
    return cleaned


def get_rater(session: Session, *, name: str) -> Optional[Rater]:
    """The rater called `name`, None when there is none."""
    return session.exec(select(Rater).where(Rater.name == name.strip())).first()


def get_or_create_rater(session: Session, *, name: str) -> Rater:
    """The rater called `name`, created (and committed) on first use.

    Raises CampaignError for an invalid name (see `validate_rater_name`)."""
    cleaned = validate_rater_name(name)
    rater = get_rater(session, name=cleaned)
    if rater is not None:
        session.commit()  # ends the read, as every writer here does
        return rater
    _begin_write(session)
    rater = get_rater(session, name=cleaned)
    if rater is None:
        rater = Rater(name=cleaned)
        session.add(rater)
    try:
        session.commit()  # also when another process made the rater: it ends the locked read
    except IntegrityError:  # without SQLite's lock, another process may have won the insert
        session.rollback()
        rater = get_rater(session, name=cleaned)
        if rater is None:
            raise
    return rater


def get_campaign(session: Session, *, name: str) -> Optional[Campaign]:
    """The campaign called `name`, None when there is none."""
    return session.exec(select(Campaign).where(Campaign.name == name)).first()


def list_campaigns(session: Session, *, dataset_id: int | None = None) -> list[Campaign]:
    """Campaigns oldest first, optionally only those on one eval set."""
    query = select(Campaign).order_by(Campaign.id)
    if dataset_id is not None:
        query = query.where(Campaign.dataset_id == dataset_id)
    return list(session.exec(query))


def add_campaign(
    session: Session,
    *,
    name: str,
    mode: str,
    dataset_id: int,
    variant_ids: Sequence[int],
    raters_per_item: int,
    seed: int,
    items: Iterable[tuple[int, int, int | None]],
    description: str = "",
) -> Campaign:
    """Store a campaign and its items, given as (sample id, generation id, other generation id
    or None) in canonical order. Flushes; the caller commits.

    Raises CampaignError for a bad name (db.names.check_name) or a taken one, an unknown mode,
    k < 1 or fewer than two variants."""
    problem = check_name("campaign", name)
    if problem is not None:
        raise CampaignError(problem)
    if get_campaign(session, name=name) is not None:
        raise CampaignError(f"a campaign named {name!r} exists already; choose another name")
    if mode not in CAMPAIGN_MODES:
        raise CampaignError(f"mode must be one of {', '.join(CAMPAIGN_MODES)}, got {mode!r}")
    if raters_per_item < 1:
        raise CampaignError(f"raters per item must be at least 1, got {raters_per_item}")
    if len(set(variant_ids)) < 2:
        raise CampaignError(f"a campaign compares at least two variants, got "
                            f"{len(set(variant_ids))}")
    campaign = Campaign(name=name, mode=mode, dataset_id=dataset_id,
                        variant_ids=list(variant_ids), raters_per_item=raters_per_item,
                        seed=seed, description=description)
    session.add(campaign)
    session.flush()
    for position, (sample_id, generation_id, other_id) in enumerate(items):
        session.add(CampaignItem(campaign_id=campaign.id, position=position, sample_id=sample_id,
                                 generation_id=generation_id, other_generation_id=other_id))
    session.flush()
    return campaign


def campaign_items(session: Session, *, campaign_id: int) -> list[CampaignItem]:
    """A campaign's items in canonical order."""
    return list(session.exec(select(CampaignItem).where(CampaignItem.campaign_id == campaign_id)
                             .order_by(CampaignItem.position)))


def campaign_assignments(session: Session, *, campaign_id: int) -> list[Assignment]:
    """Every assignment of a campaign, read afresh (a long-lived session may hold rows that
    other raters' processes have changed since)."""
    return list(session.exec(select(Assignment).where(Assignment.campaign_id == campaign_id)
                             .order_by(Assignment.id)
                             .execution_options(populate_existing=True)))


def campaign_ratings(session: Session, *, campaign_id: int) -> list[Rating]:
    """A campaign's ratings, oldest first."""
    return list(session.exec(select(Rating).where(Rating.campaign_id == campaign_id)
                             .order_by(Rating.id)))


def list_raters(session: Session) -> list[Rater]:
    """Every rater in id order."""
    return list(session.exec(select(Rater).order_by(Rater.id)))


# ---------------------------------------------------------------- per-rater order


def rater_order(seed: int, rater_id: int | None, positions: Sequence[int]) -> list[int]:
    """The item positions in the order this rater is shown them: a shuffle fixed by the
    campaign's seed and the rater."""
    order = sorted(positions)
    random.Random(f"ddft-order:{seed}:{rater_id}").shuffle(order)
    return order


def rater_swaps(seed: int, rater_id: int, position: int) -> bool:
    """Whether this rater sees a pairwise item's other generation on the left; fixed by the
    campaign's seed, the rater and the item's position."""
    return random.Random(f"ddft-side:{seed}:{rater_id}:{position}").random() < 0.5


# ---------------------------------------------------------------- claiming


def _active(assignment: Assignment, cutoff: datetime) -> bool:
    if assignment.state == "rated":
        return True
    return assignment.state == "open" and _as_utc(assignment.updated_at) >= cutoff


@dataclass(frozen=True)
class _Workload:
    done: int  # rated or skipped by this rater
    open: list[Assignment]  # this rater's open assignments, most recently touched first
    available: list[CampaignItem]  # items this rater may still claim, in their order


def _workload(session: Session, campaign: Campaign, rater_id: int | None) -> _Workload:
    items = campaign_items(session, campaign_id=campaign.id)
    assignments = campaign_assignments(session, campaign_id=campaign.id)
    cutoff = utcnow() - CLAIM_TIMEOUT
    mine = {a.item_id: a for a in assignments if a.rater_id == rater_id}
    active: dict[int, int] = {}
    for a in assignments:
        if a.rater_id != rater_id and _active(a, cutoff):
            active[a.item_id] = active.get(a.item_id, 0) + 1
    by_position = {item.position: item for item in items}
    available = [by_position[p] for p in rater_order(campaign.seed, rater_id, list(by_position))
                 if by_position[p].id not in mine
                 and active.get(by_position[p].id, 0) < campaign.raters_per_item]
    open_ = sorted((a for a in mine.values() if a.state == "open"),
                   key=lambda a: (_as_utc(a.updated_at), a.id), reverse=True)
    done = sum(1 for a in mine.values() if a.state in ("rated", "skipped"))
    return _Workload(done=done, open=open_, available=available)


def _campaign_by_id(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign with id {campaign_id}")
    return campaign


def _rater_by_id(session: Session, rater_id: int) -> Rater:
    rater = session.get(Rater, rater_id)
    if rater is None:
        raise CampaignError(f"no rater with id {rater_id}")
    return rater


def rater_progress(session: Session, *, campaign_id: int, rater_id: int) -> tuple[int, int]:
    """(done, total) for a rater: done = items rated or skipped; total = done + their open
    items + items they can still claim now. The total can shrink while others take items
    that have reached k raters.

    Raises CampaignError for an unknown campaign."""
    work = _workload(session, _campaign_by_id(session, campaign_id), rater_id)
    return work.done, work.done + len(work.open) + len(work.available)


def open_campaigns_for(session: Session, *, rater_id: int | None) -> list[Campaign]:
    """Campaigns in which this rater has an open item or can claim one, oldest first;
    rater_id None: those a new rater could start on."""
    result = []
    for campaign in list_campaigns(session):
        work = _workload(session, campaign, rater_id)
        if work.open or work.available:
            result.append(campaign)
    return result


def _rating_item(session: Session, campaign: Campaign, assignment: Assignment,
                 work: _Workload) -> RatingItem:
    item = session.get(CampaignItem, assignment.item_id)
    sample = session.get(Sample, item.sample_id)
    first = session.get(Generation, item.generation_id)
    if campaign.mode == "pairwise":
        other = session.get(Generation, item.other_generation_id)
        texts = (other.text, first.text) if assignment.swapped else (first.text, other.text)
    else:
        texts = (first.text,)
    return RatingItem(
        assignment_id=assignment.id,
        item_id=item.id,
        campaign=campaign.name,
        mode=campaign.mode,
        number=work.done + 1,
        total=work.done + len(work.open) + len(work.available),
        sample_external_id=sample.external_id,
        prompt=sample.prompt,
        reference=sample.answer,
        texts=texts,
    )


def _claim(session: Session, campaign: Campaign, rater_id: int,
           available: list[CampaignItem]) -> tuple[Optional[CampaignItem], Optional[Assignment]]:
    """The first item of `available` this rater may take now: (item, None) to claim it, (item,
    assignment) when another session of this rater just claimed it, (None, None) when none is
    left. On SQLite `available` is exact (the store is locked); elsewhere each item is locked
    and its holders counted afresh, one item per transaction, so two claims never wait on each
    other's locks in turn."""
    if session.connection().dialect.name == "sqlite":
        return available[0], None
    for item in available:
        _lock_item(session, item.id)
        others, mine = _holders(session, item.id, rater_id)
        if mine is not None:
            own = session.get(Assignment, mine, populate_existing=True)
            if own.state == "open":
                return item, own
        elif others < campaign.raters_per_item:
            return item, None
        session.commit()  # nothing written: let the item go before trying the next
    return None, None


def next_item(session: Session, *, campaign_id: int, rater_id: int) -> Optional[RatingItem]:
    """What this rater rates next: their open item first (so a dropped session resumes where it
    stopped; showing it again renews the claim), else the next item in their own order that
    they never had and that fewer than k others hold (see the module doc), claimed atomically.
    None when nothing is left for them. Commits.

    Raises CampaignError for an unknown campaign or rater."""
    _begin_write(session, campaign_id)
    try:
        campaign = _campaign_by_id(session, campaign_id)
        _rater_by_id(session, rater_id)
        work = _workload(session, campaign, rater_id)
        if work.open:
            assignment = work.open[0]
            assignment.updated_at = utcnow()
        elif work.available:
            item, assignment = _claim(session, campaign, rater_id, work.available)
            if item is None:
                session.commit()
                return None
            rest = [other for other in work.available if other.id != item.id]
            if assignment is None:
                swapped = (campaign.mode == "pairwise"
                           and rater_swaps(campaign.seed, rater_id, item.position))
                assignment = Assignment(campaign_id=campaign.id, item_id=item.id,
                                        rater_id=rater_id, swapped=swapped, state="open")
            work = _Workload(done=work.done, open=[assignment], available=rest)
        else:
            session.commit()  # nothing written; ends the locked transaction without expiring
            return None
        session.add(assignment)
        session.flush()
        shown = _rating_item(session, campaign, assignment, work)
        session.commit()
        return shown
    except BaseException:
        session.rollback()
        raise


# ---------------------------------------------------------------- rating, skipping, undoing


def _check_scores(scores: dict[str, int] | None) -> dict[str, int]:
    if not isinstance(scores, dict):
        raise CampaignError(f"a single rating needs scores for {', '.join(RATING_FIELDS)}, "
                            f"got {scores!r}")
    low, high = SCORE_RANGE
    problems = []
    missing = [name for name in RATING_FIELDS if name not in scores]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    extra = sorted(set(scores) - set(RATING_FIELDS))
    if extra:
        problems.append(f"unknown {', '.join(extra)}")
    for name in RATING_FIELDS:
        value = scores.get(name)
        if name in scores and (isinstance(value, bool) or not isinstance(value, int)
                               or not low <= value <= high):
            problems.append(f"{name} must be a whole number {low} to {high}, got {value!r}")
    if problems:
        raise CampaignError("bad scores: " + "; ".join(problems))
    return {name: int(scores[name]) for name in RATING_FIELDS}


def _own_assignment(session: Session, assignment_id: int) -> Assignment:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise CampaignError(f"no assignment with id {assignment_id}")
    # Read afresh (another session of the same rater may have changed it), and on databases
    # other than SQLite (whose write lock `_begin_write` took) lock the row until commit.
    session.refresh(assignment, with_for_update=session.bind.dialect.name != "sqlite")
    return assignment


def save_rating(
    session: Session,
    *,
    assignment_id: int,
    scores: dict[str, int] | None = None,
    choice: str | None = None,
    seconds: float,
) -> Rating:
    """Store a rating of an open assignment and mark it rated; commits at once.

    single: `scores` has ingredients, steps and overall, each a whole number 1 to 5.
    pairwise: `choice` is one of PAIRWISE_CHOICES as the rater saw the sides; the rating's
    generation_id is the generation shown on the left, other_generation_id the right one.

    A second save of one assignment stores nothing and raises CampaignError (undo the first
    rating to change it), as do bad scores or choice, a negative time and an assignment that
    was skipped or does not exist."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise CampaignError(f"seconds must be a non-negative time, got {seconds!r}")
    _begin_write(session)
    try:
        assignment = _own_assignment(session, assignment_id)
        campaign = _campaign_by_id(session, assignment.campaign_id)
        if assignment.state == "rated":
            raise CampaignError(f"item {assignment.item_id} is already rated by this rater; "
                                f"undo that rating to change it")
        if assignment.state != "open":
            raise CampaignError(f"item {assignment.item_id} was {assignment.state}; undo to "
                                f"rate it")
        item = session.get(CampaignItem, assignment.item_id)
        if campaign.mode == "pairwise":
            if choice not in PAIRWISE_CHOICES:
                raise CampaignError(f"a pairwise rating's choice must be one of "
                                    f"{', '.join(PAIRWISE_CHOICES)}, got {choice!r}")
            left, right = item.generation_id, item.other_generation_id
            if assignment.swapped:
                left, right = right, left
            rating = Rating(campaign_id=campaign.id, item_id=item.id,
                            rater_id=assignment.rater_id, generation_id=left,
                            other_generation_id=right, choice=choice, seconds=float(seconds))
        else:
            rating = Rating(campaign_id=campaign.id, item_id=item.id,
                            rater_id=assignment.rater_id, generation_id=item.generation_id,
                            scores=_check_scores(scores), seconds=float(seconds))
        assignment.state = "rated"
        assignment.updated_at = utcnow()
        session.add(rating)
        session.add(assignment)
        session.commit()
        return rating
    except IntegrityError as exc:
        session.rollback()
        if "unique" not in str(exc.orig).lower():
            raise
        raise CampaignError(f"assignment {assignment_id} is already rated") from exc
    except BaseException:
        session.rollback()
        raise


def skip_item(session: Session, *, assignment_id: int) -> None:
    """Mark an open assignment skipped: the rater is not shown it again, and it no longer counts
    toward the item's k raters, so it goes to someone else. Commits.

    Raises CampaignError for an unknown assignment or one that is not open."""
    _begin_write(session)
    try:
        assignment = _own_assignment(session, assignment_id)
        if assignment.state != "open":
            raise CampaignError(f"item {assignment.item_id} is {assignment.state}, not open; "
                                f"only an open item can be skipped")
        assignment.state = "skipped"
        assignment.updated_at = utcnow()
        session.add(assignment)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def undo_last(session: Session, *, campaign_id: int, rater_id: int) -> Optional[int]:
    """Take back this rater's most recent rating or skip in the campaign: the rating row is
    deleted and the assignment reopened, so `next_item` shows that item again. Returns the
    item id, None when the rater has nothing to undo. Commits.

    Raises CampaignError when the last action was a skip and the item has since reached its k
    raters (reopening it would give it one too many)."""
    _begin_write(session, campaign_id)
    try:
        last = session.exec(
            select(Assignment)
            .where(Assignment.campaign_id == campaign_id, Assignment.rater_id == rater_id,
                   col(Assignment.state).in_(("rated", "skipped")))
            .order_by(col(Assignment.updated_at).desc(), col(Assignment.id).desc())
            .execution_options(populate_existing=True)
        ).first()
        if last is None:
            session.commit()  # nothing written; ends the locked transaction without expiring
            return None
        if last.state == "skipped":
            # The skip handed the item on: reopen it only while it still lacks raters.
            campaign = _campaign_by_id(session, campaign_id)
            _lock_item(session, last.item_id)
            others, _ = _holders(session, last.item_id, rater_id)
            if others >= campaign.raters_per_item:
                session.commit()
                raise CampaignError("the skipped item has gone to other raters since; "
                                    "there is nothing to take back")
        for rating in session.exec(select(Rating).where(Rating.item_id == last.item_id,
                                                        Rating.rater_id == rater_id)):
            session.delete(rating)
        last.state = "open"
        last.updated_at = utcnow()
        session.add(last)
        item_id = last.item_id
        session.commit()
        return item_id
    except BaseException:
        session.rollback()
        raise
