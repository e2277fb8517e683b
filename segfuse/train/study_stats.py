"""Intervals over seeds for the loss study: Student-t intervals of a mean and of a difference of means.

Convention: a 95 percent two-sided interval, mean ± t_{0.975, n-1} * s / sqrt(n), with s the
sample standard deviation (n - 1 in the denominator). Differences of two losses' means use
Welch's interval (unequal variances), with the Welch-Satterthwaite degrees of freedom
rounded down (a slightly wider, conservative interval). With one value the interval is
undefined (NaN half-width). NaN values (a score undefined on a run) are left out. The t
quantile is the standard table for 1 to 30 degrees of freedom and, beyond, a line in 1/df
within 1e-3 of the exact quantile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# t_{0.975, df} for df = 1..30 (standard two-sided 95 percent critical values)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with integer ``df`` >= 1 degrees of freedom."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    if df <= 30:
        return _T975[df - 1]
    # beyond 30, t_{0.975, df} is within 1e-3 of a straight line in 1/df through (30, 2.042) and (inf, z)
    return _Z975 + (_T975[29] - _Z975) * 30.0 / df


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95 percent t interval: ``mean ± half_width``; ``n`` values."""

    mean: float
    half_width: float
    n: int
    low: float
    high: float

    def format(self, digits: int = 3, signed: bool = False) -> str:
        """``"0.812 ± 0.031"`` (``"+0.812 ± ..."`` with ``signed``); the mean alone when n = 1; "n/a" when n = 0."""
        if math.isnan(self.mean):
            return "n/a"
        mean = f"{self.mean:+.{digits}f}" if signed else f"{self.mean:.{digits}f}"
        if math.isnan(self.half_width):
            return mean
        return f"{mean} ± {self.half_width:.{digits}f}"


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _variance(values: list[float], mean: float) -> float:
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean and 95 percent t interval of ``values`` (NaN and None left out)."""
    values = _clean(values)
    if not values:
        return Interval(float("nan"), float("nan"), 0, float("nan"), float("nan"))
    mean = sum(values) / len(values)
    if len(values) == 1:
        return Interval(mean, float("nan"), 1, min(values), max(values))
    half = t_quantile_975(len(values) - 1) * math.sqrt(_variance(values, mean) / len(values))
    return Interval(mean, half, len(values), min(values), max(values))


def difference_interval(first: Sequence[float], second: Sequence[float]) -> Interval:
    """Welch's 95 percent interval of mean(first) - mean(second); ``low``, ``high`` are its ends."""
    a, b = _clean(first), _clean(second)
    if len(a) < 2 or len(b) < 2:
        nan = float("nan")
        mean = (sum(a) / len(a) - sum(b) / len(b)) if a and b else nan
        return Interval(mean, nan, min(len(a), len(b)), nan, nan)
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var_a, var_b = _variance(a, mean_a) / len(a), _variance(b, mean_b) / len(b)
    standard_error = math.sqrt(var_a + var_b)
    difference = mean_a - mean_b
    if standard_error == 0:
        return Interval(difference, 0.0, min(len(a), len(b)), difference, difference)
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    half = t_quantile_975(max(1, int(math.floor(df)))) * standard_error
    return Interval(difference, half, min(len(a), len(b)), difference - half, difference + half)
