"""wsfusion.train.stats against computations that do not go through scipy.stats: closed forms of
Student's t for 1 and 2 degrees of freedom, the regularised incomplete beta function, and Holm on
hand-checked families."""

import math
import statistics

import pytest
from scipy import special

from wsfusion.train.stats import ALPHA, ci95, curve_auc, holm, mean_std, paired_p_value, verdict


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df / (df + t^2)}(df / 2, 1 / 2)."""
    return float(special.betainc(df / 2, 0.5, df / (df + t * t)))


def paired_t(a, b) -> tuple[float, int]:
    d = [x - y for x, y in zip(a, b)]
    return statistics.mean(d) / (statistics.stdev(d) / math.sqrt(len(d))), len(d) - 1


def test_student_t_closed_forms_agree_with_the_incomplete_beta():
    for t in (0.3, 1.0, 2.5, 7.0):
        assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-12)  # Cauchy
        assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-12)


@pytest.mark.parametrize("a, b", [
    ([0.5, 0.7], [0.4, 0.45]),  # 1 degree of freedom
    ([0.5, 0.6, 0.7], [0.4, 0.55, 0.58]),  # 2
    ([0.81, 0.79, 0.80, 0.78, 0.83], [0.79, 0.80, 0.77, 0.78, 0.79]),  # 4
    ([0.2, 0.9, 0.4, 0.4, 0.6, 0.1], [0.3, 0.5, 0.5, 0.2, 0.6, 0.4]),
])
def test_paired_p_value_is_the_paired_t_test_written_out(a, b):
    t, df = paired_t(a, b)
    assert paired_p_value(a, b) == pytest.approx(t_two_sided_p(t, df), rel=1e-9, abs=1e-15)
    if df == 1:
        assert paired_p_value(a, b) == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)), rel=1e-9)
    if df == 2:
        assert paired_p_value(a, b) == pytest.approx(1 - abs(t) / math.sqrt(t * t + 2), rel=1e-9)
    assert paired_p_value(a, b) == paired_p_value(b, a)  # two-sided


def test_paired_p_value_where_the_test_is_undefined():
    assert paired_p_value([0.5], [0.4]) is None  # one seed
    assert paired_p_value([0.5, 0.6], [0.5, 0.6]) == 1.0  # identical
    assert paired_p_value([0.5, 0.6], [0.4, 0.5]) is None  # the same difference on every seed: no variance


def test_ci95_is_the_t_interval_written_out():
    # t(0.975, 1) = tan(0.475 pi) (Cauchy); t(0.975, 2) solves t / sqrt(2 + t^2) = 0.95.
    two = [0.7, 0.8]
    assert ci95(two) == pytest.approx(math.tan(0.475 * math.pi) * statistics.stdev(two) / math.sqrt(2), rel=1e-12)
    three = [0.7, 0.8, 0.95]
    t = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    assert t == pytest.approx(4.302652729911275)
    assert ci95(three) == pytest.approx(t * statistics.stdev(three) / math.sqrt(3), rel=1e-12)
    assert ci95([0.7]) == 0.0


def test_mean_std_and_auc():
    assert mean_std([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2))
    assert mean_std([0.5]) == (0.5, 0.0)
    # Trapezoids over levels 0..1, normalised by the range: a straight line from 1 to 0 has area 1/2.
    assert curve_auc([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert curve_auc([0.0, 0.25, 0.5], [0.8, 0.8, 0.8]) == pytest.approx(0.8)


def test_holm_on_a_hand_checked_family():
    # Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> 0.06 (never below the
    # value before it: the adjusted p-values keep the order of the raw ones).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1, and the cap carries over to every larger p-value.
    assert holm([0.4, 0.7, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    # Tests that could not run stay None and do not count in the family size.
    assert holm([None, 0.02, None, 0.01]) == [None, pytest.approx(0.02), None, pytest.approx(0.02)]
    assert holm([]) == [] and holm([None]) == [None]
    assert holm([0.01]) == [0.01]


def test_holm_is_monotone_capped_and_never_below_the_raw_p():
    import random

    rng = random.Random(0)
    for _ in range(200):
        p = [rng.random() ** 3 for _ in range(rng.randint(1, 15))]
        adjusted = holm(p)
        assert all(q >= r and q <= 1.0 for q, r in zip(adjusted, p))
        pairs = sorted(zip(p, adjusted))
        assert all(x[1] <= y[1] for x, y in zip(pairs, pairs[1:]))  # a larger raw p never gets a smaller adjusted one
        # Bonferroni bounds Holm from above: min(1, m p).
        assert all(q <= min(1.0, len(p) * r) + 1e-15 for q, r in zip(adjusted, p))


def test_verdict_words():
    assert verdict(0.02, 0.01) == "better" and verdict(-0.02, 0.01) == "worse"
    assert verdict(0.02, 0.2) == "no significant difference"
    assert verdict(0.02, ALPHA) == "no significant difference"  # strictly below alpha
    assert verdict(0.02, 0.03, alpha=0.01) == "no significant difference"
    assert verdict(0.0, None) == "no paired test"
