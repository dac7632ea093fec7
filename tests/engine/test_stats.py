"""Intervals and paired tests against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.evaluation.stats import (
    binomial_cdf,
    cluster_bootstrap_mean,
    mcnemar,
    paired_bootstrap_diff,
    wilson_interval,
)


def test_wilson_matches_the_hand_computed_interval_for_the_papers_fine_tuned_model():
    # 191 of 408, z = 1.959964 (z² = 3.841459):
    #   p = 191/408 = 0.468137, z²/n = 0.0094153
    #   centre = (p + z²/2n) / (1 + z²/n) = 0.4728447 / 1.0094153 = 0.468434
    #   half = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²) = 1.941683 · sqrt(0.00061025 + 0.00000577)
    #        = 1.941683 · 0.0248198 = 0.0481925
    #   → (0.420242, 0.516627)
    low, high = wilson_interval(191, 408)
    assert low == pytest.approx(0.420242, abs=2e-6)
    assert high == pytest.approx(0.516627, abs=2e-6)


def test_wilson_stays_inside_zero_and_one_and_rejects_nonsense():
    # 0 of 10: low = 0, high = z²/(n + z²) = 3.841459 / 13.841459 = 0.277533
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.277533, abs=2e-6)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(1 - 0.277533, abs=2e-6)
    narrow, wide = wilson_interval(50, 100, 0.90), wilson_interval(50, 100, 0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    for args in [(0, 0), (5, 4), (-1, 4)]:
        with pytest.raises(ValueError):
            wilson_interval(*args)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


def test_exact_mcnemar_on_ten_against_two():
    # X ~ Bin(12, 1/2): P(X <= 2) = (1 + 12 + 66) / 4096 = 79/4096; p = 2 · 79/4096 = 0.03857
    assert binomial_cdf(2, 12) == 79 / 4096
    assert mcnemar(10, 2) == pytest.approx(0.03857421875, abs=1e-12)
    assert round(mcnemar(10, 2), 4) == 0.0386
    assert mcnemar(2, 10) == mcnemar(10, 2)
    assert mcnemar(5, 5) == 1.0 and mcnemar(0, 0) == 1.0
    # All eight discordant pairs one way: 2 · (1/2)^8 = 0.0078125
    assert mcnemar(8, 0) == 0.0078125
    with pytest.raises(ValueError):
        mcnemar(-1, 3)


def test_mcnemar_chi_square_with_continuity_correction():
    # (|10 - 2| - 1)² / 12 = 49/12 = 4.0833; P(chi²(1) >= 4.0833) = erfc(sqrt(4.0833/2)) = 0.04331
    assert mcnemar(10, 2, exact=False) == pytest.approx(math.erfc(math.sqrt(49 / 24)))
    assert mcnemar(10, 2, exact=False) == pytest.approx(0.04331, abs=1e-5)
    # With many discordant pairs the two agree closely.
    assert mcnemar(130, 100, exact=False) == pytest.approx(mcnemar(130, 100), abs=0.003)


def test_cluster_bootstrap_of_two_clusters_spans_both_means():
    # Two recipes, one all 0s and one all 1s: a resample holds (0,0), (0,1) or (1,1) clusters,
    # giving means 0, 0.5, 1 with chances 1/4, 1/2, 1/4, so the 95% interval is (0, 1).
    values = [0.0] * 5 + [1.0] * 5
    clusters = ["a"] * 5 + ["b"] * 5
    assert cluster_bootstrap_mean(values, clusters) == (0.0, 1.0)
    # Treating the ten videos as independent would claim a much narrower interval.
    low, high = cluster_bootstrap_mean(values, list(range(10)))
    assert 0.1 <= low < 0.5 < high <= 0.9


def test_cluster_bootstrap_is_deterministic_and_widens_with_correlated_clusters():
    rng = np.random.default_rng(7)
    per_recipe = rng.normal(3.0, 1.0, size=40)
    values = np.repeat(per_recipe, 10)  # ten videos of each recipe, all scored alike
    recipes = np.repeat(np.arange(40), 10)
    clustered = cluster_bootstrap_mean(values, recipes, seed=3)
    assert clustered == cluster_bootstrap_mean(values, recipes, seed=3)
    assert clustered != cluster_bootstrap_mean(values, recipes, seed=4)
    naive = cluster_bootstrap_mean(values, np.arange(400), seed=3)
    assert clustered[0] < values.mean() < clustered[1]
    # Ten copies per cluster: the honest interval is about sqrt(10) ≈ 3.2 times wider.
    ratio = (clustered[1] - clustered[0]) / (naive[1] - naive[0])
    assert 2.5 < ratio < 4.0


def test_cluster_bootstrap_edge_cases():
    assert cluster_bootstrap_mean([2.0, 4.0], ["r", "r"]) == (3.0, 3.0)  # one cluster: no spread
    with pytest.raises(ValueError):
        cluster_bootstrap_mean([], [])
    with pytest.raises(ValueError):
        cluster_bootstrap_mean([1.0, 2.0], ["a"])
    with pytest.raises(ValueError):
        cluster_bootstrap_mean([1.0], ["a"], n_boot=0)


def test_paired_bootstrap_of_identical_and_shifted_scores():
    base = [1.0, 2.0, 3.0, 4.0, 5.0, 3.0]
    recipes = ["a", "a", "b", "b", "c", "c"]
    assert paired_bootstrap_diff(base, base, recipes) == (0.0, 0.0, 0.0, 1.0)
    diff, low, high, p = paired_bootstrap_diff([s + 1 for s in base], base, recipes, n_boot=999)
    # Every resample shows the same +1: the smallest p the test can give, 1/(n_boot + 1).
    assert (diff, low, high) == (1.0, 1.0, 1.0) and p == 1 / 1000


def test_paired_bootstrap_finds_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    recipes = np.repeat(np.arange(100), 4)
    base = rng.normal(3.0, 1.0, size=400)
    better = base + 0.3 + rng.normal(0.0, 0.5, size=400)
    diff, low, high, p = paired_bootstrap_diff(better, base, recipes, seed=1)
    assert low < diff < high and 0.2 < diff < 0.4 and p < 0.001
    noise = base + rng.normal(0.0, 0.5, size=400)
    _, low, high, p = paired_bootstrap_diff(noise, base, recipes, seed=1)
    assert low < 0 < high and p > 0.05
    with pytest.raises(ValueError):
        paired_bootstrap_diff([1.0, 2.0], [1.0], ["a", "b"])
