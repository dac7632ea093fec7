"""Agreement between people and the GPT judge, and between people: Cohen's kappa, Spearman,
Krippendorff's alpha, human win rates and the queue of items where people and judge disagree.

Pure functions over plain values (numpy only), so the workbench may import them; the rows they
summarise are read from the store by `engine.evaluation.rating.agreement_rows`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Optional, Sequence

from engine.evaluation.stats import cluster_bootstrap_mean, wilson_interval

# A score at or above this is a "yes", as in the paper's judge.
YES_THRESHOLD = 3.5
ALPHA_LEVELS = ("nominal", "ordinal", "interval")


# ---------------------------------------------------------------- coefficients


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> Optional[float]:
    """Cohen's kappa between two raters' labels of the same items: (p_o − p_e) / (1 − p_e),
    p_o the observed agreement, p_e the agreement expected from each rater's label shares.

    None when it is undefined: no items, or both raters gave one and the same label to
    everything (p_e = 1). Raises ValueError when the sequences differ in length."""
    if len(a) != len(b):
        raise ValueError(f"kappa needs paired labels, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return None
    observed = sum(1 for x, y in zip(a, b) if x == y) / n
    shares_a, shares_b = Counter(a), Counter(b)
    expected = sum(shares_a[label] * shares_b[label] for label in shares_a) / (n * n)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1.0 - expected)


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        stop = start
        while stop + 1 < len(order) and values[order[stop + 1]] == values[order[start]]:
            stop += 1
        for i in range(start, stop + 1):
            ranks[order[i]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (so ties are
    handled exactly). None with fewer than two pairs or when either side is constant.
    Raises ValueError when the sequences differ in length."""
    if len(x) != len(y):
        raise ValueError(f"Spearman needs paired values, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def _delta(level: str, values: list, counts: Counter):
    """The squared difference function δ²(c, k) of Krippendorff's alpha for a level."""
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "interval":
        return lambda c, k: (float(c) - float(k)) ** 2
    # ordinal: the number of values between c and k, each end counted half, squared.
    cumulative, running = {}, 0.0
    for v in values:
        cumulative[v] = running
        running += counts[v]

    def ordinal(c, k):
        low, high = (c, k) if c <= k else (k, c)
        between = cumulative[high] + counts[high] - cumulative[low]
        return (between - (counts[low] + counts[high]) / 2) ** 2

    return ordinal


def krippendorff_alpha(units: Iterable[Sequence[Optional[Hashable]]],
                       level: str = "interval") -> Optional[float]:
    """Krippendorff's alpha over units × raters: `units[u]` holds every rater's value for unit u,
    None where that rater gave none. alpha = 1 − D_o / D_e from the coincidence matrix: only
    units with at least two values count (n = their values); D_o sums δ² over pairs within
    units, each unit weighted 1 / (m_u − 1); D_e over all pairs of the n values.

    None when it is undefined: fewer than two pairable values, or every value the same
    (D_e = 0). Raises ValueError for an unknown level."""
    if level not in ALPHA_LEVELS:
        raise ValueError(f"level must be one of {', '.join(ALPHA_LEVELS)}, got {level!r}")
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [unit for unit in pairable if len(unit) >= 2]
    counts = Counter(v for unit in pairable for v in unit)
    n = sum(counts.values())
    if n < 2:
        return None
    values = sorted(counts)
    delta = _delta(level, values, counts)
    observed = 0.0
    for unit in pairable:
        within = sum(delta(a, b) for i, a in enumerate(unit) for j, b in enumerate(unit) if i != j)
        observed += within / (len(unit) - 1)
    expected = sum(counts[c] * counts[k] * delta(c, k) for c in values for k in values)
    if expected == 0:
        return None
    # D_o = observed / n and D_e = expected / (n (n − 1)).
    return 1.0 - (n - 1) * observed / expected


# ---------------------------------------------------------------- win rates


@dataclass(frozen=True)
class WinRate:
    """One variant's record in people's pairwise preferences."""

    variant: str
    wins: int
    losses: int
    ties: int
    both_bad: int  # counted apart: neither side was acceptable, so no preference
    n: int  # wins + losses + ties
    rate: Optional[float]  # (wins + ties / 2) / n
    low: Optional[float]  # Wilson interval of the rate
    high: Optional[float]


def win_rates(preferences: Iterable[tuple[str, str, str]],
              confidence: float = 0.95) -> list[WinRate]:
    """Per variant, from (left variant, right variant, choice) triples with choice one of
    left, right, tie, both-bad: wins, losses, ties (half a win each) and both-bad (not in the
    rate), the rate and its Wilson interval (on the fractional count wins + ties / 2).
    Variants in the order they first appear. Raises ValueError for an unknown choice."""
    tally: dict[str, Counter] = {}
    for left, right, choice in preferences:
        for name in (left, right):
            tally.setdefault(name, Counter())
        if choice == "left":
            tally[left]["wins"] += 1
            tally[right]["losses"] += 1
        elif choice == "right":
            tally[right]["wins"] += 1
            tally[left]["losses"] += 1
        elif choice in ("tie", "both-bad"):
            key = "ties" if choice == "tie" else "both_bad"
            tally[left][key] += 1
            tally[right][key] += 1
        else:
            raise ValueError(f"a choice is left, right, tie or both-bad, got {choice!r}")
    result = []
    for name, t in tally.items():
        n = t["wins"] + t["losses"] + t["ties"]
        score = t["wins"] + t["ties"] / 2
        low = high = rate = None
        if n:
            rate = score / n
            low, high = wilson_interval(score, n, confidence)
        result.append(WinRate(variant=name, wins=t["wins"], losses=t["losses"], ties=t["ties"],
                              both_bad=t["both_bad"], n=n, rate=rate, low=low, high=high))
    return result


# ---------------------------------------------------------------- a campaign's summary


@dataclass(frozen=True)
class HumanRating:
    """One stored rating with its blinding key and the judge's scores of what was rated."""

    item_id: int
    rater: str
    sample: str  # the sample's external id
    variant: str  # single: the rated variant; pairwise: the variant shown on the left
    other_variant: Optional[str] = None  # pairwise: shown on the right
    scores: dict = field(default_factory=dict)  # single: ingredients, steps, overall
    choice: str = ""  # pairwise, as the rater saw the sides
    judge: Optional[float] = None  # the judge's score of the (left) generation
    other_judge: Optional[float] = None  # pairwise: of the right generation
    swapped: bool = False  # pairwise: the item's second generation was shown on the left


@dataclass(frozen=True)
class VariantHuman:
    """People's verdict on one variant: mean scores (single) or a win rate (pairwise)."""

    variant: str
    n: int  # ratings (single) or preferences with a winner or a tie (pairwise)
    mean_overall: Optional[float] = None
    overall_low: Optional[float] = None  # bootstrap interval, samples resampled whole
    overall_high: Optional[float] = None
    mean_ingredients: Optional[float] = None
    mean_steps: Optional[float] = None
    judge_mean: Optional[float] = None  # the judge's mean score of the same generations
    win: Optional[WinRate] = None


@dataclass(frozen=True)
class Disagreement:
    """An item where people and the judge disagree, for adjudication."""

    item_id: int
    sample: str
    variants: tuple[str, ...]  # as stored: the item's generation first
    human: str  # mean overall (single) or the majority choice (pairwise)
    judge: str  # the judge's score (single) or its preference from the scores (pairwise)
    gap: float  # single: |mean human overall − judge|; pairwise: share of raters against judge
    n: int  # ratings of the item


@dataclass(frozen=True)
class CampaignAgreement:
    campaign: str
    mode: str
    judge: str  # the judge setting compared with, "" when none scored these generations
    ratings: int
    raters: int
    items: int  # items with at least one rating
    total_items: int = 0  # items in the campaign (0: not known to the caller)
    kappa: Optional[float] = None  # human vs judge, yes/no at YES_THRESHOLD (single)
    kappa_n: int = 0
    spearman: Optional[float] = None  # human overall vs judge score (single)
    spearman_n: int = 0
    judge_agreement: Optional[float] = None  # pairwise: share of preferences the judge shares
    judge_agreement_n: int = 0
    alpha: Optional[float] = None  # between raters
    alpha_level: str = ""
    alpha_units: int = 0  # items rated by at least two people
    variants: list[VariantHuman] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a figure is missing


def _yes(score: float) -> bool:
    return score >= YES_THRESHOLD


def judge_choice(left: float, right: float) -> str:
    """The judge's preference read from its two scores: the higher one, equal = tie."""
    return "left" if left > right else "right" if right > left else "tie"


def canonical_choice(choice: str, swapped: bool) -> str:
    """A pairwise choice as seen by the item's stored order (first, second), not the rater's."""
    if not swapped or choice not in ("left", "right"):
        return choice
    return "right" if choice == "left" else "left"


def _single_summary(ratings: list[HumanRating], limit: int, confidence: float,
                    notes: list[str]) -> dict:
    judged = [r for r in ratings if r.judge is not None]
    human_yes = [_yes(r.scores["overall"]) for r in judged]
    judge_yes = [_yes(r.judge) for r in judged]
    kappa = cohen_kappa(human_yes, judge_yes)
    if not judged:
        notes.append("kappa and Spearman: the judge scored none of the rated generations")
    elif kappa is None:
        notes.append("kappa undefined: people and judge each gave one and the same verdict "
                     "to every rating")
    rho = spearman([r.scores["overall"] for r in judged], [r.judge for r in judged])
    if judged and rho is None:
        notes.append("Spearman undefined: fewer than two pairs, or one side is constant")
    by_item: dict[int, dict[str, float]] = {}
    for r in ratings:
        by_item.setdefault(r.item_id, {})[r.rater] = r.scores["overall"]
    raters = sorted({r.rater for r in ratings})
    units = [[scores.get(name) for name in raters] for scores in by_item.values()]
    alpha = krippendorff_alpha(units, "interval")
    alpha_units = sum(1 for unit in units if sum(v is not None for v in unit) >= 2)
    if alpha is None:
        notes.append("alpha undefined: needs items rated by two people and scores that vary"
                     if alpha_units else "alpha: no item was rated by two people yet")
    variants = []
    for name in dict.fromkeys(r.variant for r in ratings):
        mine = [r for r in ratings if r.variant == name]
        overall = [float(r.scores["overall"]) for r in mine]
        low, high = cluster_bootstrap_mean(overall, [r.sample for r in mine], n_boot=2000,
                                           seed=0, confidence=confidence)
        judge_scores = {r.item_id: r.judge for r in mine if r.judge is not None}
        variants.append(VariantHuman(
            variant=name, n=len(mine), mean_overall=sum(overall) / len(overall),
            overall_low=low, overall_high=high,
            mean_ingredients=sum(r.scores["ingredients"] for r in mine) / len(mine),
            mean_steps=sum(r.scores["steps"] for r in mine) / len(mine),
            judge_mean=(sum(judge_scores.values()) / len(judge_scores)) if judge_scores else None,
        ))
    queue = []
    for item_id in by_item:
        mine = [r for r in ratings if r.item_id == item_id]
        if mine[0].judge is None:
            continue
        mean = sum(r.scores["overall"] for r in mine) / len(mine)
        gap = abs(mean - mine[0].judge)
        if gap > 0:
            queue.append(Disagreement(item_id=item_id, sample=mine[0].sample,
                                      variants=(mine[0].variant,), human=f"{mean:.2f}",
                                      judge=f"{mine[0].judge:.2f}", gap=gap, n=len(mine)))
    queue.sort(key=lambda d: (-d.gap, d.item_id))
    return dict(kappa=kappa, kappa_n=len(judged), spearman=rho, spearman_n=len(judged),
                alpha=alpha, alpha_level="interval", alpha_units=alpha_units,
                variants=variants, disagreements=queue[:limit])


def _pairwise_summary(ratings: list[HumanRating], limit: int, confidence: float,
                      notes: list[str]) -> dict:
    preferences = [r for r in ratings if r.choice in ("left", "right", "tie")]
    judged = [r for r in preferences if r.judge is not None and r.other_judge is not None]
    agree = sum(1 for r in judged if r.choice == judge_choice(r.judge, r.other_judge))
    if not judged:
        notes.append("judge agreement: the judge scored no pair people preferred between")
    by_item: dict[int, list[HumanRating]] = {}
    for r in ratings:
        by_item.setdefault(r.item_id, []).append(r)
    raters = sorted({r.rater for r in ratings})
    units = []
    for rows in by_item.values():
        chosen = {r.rater: canonical_choice(r.choice, r.swapped) for r in rows}
        units.append([chosen.get(name) for name in raters])
    alpha = krippendorff_alpha(units, "nominal")
    alpha_units = sum(1 for unit in units if sum(v is not None for v in unit) >= 2)
    if alpha is None:
        notes.append("alpha undefined: needs items rated by two people and choices that vary"
                     if alpha_units else "alpha: no item was rated by two people yet")
    wins = {w.variant: w for w in win_rates(((r.variant, r.other_variant, r.choice)
                                             for r in ratings), confidence)}
    variants = [VariantHuman(variant=name, n=w.n, win=w) for name, w in wins.items()]
    queue = []
    for item_id, rows in by_item.items():
        first = rows[0]
        if first.judge is None or first.other_judge is None:
            continue
        # Everything in the item's stored order: first generation = "left".
        if first.swapped:
            stored_first, stored_second = first.other_judge, first.judge
            names = (first.other_variant, first.variant)
        else:
            stored_first, stored_second = first.judge, first.other_judge
            names = (first.variant, first.other_variant)
        judge = judge_choice(stored_first, stored_second)
        # As in the agreement figure, "both bad" is no preference: the queue weighs only the
        # preferences people gave.
        preferences = [r for r in rows if r.choice != "both-bad"]
        if not preferences:
            continue
        votes = Counter(canonical_choice(r.choice, r.swapped) for r in preferences)
        top = votes.most_common()
        majority = top[0][0] if len(top) == 1 or top[0][1] > top[1][1] else "no majority"
        if majority == judge:
            continue
        against = sum(n for choice, n in votes.items() if choice != judge) / len(preferences)
        queue.append(Disagreement(
            item_id=item_id, sample=first.sample, variants=tuple(names),
            human=_side_name(majority, names), judge=_side_name(judge, names),
            gap=against, n=len(preferences)))
    queue.sort(key=lambda d: (-d.gap, -d.n, d.item_id))
    return dict(judge_agreement=agree / len(judged) if judged else None,
                judge_agreement_n=len(judged), alpha=alpha, alpha_level="nominal",
                alpha_units=alpha_units, variants=variants, disagreements=queue[:limit])


def _side_name(choice: str, names: tuple) -> str:
    if choice == "left":
        return f"{names[0]} better"
    if choice == "right":
        return f"{names[1]} better"
    return choice


def summarize_campaign(campaign: str, mode: str, ratings: Sequence[HumanRating], *,
                       judge: str = "", limit: int = 20,
                       confidence: float = 0.95) -> CampaignAgreement:
    """Human vs judge, between raters, per variant and the disagreement queue for one campaign.

    single: Cohen's kappa on yes/no (score ≥ YES_THRESHOLD; people's overall score) and
    Spearman between people's overall and the judge's score, one pair per rating; Krippendorff's
    interval alpha on overall scores between raters; per variant the mean scores with a
    bootstrap interval (samples resampled whole); the queue: items by |mean overall − judge|.
    pairwise: the share of people's preferences (left, right, tie; both-bad is no preference)
    that the judge's scores share (higher score preferred, equal = tie); nominal alpha on the
    choices in the item's stored order; per variant the human win rate; the queue: items whose
    human majority preference (both-bad left out) differs from the judge. A figure that cannot be computed is None, and
    `notes` says why. Raises ValueError for an unknown mode."""
    if mode not in ("single", "pairwise"):
        raise ValueError(f"mode must be single or pairwise, got {mode!r}")
    notes: list[str] = []
    if not ratings:
        notes.append("no ratings yet")
        return CampaignAgreement(campaign=campaign, mode=mode, judge=judge, ratings=0, raters=0,
                                 items=0, notes=notes,
                                 alpha_level="interval" if mode == "single" else "nominal")
    summary = (_single_summary if mode == "single" else _pairwise_summary)(
        list(ratings), limit, confidence, notes)
    if not judge:
        notes.append("no judge scores for these generations: run `ddft judge` on the eval set")
    return CampaignAgreement(campaign=campaign, mode=mode, judge=judge, ratings=len(ratings),
                             raters=len({r.rater for r in ratings}),
                             items=len({r.item_id for r in ratings}), notes=notes, **summary)
