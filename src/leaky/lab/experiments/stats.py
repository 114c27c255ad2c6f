"""Small statistics for findings: means with t intervals, and paired comparisons."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from leaky.lab.experiments.base import comparison_verdict

__all__ = ["Paired", "all_hold", "mean_ci", "paired_comparison"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t confidence interval (NaN bounds for fewer than 2 values).

    Examples:
        >>> m, low, high = mean_ci([1.0, 2.0, 3.0])
        >>> m, round(low, 3), round(high, 3)
        (2.0, -0.484, 4.484)
    """
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return (math.nan, math.nan, math.nan)
    mean = statistics.fmean(values)
    if len(values) < 2:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf((1 + level) / 2, len(values) - 1)) * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return (mean, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """B minus A over matched seeds: mean difference, its 95% interval, p-value, verdict."""

    n: int
    mean_difference: float
    ci95: tuple[float, float]
    p_value: float
    verdict: str


def paired_comparison(
    a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True, alpha: float = 0.05
) -> Paired:
    """Paired t-test of ``b`` against ``a`` (same seeds, same order).

    Verdict: "holds" if ``b`` is significantly better, "does not hold" if significantly
    worse, "not significant" otherwise, "inconclusive" with fewer pairs than the seed
    rule asks (:data:`leaky.lab.experiments.base.MIN_SEEDS`: two pairs can agree by chance and
    show no spread at all).

    Examples:
        >>> paired_comparison([0.5, 0.6, 0.55], [0.5, 0.6, 0.55]).verdict
        'not significant'
    """
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if math.isfinite(x) and math.isfinite(y)]
    diffs = [y - x for x, y in pairs]
    mean, low, high = mean_ci(diffs)
    if comparison_verdict("holds", len(diffs)) == "inconclusive":  # the seed rule
        return Paired(len(diffs), mean, (low, high), math.nan, "inconclusive")
    if all(d == diffs[0] for d in diffs):
        p = 1.0 if diffs[0] == 0 else 0.0
    else:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    better = mean > 0 if higher_is_better else mean < 0
    verdict = ("holds" if better else "does not hold") if p < alpha else "not significant"
    return Paired(len(diffs), mean, (low, high), p, verdict)


def all_hold(verdicts: Sequence[str]) -> str:
    """One verdict for a claim that needs every comparison to hold.

    "inconclusive" if any is; "does not hold" if any comparison went the other way
    significantly; "holds" if all hold; "not significant" otherwise.

    Examples:
        >>> all_hold(["holds", "holds"]), all_hold(["holds", "not significant"])
        ('holds', 'not significant')
        >>> all_hold(["holds", "does not hold"]), all_hold(["inconclusive", "does not hold"])
        ('does not hold', 'inconclusive')
    """
    if "inconclusive" in verdicts:
        return "inconclusive"
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "not significant"
