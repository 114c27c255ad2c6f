"""Born dead: how often is a ReLU network constant over its whole input domain at birth?

Lu, Shin, Su and Karniadakis (2019, "Dying ReLU and Initialization") show that a deep,
narrow ReLU network with weights and biases drawn from symmetric distributions is "born
dead" with a probability that tends to 1 with depth: some hidden layer outputs 0 for every
input, and the network is a constant function that no gradient can revive. Here the
probability is estimated by Monte Carlo, with all trials of a cell batched as tensors: a
1-D input on [-sqrt(3), sqrt(3)] (a dense grid), He-normal weights N(0, 2 / fan_in) and
normal biases N(0, bias_std^2). A network counts as born dead when some hidden layer has no
unit positive at any grid point. Leaky ReLU never outputs exactly 0 for a non-zero input, so
its networks cannot be born dead; the experiment checks that too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    known_activations,
    non_negative_numbers,
    positive,
    positive_numbers,
    wilson_interval,
)
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "BornDeadConfig", "born_dead_fraction"]


@dataclass(frozen=True)
class BornDeadConfig:
    """Defaults: the full grid (a few minutes on 2 cores)."""

    depths: tuple[int, ...] = (2, 4, 6, 8, 10, 15, 20)  # hidden layers
    widths: tuple[int, ...] = (2, 3, 4, 5, 10)  # units per hidden layer
    activations: tuple[str, ...] = ("relu", "leaky_relu")
    negative_slope: float = 0.01  # for leaky_relu
    trials: int = 2000  # networks drawn per cell (>= 1,000 for a useful interval)
    grid_points: int = 1001  # inputs checked on [-sqrt(3), sqrt(3)]
    bias_std: float = 1.0  # biases ~ N(0, bias_std^2), symmetric as in Lu et al.; 0: none
    seeds: int = 1

    def __post_init__(self) -> None:
        positive(self, "depths", "widths", "trials", "grid_points", "seeds")
        # A Leaky ReLU of slope 0 is ReLU: its findings would name the wrong activation.
        positive_numbers(self, "negative_slope")
        non_negative_numbers(self, "bias_std")  # 0: no biases, as in Lu et al.'s figures
        known_activations(self.activations, ("relu", "leaky_relu"))


def born_dead_fraction(
    activation: str,
    depth: int,
    width: int,
    *,
    trials: int,
    grid_points: int,
    bias_std: float,
    negative_slope: float,
    generator: torch.Generator,
) -> int:
    """How many of ``trials`` random networks have a hidden layer that is 0 everywhere."""
    bound = math.sqrt(3.0)
    x = torch.linspace(-bound, bound, grid_points, dtype=torch.float64)
    h = x.view(1, -1, 1).expand(trials, -1, 1)  # (trials, points, features)
    dead = torch.zeros(trials, dtype=torch.bool)
    fan_in = 1
    for _ in range(depth):
        w = torch.randn(trials, fan_in, width, generator=generator, dtype=torch.float64)
        w *= math.sqrt(2.0 / fan_in)
        b = torch.randn(trials, 1, width, generator=generator, dtype=torch.float64) * bias_std
        z = torch.baddbmm(b, h, w)
        if activation == "relu":
            h = torch.relu(z)
        else:
            h = torch.nn.functional.leaky_relu(z, negative_slope)
        dead |= ~(h != 0).any(dim=2).any(dim=1)
        fan_in = width
    return int(dead.sum())


def _memory(config: BornDeadConfig) -> int:
    # float64 (trials, points, width) tensors: a layer's input, its pre-activation and its
    # output live at once; the weights are (trials, width, width).
    width = max(config.widths)
    trials = config.trials
    return 8 * (3 * trials * config.grid_points * width + trials * width * (width + 2))


def _cells(config: BornDeadConfig) -> list[dict]:
    return [
        {"activation": a, "depth": d, "width": w}
        for a in config.activations
        for w in config.widths
        for d in config.depths
    ]


def _run(config: BornDeadConfig, cell: dict, seed: int) -> RunOutput:
    generator = torch.Generator().manual_seed(
        seed * 1_000_003 + cell["depth"] * 101 + cell["width"]
    )
    dead = born_dead_fraction(
        cell["activation"],
        cell["depth"],
        cell["width"],
        trials=config.trials,
        grid_points=config.grid_points,
        bias_std=config.bias_std,
        negative_slope=config.negative_slope,
        generator=generator,
    )
    low, high = wilson_interval(dead, config.trials)
    return RunOutput(
        results={
            "born_dead": dead,
            "trials": config.trials,
            "probability": dead / config.trials,
            "ci_low": low,
            "ci_high": high,
        }
    )


def _summarize(config: BornDeadConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    pooled: dict[tuple[str, int, int], list[int]] = defaultdict(lambda: [0, 0])
    for run in runs:
        key = (run.cell["activation"], run.cell["width"], run.cell["depth"])
        pooled[key][0] += run.results["born_dead"]
        pooled[key][1] += run.results["trials"]
    table = {
        f"{a} width={w} depth={d}": {
            "probability": dead / n,
            "ci95": list(wilson_interval(dead, n)),
            "trials": n,
        }
        for (a, w, d), (dead, n) in sorted(pooled.items())
    }
    findings = []
    relu = {k: v for k, v in pooled.items() if k[0] == "relu"}
    if relu:
        narrow = min(w for _, w, _ in relu)
        deep = max(d for _, w, d in relu if w == narrow)
        dead, n = relu[("relu", narrow, deep)]
        low, high = wilson_interval(dead, n)
        verdict = "holds" if low > 0.5 else ("does not hold" if high < 0.5 else "not significant")
        findings.append(
            Finding(
                "born-dead.relu_born_dead",
                verdict,
                {
                    "width": narrow,
                    "depth": deep,
                    "probability": dead / n,
                    "ci95": [low, high],
                    "trials": n,
                    "cells": table,
                },
            )
        )
    leaky = {k: v for k, v in pooled.items() if k[0] == "leaky_relu"}
    if leaky:
        total_dead = sum(d for d, _ in leaky.values())
        total = sum(n for _, n in leaky.values())
        low, high = wilson_interval(total_dead, total)
        findings.append(
            Finding(
                "born-dead.leaky_never",
                "holds" if total_dead == 0 else "does not hold",
                {"born_dead": total_dead, "trials": total, "ci95": [low, high]},
            )
        )
    return findings


EXPERIMENT = Experiment(
    name="born-dead",
    config=BornDeadConfig,
    presets={
        "quick": {"depths": (2, 5, 10, 20), "widths": (2, 3, 5, 10), "trials": 1000},
        "tiny": {"depths": (2, 10), "widths": (2, 10), "trials": 1000, "grid_points": 201},
    },
    cells=_cells,
    axes=("depths", "widths", "activations"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    results={
        "born_dead": int,
        "trials": int,
        "probability": float,
        "ci_low": float,
        "ci_high": float,
    },
)
