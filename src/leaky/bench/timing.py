"""Alternating A/B timing: the method every suite uses.

Warm up both, then run A and B in pairs, swapping which goes first each pair, so drift on
a shared machine hits both alike; the figure is the median of the per-pair ratios.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["Comparison", "compare", "synchronize"]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Comparison:
    """Samples of a candidate and its baseline, in seconds, one pair per entry."""

    candidate: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """Baseline time over candidate time, per pair (> 1: the candidate is faster)."""
        return [b / c for c, b in zip(self.candidate, self.baseline, strict=True) if c > 0]

    @property
    def speedup(self) -> float:
        """Median of the per-pair ratios."""
        return statistics.median(self.ratios)

    def speedup_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """A distribution-free interval for the median ratio, from its order statistics.

        The k-th smallest and k-th largest ratios, for the largest k with
        ``P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2``; with too few pairs for that,
        the smallest and largest ratio.

        Examples:
            >>> c = Comparison(candidate=[1.0] * 21, baseline=[0.80 + i / 100 for i in range(21)])
            >>> [round(v, 2) for v in c.speedup_interval()]
            [0.85, 0.95]
        """
        ratios = sorted(self.ratios)
        n, tail, below, k = len(ratios), (1 - confidence) / 2, 0.0, 0
        while k < n // 2:
            below += math.comb(n, k) / 2**n  # P(X <= k)
            if below > tail:
                break
            k += 1
        k = max(k, 1)
        return ratios[k - 1], ratios[n - k]

    def summary(self) -> dict[str, float]:
        """Medians in milliseconds, the speed-up, its range and its 95% interval."""
        ratios = self.ratios
        low, high = self.speedup_interval()
        return {
            "candidate_ms": statistics.median(self.candidate) * 1e3,
            "baseline_ms": statistics.median(self.baseline) * 1e3,
            "candidate_min_ms": min(self.candidate) * 1e3,
            "candidate_max_ms": max(self.candidate) * 1e3,
            "speedup": statistics.median(ratios),
            "speedup_min": min(ratios),
            "speedup_max": max(ratios),
            "speedup_ci_low": low,
            "speedup_ci_high": high,
            "pairs": len(ratios),
        }


def _time(fn: Callable[[], object], device: torch.device | str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def compare(
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    *,
    pairs: int = 7,
    warmup: int = 2,
    device: torch.device | str = "cpu",
    before_candidate: Callable[[], object] | None = None,
    before_baseline: Callable[[], object] | None = None,
) -> Comparison:
    """Time ``candidate`` against ``baseline`` in alternating pairs.

    ``before_candidate`` / ``before_baseline`` run, untimed, right before each call of
    theirs (warm-up included): one function timed in two states, such as a model with a
    monitor attached and detached.

    Examples:
        >>> c = compare(lambda: sum(range(1000)), lambda: sum(range(2000)), pairs=3, warmup=1)
        >>> len(c.ratios)
        3
    """
    if pairs < 1:
        raise ValueError(f"Expected at least 1 pair, got {pairs}")

    def timed(fn: Callable[[], object], before: Callable[[], object] | None) -> float:
        if before is not None:
            before()
        return _time(fn, device)

    for _ in range(warmup):
        timed(candidate, before_candidate)
        timed(baseline, before_baseline)
    result = Comparison()
    for i in range(pairs):
        if i % 2 == 0:
            result.candidate.append(timed(candidate, before_candidate))
            result.baseline.append(timed(baseline, before_baseline))
        else:
            result.baseline.append(timed(baseline, before_baseline))
            result.candidate.append(timed(candidate, before_candidate))
    return result
