"""The statistics behind every reported comparison, on :mod:`scipy.stats`: one module for the package.

``compare`` (mean ± std over seeds, the 95% t-interval, the paired t-test against the best
baseline, its Holm correction and the verdict in words) and the routing benchmark (its 95%
t-interval) both compute through here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "mean_std", "ci95", "paired_p_value", "holm", "verdict", "curve_auc"]

#: Two-sided significance level of the paired test behind the verdicts.
ALPHA = 0.05


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def ci95(values: Sequence[float]) -> float:
    """Half-width of the two-sided 95% t-interval of the mean, ``t(0.975, n - 1) * s / sqrt(n)``
    (0 for a single value)."""
    n = len(values)
    if n < 2:
        return 0.0
    return float(stats.t.ppf(0.975, n - 1) * stats.sem(values))


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value of ``a`` against ``b`` (the same seeds), uncorrected for the
    number of rows compared (:func:`holm` corrects a family of them). 1.0 for identical results;
    ``None`` where the test is undefined (one seed, or the same non-zero difference on every seed)."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(differences) < 2:
        return None
    if not differences.any():
        return 1.0
    if np.ptp(differences) == 0:
        return None
    return float(stats.ttest_rel(a, b).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values of a family of tests, in the order given.

    With the ``m`` defined p-values sorted ascending, ``p(1) <= ... <= p(m)``, the ``i``-th
    adjusted value is ``max_{j <= i} min(1, (m - j + 1) p(j))``: monotone in ``p`` and at most 1.
    Rejecting where the adjusted value is below ``alpha`` keeps the family-wise error rate at
    ``alpha``. ``None`` (a test that could not be run) stays ``None`` and does not count in ``m``.
    """
    defined = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    m, running = len(defined), 0.0
    for rank, i in enumerate(sorted(defined, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def verdict(delta: float, p_value: float | None, alpha: float = ALPHA) -> str:
    """``better`` / ``worse`` (the paired test at ``alpha``), ``no significant difference``, or
    ``no paired test`` where the test is undefined."""
    if p_value is None:
        return "no paired test"
    if p_value < alpha:
        return "better" if delta > 0 else "worse"
    return "no significant difference"


def curve_auc(levels: Sequence[float], accs: Sequence[float]) -> float:
    """Area under accuracy-vs-noise-level, normalised by the level range (MultiBench-style)."""
    return float(np.trapezoid(accs, levels) / (levels[-1] - levels[0]))
