"""The born-dead probability of the chosen width and depth, estimated a little at a time.

It draws networks with the born-dead experiment's own Monte Carlo
(:func:`leaky.lab.experiments.born_dead.born_dead_fraction`: a 1-D input on
[-sqrt(3), sqrt(3)], He-normal weights, biases N(0, 1) as in Lu et al. 2019) in chunks small
enough to keep the page live, and reports the Wilson interval after each chunk.

Examples:
    >>> estimate = BornDeadEstimate(width=2, depth=10, negative_slope=0.01, seed=0)
    >>> while not estimate.done:
    ...     estimate.advance()
    >>> result = estimate.to_dict()
    >>> result["relu"]["trials"], result["leaky_relu"]["born_dead"]
    (1000, 0)
    >>> result["relu"]["probability"] > 0.5
    True
"""

from __future__ import annotations

import time
from typing import Any

import torch

from leaky.lab.experiments.base import wilson_interval
from leaky.lab.experiments.born_dead import born_dead_fraction

__all__ = ["BornDeadEstimate"]

TRIALS = 1000  # networks per activation: the experiment's quick preset
GRID_POINTS = 201  # inputs checked per network: the experiment's tiny preset
CHUNK_FLOPS = 4e7  # work per chunk: tens of milliseconds on one core
MAX_SECONDS = 10.0  # the largest networks stop early; the interval says how sure it is


class BornDeadEstimate:
    """Monte Carlo estimate of P(born dead) for ReLU and Leaky ReLU at one width and depth."""

    def __init__(self, *, width: int, depth: int, negative_slope: float, seed: int) -> None:
        self.key = (width, depth, negative_slope, seed)
        self.width, self.depth, self.negative_slope = width, depth, negative_slope
        # The experiment's seeding, so the playground and `leaky run born-dead` agree.
        self.generator = torch.Generator().manual_seed(seed * 1_000_003 + depth * 101 + width)
        self.counts = {"relu": [0, 0], "leaky_relu": [0, 0]}  # born dead, trials
        self.seconds = 0.0
        per_trial = 2.0 * depth * GRID_POINTS * width * max(width, 1)
        self.chunk = int(min(max(CHUNK_FLOPS // per_trial, 1), 250))

    @property
    def done(self) -> bool:
        """Whether the estimate has all its trials (or has used its time)."""
        return self.counts["relu"][1] >= TRIALS or self.seconds >= MAX_SECONDS

    def advance(self) -> None:
        """Draw one chunk of networks for each activation."""
        if self.done:
            return
        start = time.perf_counter()
        trials = min(self.chunk, TRIALS - self.counts["relu"][1])
        for activation, counts in self.counts.items():
            counts[0] += born_dead_fraction(
                activation,
                self.depth,
                self.width,
                trials=trials,
                grid_points=GRID_POINTS,
                bias_std=1.0,
                negative_slope=self.negative_slope,
                generator=self.generator,
            )
            counts[1] += trials
        self.seconds += time.perf_counter() - start

    def to_dict(self) -> dict[str, Any]:
        """Counts, probability and 95% Wilson interval per activation."""
        result: dict[str, Any] = {
            "width": self.width,
            "depth": self.depth,
            "done": self.done,
            "target_trials": TRIALS,
        }
        for activation, (dead, trials) in self.counts.items():
            low, high = wilson_interval(dead, trials)
            result[activation] = {
                "born_dead": dead,
                "trials": trials,
                "probability": dead / trials if trials else None,
                "ci95": [low, high],
            }
        return result
