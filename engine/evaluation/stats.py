"""Intervals and paired tests for reports: Wilson, clustered bootstrap, exact McNemar."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Hashable, Optional, Sequence

import numpy as np


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence!r}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, as fractions in [0, 1].

    Assumes `n` independent trials with one success probability. Unlike the normal
    ("Wald") interval it stays inside [0, 1] and keeps close to its nominal coverage for
    small n and for proportions near 0 or 1. It ignores clustering: when trials share a
    recipe, the true interval is somewhat wider.

    Raises ValueError when n < 1, successes is outside [0, n], or confidence is not in (0, 1).
    """
    _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"a Wilson interval needs at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie between 0 and n={n}, got {successes}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; say so rather than leave rounding noise.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _cluster_codes(clusters: Sequence[Hashable], n: int) -> tuple[np.ndarray, int]:
    if len(clusters) != n:
        raise ValueError(f"got {n} values but {len(clusters)} cluster labels")
    codes: dict[Hashable, int] = {}
    labels = np.fromiter((codes.setdefault(c, len(codes)) for c in clusters), dtype=np.int64,
                         count=n)
    return labels, len(codes)


def _cluster_resample_means(values: np.ndarray, clusters: Sequence[Hashable], n_boot: int,
                            seed: int) -> np.ndarray:
    """`n_boot` means of `values` over clusters drawn with replacement (all in one numpy pass).

    Each resample draws as many clusters as there are, with replacement, and takes the mean
    over every item of the drawn clusters (a cluster drawn twice counts twice)."""
    labels, k = _cluster_codes(clusters, len(values))
    sums = np.bincount(labels, weights=values, minlength=k)
    counts = np.bincount(labels, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    # Drawn in chunks so memory stays small (n_boot × k int64s) for big evaluations.
    means = np.empty(n_boot)
    chunk = max(1, 4_000_000 // max(k, 1))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        drawn = rng.integers(0, k, size=(stop - start, k))
        means[start:stop] = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    return means


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def cluster_bootstrap_mean(
    values: Sequence[float],
    clusters: Sequence[Hashable],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `values`, resampling whole clusters.

    `clusters[i]` names the cluster of `values[i]` (for ddft, the recipe a video shows):
    items of one cluster may be correlated, clusters are assumed independent and exchangeable.
    Each resample draws as many clusters as there are, with replacement, and averages every
    item in them. With few clusters (under ~20) the percentile interval is too narrow; with
    one cluster it collapses to the mean. Deterministic for a given `seed`.

    Raises ValueError for no values, mismatched lengths, n_boot < 1 or a bad confidence.
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("a bootstrap interval needs at least one value")
    means = _cluster_resample_means(data, clusters, n_boot, seed)
    return _percentile_interval(means, confidence)


def binomial_cdf(k: int, n: int, p: float = 0.5) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly term by term."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.5:
        # Exact integer arithmetic: the sum of binomial coefficients over 2**n.
        return sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def mcnemar(b: int, c: int, *, exact: bool = True) -> float:
    """Two-sided p-value of McNemar's test on paired yes/no outcomes.

    `b` counts pairs where only the first variant said yes, `c` pairs where only the second
    did; pairs where both agree carry no information and are not passed. Under the null
    hypothesis (equal yes rates) each discordant pair falls either way with probability 1/2.

    exact=True (the default, and what reports use): the exact binomial test,
    p = min(1, 2 · P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2). Valid for any counts.
    exact=False: the chi-square statistic with Edwards' continuity correction,
    (|b - c| - 1)² / (b + c) on one degree of freedom; an approximation that is fine when
    b + c is above about 25.

    Assumes the pairs are independent (it ignores clustering by recipe). Returns 1.0 when
    there are no discordant pairs. Raises ValueError for negative counts.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    if exact:
        return min(1.0, 2.0 * binomial_cdf(min(b, c), n))
    statistic = max(0.0, abs(b - c) - 1.0) ** 2 / n
    # The chi-square(1) survival function: P(Z² >= x) = erfc(sqrt(x / 2)).
    return math.erfc(math.sqrt(statistic / 2))


def paired_bootstrap_diff(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[Hashable],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float, float]:
    """Mean of a - b over pairs, its clustered percentile bootstrap interval and a two-sided p.

    `a[i]` and `b[i]` are the two variants' scores on the same item, `clusters[i]` that
    item's cluster (the recipe); clusters are resampled whole, as in `cluster_bootstrap_mean`.
    The p-value tests "mean difference = 0" by shifting the bootstrap distribution of the
    mean difference to zero: p = (1 + #{|d* - d| >= |d|}) / (n_boot + 1), so it is never 0
    and its resolution is 1 / (n_boot + 1). Same assumptions as `cluster_bootstrap_mean`.

    Returns (mean_diff, low, high, p). Raises ValueError for no pairs, lengths that differ,
    n_boot < 1 or a bad confidence.
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired scores differ in length: {first.size} and {second.size}")
    if first.size == 0:
        raise ValueError("a paired bootstrap needs at least one pair")
    diffs = first - second
    observed = float(diffs.mean())
    means = _cluster_resample_means(diffs, clusters, n_boot, seed)
    low, high = _percentile_interval(means, confidence)
    extreme = int(np.count_nonzero(np.abs(means - observed) >= abs(observed) - 1e-12))
    p = (1 + extreme) / (n_boot + 1)
    return observed, low, high, min(1.0, p)


def holm(p_values: Sequence[Optional[float]]) -> list[Optional[float]]:
    """Holm's step-down adjustment of a family of p-values (None: no test, left out of the
    family and returned as None): the i-th smallest of m is multiplied by m - i, then made
    monotone and capped at 1."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[Optional[float]] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
