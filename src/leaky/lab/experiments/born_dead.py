"""Born dead: how often is a ReLU network constant over its whole input domain at birth?

Lu, Shin, Su and Karniadakis (2019, "Dying ReLU and Initialization") show that a deep,
narrow ReLU network with weights and biases drawn from symmetric distributions is "born
dead" with a probability that tends to 1 with depth: some hidden layer outputs 0 for every
input, and the network is a constant function that no gradient can revive. Here the
probability is estimated by Monte Carlo, with all trials of a cell batched as tensors: a
1-D input on [-sqrt(3), sqrt(3)] (a dense grid), He-normal weights N(0, 2 / fan_in) and
normal biases N(0, bias_std^2) (init ``he``), or the randomized asymmetric initialisation
the same paper proposes against it (init ``rai``: each unit's weights and bias from N(0,
0.6007^2 / fan_in), one of them replaced by a Beta(2, 1) draw; see
:func:`leaky.core.init.rai_parameters`). A network counts as born dead when some hidden layer
has no unit positive at any grid point. Leaky ReLU never outputs exactly 0 for a non-zero
input, so its networks cannot be born dead; the experiment checks that too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from leaky.core.init import rai_parameters
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

_INITS = ("he", "rai")


@dataclass(frozen=True)
class BornDeadConfig:
    """Defaults: the full grid (a few minutes on 2 cores)."""

    depths: tuple[int, ...] = (2, 4, 6, 8, 10, 15, 20)  # hidden layers
    widths: tuple[int, ...] = (2, 3, 4, 5, 10)  # units per hidden layer
    activations: tuple[str, ...] = ("relu", "leaky_relu")
    inits: tuple[str, ...] = ("he", "rai")  # He normal (bias_std) or Lu et al.'s RAI
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
        unknown = [init for init in self.inits if init not in _INITS]
        if unknown or not self.inits:
            raise ValueError(
                f"Expected inits to be some of {', '.join(_INITS)}, but got {self.inits!r}"
            )


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
    init: str = "he",
) -> int:
    """How many of ``trials`` random networks have a hidden layer that is 0 everywhere.

    ``init``: ``"he"`` (weights N(0, 2 / fan_in), biases N(0, bias_std^2)) or ``"rai"``
    (:func:`leaky.core.init.rai_parameters`, weights and biases together; ``bias_std`` is
    not used).
    """
    bound = math.sqrt(3.0)
    x = torch.linspace(-bound, bound, grid_points, dtype=torch.float64)
    h = x.view(1, -1, 1).expand(trials, -1, 1)  # (trials, points, features)
    dead = torch.zeros(trials, dtype=torch.bool)
    fan_in = 1
    for _ in range(depth):
        if init == "rai":
            v = rai_parameters(
                width, fan_in, batch=(trials,), generator=generator, dtype=torch.float64
            )  # (trials, width, fan_in + 1): each unit's weights, then its bias
            w, b = v[:, :, :fan_in].transpose(1, 2), v[:, :, fan_in:].transpose(1, 2)
        else:
            w = torch.randn(trials, fan_in, width, generator=generator, dtype=torch.float64)
            w *= math.sqrt(2.0 / fan_in)
            b = torch.randn(trials, 1, width, generator=generator, dtype=torch.float64)
            b *= bias_std
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
        {"activation": a, "init": i, "depth": d, "width": w}
        for a in config.activations
        for i in config.inits
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
        init=_init(cell),
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


def _init(cell: dict) -> str:
    # Runs stored before the init axis existed drew He-normal networks.
    return str(cell.get("init", "he"))


def pooled_counts(runs: Sequence[RunRecord]) -> dict[tuple[str, str, int, int], list[int]]:
    """(activation, init, width, depth) -> [networks born dead, networks drawn], over seeds."""
    pooled: dict[tuple[str, str, int, int], list[int]] = defaultdict(lambda: [0, 0])
    for run in runs:
        key = (run.cell["activation"], _init(run.cell), run.cell["width"], run.cell["depth"])
        pooled[key][0] += run.results["born_dead"]
        pooled[key][1] += run.results["trials"]
    return pooled


def _summarize(config: BornDeadConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    by_init = pooled_counts(runs)
    table = {
        f"{a} {i} width={w} depth={d}": {
            "probability": dead / n,
            "ci95": list(wilson_interval(dead, n)),
            "trials": n,
        }
        for (a, i, w, d), (dead, n) in sorted(by_init.items())
    }
    # The He-normal networks, as the findings have always read them.
    pooled = {(a, w, d): v for (a, i, w, d), v in by_init.items() if i == "he"}
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
    findings += _rai_finding(by_init, table)
    leaky: dict[tuple[str, int, int], list[int]] = {}  # every init: none can be born dead
    for (a, _, w, d), (dead, n) in by_init.items():
        if a == "leaky_relu":
            leaky.setdefault((a, w, d), [0, 0])
            leaky[(a, w, d)][0] += dead
            leaky[(a, w, d)][1] += n
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


def _rai_finding(by_init: dict[tuple[str, str, int, int], list[int]], table: dict) -> list[Finding]:
    # RAI against He normal on the narrowest, deepest ReLU cell both drew: is it born dead
    # less often? Two independent binomial samples: their Wilson intervals apart or not.
    both = {
        (w, d)
        for (a, i, w, d) in by_init
        if a == "relu" and i == "rai" and ("relu", "he", w, d) in by_init
    }
    if not both:
        return []
    narrow = min(w for w, _ in both)
    deep = max(d for w, d in both if w == narrow)
    he, rai = by_init[("relu", "he", narrow, deep)], by_init[("relu", "rai", narrow, deep)]
    he_ci, rai_ci = wilson_interval(*he), wilson_interval(*rai)
    if rai_ci[1] < he_ci[0]:
        verdict = "holds"
    elif rai_ci[0] > he_ci[1]:
        verdict = "does not hold"
    else:
        verdict = "not significant"
    return [
        Finding(
            "born-dead.rai_fewer",
            verdict,
            {
                "width": narrow,
                "depth": deep,
                "he": he[0] / he[1],
                "he_ci95": list(he_ci),
                "rai": rai[0] / rai[1],
                "rai_ci95": list(rai_ci),
                "trials": rai[1],
                "cells": table,
            },
        )
    ]


EXPERIMENT = Experiment(
    name="born-dead",
    config=BornDeadConfig,
    presets={
        "quick": {"depths": (2, 5, 10, 20), "widths": (2, 3, 5, 10), "trials": 1000},
        "tiny": {
            "depths": (2, 10),
            "widths": (2, 10),
            "trials": 1000,
            "grid_points": 201,
            "inits": ("he",),
        },
    },
    cells=_cells,
    axes=("depths", "widths", "activations", "inits"),
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
