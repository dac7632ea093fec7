"""Agreement statistics against values computed by hand (and Krippendorff's own worked example)."""

from __future__ import annotations

import pytest

from engine.evaluation.agreement import (
    HumanRating,
    average_ranks,
    canonical_choice,
    cohen_kappa,
    judge_choice,
    krippendorff_alpha,
    spearman,
    summarize_campaign,
    win_rates,
)


def test_cohen_kappa_on_a_two_by_two_table():
    # both yes 4, only a yes 1, only b yes 2, both no 3 (n = 10):
    # p_o = 7/10; a says yes 5/10, b 6/10 → p_e = .5·.6 + .5·.4 = .5; kappa = (.7 − .5)/.5 = .4
    a = [1] * 4 + [1] + [0] * 2 + [0] * 3
    b = [1] * 4 + [0] + [1] * 2 + [0] * 3
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)


def test_cohen_kappa_degenerate_cases():
    assert cohen_kappa([], []) is None
    # Everyone says yes to everything: p_e = 1, kappa is undefined.
    assert cohen_kappa([True] * 5, [True] * 5) is None
    # One side constant: p_o = 3/4 = p_e → 0.
    assert cohen_kappa([1, 1, 1, 1], [1, 1, 0, 1]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="paired labels"):
        cohen_kappa([1, 0], [1])


def test_spearman_with_ties_uses_average_ranks():
    # x ranks 1, 2.5, 2.5, 4; y ranks 1, 3, 2, 4 (means 2.5): Σdx·dy = 4.5, Σdx² = 4.5,
    # Σdy² = 5 → rho = 4.5 / √22.5 = 3/√10 = 0.948683
    assert average_ranks([1, 2, 2, 3]) == [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.948683, abs=1e-6)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1], [2]) is None
    assert spearman([2, 2, 2], [1, 2, 3]) is None


def test_krippendorff_alpha_reproduces_krippendorffs_own_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four
    # observers, twelve units, missing values; published alpha: nominal .743, ordinal .815,
    # interval .849.
    n = None
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    units = list(zip(*observers))
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_small_cases_by_hand():
    # Units [a, a] and [a, b]: n = 4 (a ×3, b ×1); within-unit disagreement: the (a, b) and
    # (b, a) pairs of unit 2, weight 1/(2−1) → 2; expected Σ n_c n_k δ = 3·1 + 1·3 = 6;
    # alpha = 1 − (n − 1)·2/6 = 0.
    assert krippendorff_alpha([["a", "a"], ["a", "b"]], "nominal") == pytest.approx(0.0)
    assert krippendorff_alpha([[1, 1], [2, 2]], "interval") == pytest.approx(1.0)
    assert krippendorff_alpha([[3, 3], [3, 3]], "interval") is None  # no variation
    assert krippendorff_alpha([[1, None], [2]], "interval") is None  # nothing pairable
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([[1, 2]], "ratio")


def test_win_rates_count_ties_half_and_both_bad_apart():
    prefs = ([("A", "B", "left")] * 3 + [("A", "B", "right")] + [("B", "A", "tie")] * 2
             + [("A", "B", "both-bad")])
    a, b = win_rates(prefs)
    # A: 3 wins, 1 loss, 2 ties → (3 + 1)/6 = 2/3. Wilson 95% (z = 1.95996) on 4 of 6:
    # centre (p + z²/2n)/(1 + z²/n) = 0.98679/1.64025 = 0.60161;
    # half z/(1 + z²/n)·√(p(1−p)/n + z²/4n²) = 1.19494·0.25242 = 0.30162 → 0.29999–0.90323
    assert (a.variant, a.wins, a.losses, a.ties, a.both_bad, a.n) == ("A", 3, 1, 2, 1, 6)
    assert a.rate == pytest.approx(2 / 3)
    assert (a.low, a.high) == pytest.approx((0.29999, 0.90323), abs=1e-4)
    assert (b.wins, b.losses, b.ties, b.both_bad) == (1, 3, 2, 1)
    assert b.rate == pytest.approx(1 / 3)
    only_bad = win_rates([("A", "B", "both-bad")])
    assert only_bad[0].rate is None and only_bad[0].low is None and only_bad[0].both_bad == 1
    with pytest.raises(ValueError, match="choice"):
        win_rates([("A", "B", "middle")])


def test_judge_and_canonical_choices():
    assert judge_choice(4, 2) == "left" and judge_choice(2, 4) == "right"
    assert judge_choice(3, 3) == "tie"
    assert canonical_choice("left", True) == "right" and canonical_choice("tie", True) == "tie"
    assert canonical_choice("left", False) == "left"


def _single(item, rater, variant, sample, overall, judge):
    return HumanRating(item_id=item, rater=rater, sample=sample, variant=variant,
                       scores={"ingredients": overall, "steps": overall - 1, "overall": overall},
                       judge=judge)


