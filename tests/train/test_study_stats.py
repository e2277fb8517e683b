"""Intervals over seeds, against scipy.stats (Student t, Welch)."""

import math

import numpy as np
import pytest
from scipy import stats

from segfuse.train.study_stats import difference_interval, mean_interval, t_quantile_975


def test_t_quantile_matches_scipy():
    for df in list(range(1, 31)) + [31, 40, 60, 120, 1000]:
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)
    with pytest.raises(ValueError, match="df must be an int >= 1"):
        t_quantile_975(0)


@pytest.mark.parametrize("values", [[0.83, 0.0, 0.0, 0.91, 0.88], [0.5, 0.52], list(np.linspace(0.1, 0.9, 12))])
def test_convention_mean_interval_is_the_student_t_interval(values):
    interval = mean_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert interval.mean == pytest.approx(np.mean(values))
    assert interval.mean - interval.half_width == pytest.approx(low, abs=2e-3)
    assert interval.mean + interval.half_width == pytest.approx(high, abs=2e-3)
    assert (interval.low, interval.high, interval.n) == (min(values), max(values), len(values))


def test_nan_values_are_left_out_and_one_value_has_no_interval():
    assert mean_interval([0.5, float("nan"), 0.7]).n == 2
    single = mean_interval([0.4])
    assert single.mean == 0.4 and math.isnan(single.half_width) and single.format() == "0.400"
    assert mean_interval([]).format() == "n/a"
    assert mean_interval([0.1, 0.3]).format(2) == f"0.20 ± {12.706 * 0.1:.2f}"
    assert mean_interval([0.1, 0.3]).format(1, signed=True) == "+0.2 ± 1.3"


def test_welch_interval_uses_the_rounded_down_welch_degrees_of_freedom():
    a, b = [0.88, 0.89, 0.87, 0.9, 0.886], [0.83, 0.0, 0.0, 0.2, 0.86]
    interval = difference_interval(a, b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, math.floor(df)) * math.sqrt(va + vb)
    assert interval.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert interval.half_width == pytest.approx(half, abs=2e-3)
    assert interval.low == pytest.approx(interval.mean - interval.half_width)
    # with the exact (fractional) df the interval is a little narrower: ours is conservative
    exact = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert interval.low <= exact.low and interval.high >= exact.high
    assert math.isnan(difference_interval([0.1], [0.2, 0.3]).half_width)
