"""Slope: how much does the negative slope matter, from ReLU (0) to a linear network (1)?

An MLP on MNIST-1D is trained with Leaky ReLU at each slope in the grid; slope 0 is ReLU
and slope 1 makes every "activation" the identity, so the whole network is linear (a
logistic regression in disguise: MNIST-1D's published logistic baseline is 32%). The run
stores test accuracy and, on the test set after training, the fraction of dead units (only
slope 0 can have any) and of units never active.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from leaky.data import load_dataset_or_file
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    classification_data,
    dataset_on_disk,
    mlp_only,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import classifier_mlp_bytes
from leaky.lab.experiments.probes import unit_fractions
from leaky.lab.experiments.stats import mean_ci, paired_comparison
from leaky.lab.experiments.training import evaluate, train
from leaky.lab.models import mlp
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "SlopeConfig"]


@dataclass(frozen=True)
class SlopeConfig:
    """Defaults: the full sweep."""

    slopes: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
    dataset: str = "mnist1d"  # a built-in task, or your data: file:PATH
    depth: int = 3
    width: int = 256
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    seeds: int = 5

    def __post_init__(self) -> None:
        positive(self, "depth", "width", "steps", "batch_size", "seeds")
        positive_numbers(self, "lr")
        classification_data(self.dataset)
        mlp_only(self.dataset)
        if not self.slopes or any(not 0 <= s <= 1 for s in self.slopes):
            raise ValueError(f"Expected slopes in [0, 1], got {self.slopes!r}")


def _cells(config: SlopeConfig) -> list[dict]:
    return [{"negative_slope": s} for s in config.slopes]


def _memory(config: SlopeConfig) -> int:
    # Adam keeps two tensors per parameter.
    return classifier_mlp_bytes(config, optimizer_states=2)


def _run(config: SlopeConfig, cell: dict, seed: int) -> RunOutput:
    data = load_dataset_or_file(config.dataset)
    generator = torch.Generator().manual_seed(seed)
    model = mlp(
        math.prod(data.input_shape),
        data.num_classes or 1,
        depth=config.depth,
        width=config.width,
        activation="leaky_relu",
        negative_slope=cell["negative_slope"],
        generator=generator,
    )
    result = train(
        model,
        data,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        optimizer="adam",
        generator=generator,
        log_every=max(1, config.steps // 10),
    )
    if result.diverged:  # a NaN network has no accuracy or dead units worth reporting
        accuracy = dead = never = math.nan
    else:
        accuracy = evaluate(model, data)["accuracy"]
        dead, never = unit_fractions(model, data.x_test)
    return RunOutput(
        metrics=[(step, "loss", loss) for step, loss in result.losses],
        results={"test_accuracy": accuracy, "dead_fraction": dead, "never_active_fraction": never},
        diverged=result.diverged,
    )


def _max(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


def _summarize(config: SlopeConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    acc: dict[float, dict[int, float]] = defaultdict(dict)
    dead: dict[float, list[float]] = defaultdict(list)
    diverged: dict[float, int] = defaultdict(int)
    for run in runs:
        slope = run.cell["negative_slope"]
        acc[slope][run.seed] = run.results.get("test_accuracy", math.nan)
        dead[slope].append(run.results.get("dead_fraction", math.nan))
        diverged[slope] += run.status == "diverged"
    if not acc:
        return []
    table = {
        f"{s:g}": {
            "accuracy": list(mean_ci(list(acc[s].values()))),
            "dead_fraction": _max(dead[s]),
            "diverged": diverged[s],
        }
        for s in sorted(acc)
    }

    def verdict(paired_verdict: str, *slopes: float) -> str:
        # As in the accuracy experiment: a seed lost to divergence is a result too, so
        # the comparison of the remaining seeds is no verdict.
        return "inconclusive" if any(diverged[s] for s in slopes) else paired_verdict

    findings = []
    hidden = [s for s in acc if s < 1.0]
    if 1.0 in acc and hidden:
        best = max(hidden, key=lambda s: mean_ci(list(acc[s].values()))[0])
        seeds = sorted(set(acc[1.0]) & set(acc[best]))
        paired = paired_comparison([acc[1.0][i] for i in seeds], [acc[best][i] for i in seeds])
        findings.append(
            Finding(
                "slope.linear_costs",
                verdict(paired.verdict, best, 1.0),
                {
                    "best_slope": best,
                    "accuracy_difference": paired.mean_difference,
                    "ci95": list(paired.ci95),
                    "p_value": paired.p_value,
                    "n": paired.n,
                    "by_slope": table,
                },
            )
        )
    if 0.0 in acc and 0.01 in acc:
        seeds = sorted(set(acc[0.0]) & set(acc[0.01]))
        paired = paired_comparison([acc[0.0][i] for i in seeds], [acc[0.01][i] for i in seeds])
        findings.append(
            Finding(
                "slope.leaky_vs_relu",
                verdict(paired.verdict, 0.0, 0.01),
                {
                    "accuracy_difference": paired.mean_difference,
                    "ci95": list(paired.ci95),
                    "p_value": paired.p_value,
                    "n": paired.n,
                    "dead_fraction_relu": _max(dead[0.0]),
                },
            )
        )
    return findings


EXPERIMENT = Experiment(
    name="slope",
    config=SlopeConfig,
    presets={
        "quick": {"slopes": (0.0, 0.01, 0.1, 0.3, 1.0), "steps": 600, "width": 128, "seeds": 3},
        "tiny": {"slopes": (0.0, 0.01, 1.0), "steps": 300, "width": 64, "seeds": 2},
    },
    cells=_cells,
    axes=("slopes",),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    check_data=dataset_on_disk,
    user_data="dataset",
    # NaN when the run diverged.
    results={"test_accuracy": float, "dead_fraction": float, "never_active_fraction": float},
)