def test_single_campaign_summary_by_hand():
    ratings = [
        _single(1, "r1", "A", "s1", 5, 4.0), _single(1, "r2", "A", "s1", 4, 4.0),
        _single(2, "r1", "B", "s1", 2, 2.0), _single(2, "r2", "B", "s1", 3, 2.0),
        _single(3, "r1", "A", "s2", 4, 3.0),
    ]
    s = summarize_campaign("c", "single", ratings, judge="offline (offline)")
    # yes/no at 3.5 — people Y Y N N Y, judge Y Y N N N: p_o = .8, p_e = .6·.4 + .4·.6 = .48,
    # kappa = .32/.52 = 0.615385
    assert (s.kappa, s.kappa_n) == (pytest.approx(0.615385, abs=1e-6), 5)
    # people 5 4 2 3 4 → ranks 5 3.5 1 2 3.5; judge 4 4 2 2 3 → 4.5 4.5 1.5 1.5 3;
    # Σdx·dy = 8.25, Σdx² = 9.5, Σdy² = 9 → 8.25/√85.5 = 0.892218
    assert (s.spearman, s.spearman_n) == (pytest.approx(0.892218, abs=1e-6), 5)
    # alpha (interval) over items 1 (5, 4) and 2 (2, 3); item 3 has one rating: n = 4,
    # observed 2 + 2 = 4, expected Σ over ordered pairs of {2,3,4,5} of (c−k)² = 40,
    # alpha = 1 − 3·4/40 = 0.7
    assert (s.alpha, s.alpha_units, s.alpha_level) == (pytest.approx(0.7), 2, "interval")
    a, b = s.variants
    assert (a.variant, a.n, b.variant, b.n) == ("A", 3, "B", 2)
    assert a.mean_overall == pytest.approx(13 / 3) and b.mean_overall == pytest.approx(2.5)
    assert a.mean_steps == pytest.approx(10 / 3) and a.judge_mean == pytest.approx(3.5)
    assert a.overall_low <= a.mean_overall <= a.overall_high
    # |mean − judge|: item 3 |4 − 3| = 1, item 1 |4.5 − 4| = .5, item 2 |2.5 − 2| = .5
    assert [(d.item_id, d.gap) for d in s.disagreements] == [(3, 1.0), (1, 0.5), (2, 0.5)]
    assert (s.ratings, s.raters, s.items) == (5, 2, 3) and s.notes == []


def _pair(item, rater, swapped, choice, first_judge, second_judge):
    # The item's stored order is (A, B); a swapped rater saw B on the left.
    left, right = ("B", "A") if swapped else ("A", "B")
    lj, rj = (second_judge, first_judge) if swapped else (first_judge, second_judge)
    return HumanRating(item_id=item, rater=rater, sample=f"s{item}", variant=left,
                       other_variant=right, choice=choice, judge=lj, other_judge=rj,
                       swapped=swapped)


def test_pairwise_campaign_summary_by_hand():
    ratings = [
        # item 1: judge A 4 vs B 2 → prefers A
        _pair(1, "r1", False, "left", 4, 2),   # A: agrees
        _pair(1, "r2", True, "right", 4, 2),   # A: agrees
        _pair(1, "r3", True, "left", 4, 2),    # B: disagrees
        # item 2: judge 3 vs 3 → tie
        _pair(2, "r1", False, "tie", 3, 3),    # agrees
        _pair(2, "r2", False, "both-bad", 3, 3),  # no preference: not counted
        # item 3: judge A 2 vs B 5 → prefers B
        _pair(3, "r1", False, "left", 2, 5),   # A: disagrees
        _pair(3, "r2", True, "left", 2, 5),    # B: agrees
    ]
    s = summarize_campaign("p", "pairwise", ratings, judge="offline (offline)")
    assert (s.judge_agreement, s.judge_agreement_n) == (pytest.approx(4 / 6), 6)
    # Choices in stored order: item 1 [left, left, right], item 2 [tie, both-bad],
    # item 3 [left, right]; n = 7 (left 3, right 2, tie 1, both-bad 1). Observed: item 1
    # 4 differing ordered pairs / (3 − 1) = 2, items 2 and 3: 2 each → 6. Expected:
    # n² − Σn_c² = 49 − 15 = 34. alpha = 1 − 6·6/34 = −0.0588235
    assert s.alpha == pytest.approx(-0.0588235, abs=1e-6) and s.alpha_units == 3
    a, b = s.variants
    # A: wins item 1 ×2, item 3 r1; loses item 1 r3, item 3 r2; one tie, one both-bad.
    assert (a.win.wins, a.win.losses, a.win.ties, a.win.both_bad) == (3, 2, 1, 1)
    assert a.win.rate == pytest.approx(3.5 / 6) and b.win.rate == pytest.approx(2.5 / 6)
    # Item 1's majority (A) is the judge's; item 2's one preference (tie) is the judge's, its
    # both-bad is no preference; item 3 (1–1) has no majority, half the raters against the judge.
    assert [(d.item_id, d.human, d.judge, d.gap, d.n) for d in s.disagreements] == [
        (3, "no majority", "B better", 0.5, 2)]
    # An item only called "both bad" has no preference to set against the judge.
    only_bad = summarize_campaign("b", "pairwise", [_pair(4, "r1", False, "both-bad", 4, 2),
                                                    _pair(4, "r2", True, "both-bad", 4, 2)],
                                  judge="offline (offline)")
    assert only_bad.disagreements == []


def test_degenerate_summaries_say_why_instead_of_crashing():
    empty = summarize_campaign("e", "single", [])
    assert empty.kappa is None and empty.notes == ["no ratings yet"]
    same = [_single(i, "r1", "A", f"s{i}", 5, 5.0) for i in range(3)]
    s = summarize_campaign("s", "single", same, judge="offline (offline)")
    assert s.kappa is None and s.spearman is None and s.alpha is None
    assert any("kappa undefined" in note for note in s.notes)
    assert any("no item was rated by two people" in note for note in s.notes)
    unjudged = summarize_campaign("u", "pairwise", [_pair(1, "r1", False, "left", None, None)])
    assert unjudged.judge_agreement is None and unjudged.disagreements == []
    assert any("run `ddft judge`" in note for note in unjudged.notes)
    with pytest.raises(ValueError, match="mode"):
        summarize_campaign("x", "triple", same)
