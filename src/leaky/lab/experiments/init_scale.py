"""Initialisation: does a 30+ layer network keep its signal with Xavier, or only with Kaiming?

He et al. (2015) in small. A deep MLP of Leaky ReLU (or ReLU) units is initialised either
with Xavier (Glorot) weights, which ignore the rectifier halving the signal's second
moment, or with Kaiming weights using the activation's own gain sqrt(2 / (1 + a^2)). The
run records the standard deviation of every layer's activations at initialisation on real
inputs (MNIST-1D), then trains briefly and records whether the loss moved. The claim holds
when the last layer's activation std stays within a factor of 10 of the first layer's with
Kaiming and falls below 1/100 of it with Xavier.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from leaky.data import load_named_dataset
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    classification_dataset,
    comparison_verdict,
    known_activations,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import classifier_mlp_bytes
from leaky.lab.experiments.training import evaluate, train
from leaky.lab.models import mlp
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "InitConfig"]


@dataclass(frozen=True)
class InitConfig:
    """Defaults: the full experiment."""

    depth: int = 40  # hidden layers
    width: int = 256
    activations: tuple[str, ...] = ("leaky_relu", "relu")
    inits: tuple[str, ...] = ("xavier", "kaiming")
    dataset: str = "mnist1d"
    steps: int = 300
    batch_size: int = 128
    lr: float = 0.01
    seeds: int = 3  # the seed rule: a comparison rests on at least 3

    def __post_init__(self) -> None:
        positive(self, "depth", "width", "steps", "batch_size", "seeds")
        positive_numbers(self, "lr")
        known_activations(self.activations)
        classification_dataset(self.dataset)
        if not self.inits:
            raise ValueError("Expected at least one init")
        for init in self.inits:
            if init not in ("xavier", "kaiming", "torch"):
                raise ValueError(f"Expected inits among xavier, kaiming, torch; got {init!r}")


def _cells(config: InitConfig) -> list[dict]:
    return [{"activation": a, "init": i} for a in config.activations for i in config.inits]


def _memory(config: InitConfig) -> int:
    # SGD with momentum; 1,024 training samples go through once at initialisation.
    return classifier_mlp_bytes(config, optimizer_states=1)


def _run(config: InitConfig, cell: dict, seed: int) -> RunOutput:
    data = load_named_dataset(config.dataset)
    generator = torch.Generator().manual_seed(seed)
    model = mlp(
        math.prod(data.input_shape),
        data.num_classes or 1,
        depth=config.depth,
        width=config.width,
        activation=cell["activation"],
        init=cell["init"],
        generator=generator,
    )
    output = RunOutput()
    with torch.no_grad():
        h = data.x_train[:1024]
        for index, layer in enumerate(model):
            h = layer(h)
            if isinstance(layer, nn.Linear | nn.Flatten) or index == len(model) - 1:
                continue
            output.layers.append((0, str(index), "activation_std", float(h.std())))
    stds = [value for *_, value in output.layers]
    result = train(
        model,
        data,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        generator=generator,
        log_every=max(1, config.steps // 10),
    )
    output.metrics = [(step, "loss", loss) for step, loss in result.losses]
    output.diverged = result.diverged
    final = evaluate(model, data) if not result.diverged else {"accuracy": math.nan}
    chance = math.log(data.num_classes or 2)
    last_loss = result.losses[-1][1] if result.losses else math.nan
    output.results = {
        "first_std": stds[0],
        "last_std": stds[-1],
        "std_ratio_last_to_first": stds[-1] / stds[0] if stds[0] else 0.0,
        "test_accuracy": final["accuracy"],
        "final_loss": last_loss,
        "stalled": bool(result.diverged or not last_loss < 0.95 * chance),
        "data": data.description,  # what it trained on (MNIST: the full set or the split)
    }
    return output


def _summarize(config: InitConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    by_cell: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_cell[(run.cell["activation"], run.cell["init"])].append(run)
    findings = []
    for activation in config.activations:
        xavier, kaiming = by_cell.get((activation, "xavier")), by_cell.get((activation, "kaiming"))
        if not xavier or not kaiming:
            continue
        xr = statistics.median(r.results["std_ratio_last_to_first"] for r in xavier)
        kr = statistics.median(r.results["std_ratio_last_to_first"] for r in kaiming)
        xs = sum(r.results["stalled"] for r in xavier)
        ks = sum(r.results["stalled"] for r in kaiming)
        # Kept: within a factor of 10 of the first layer; faded: below 1/100 of it.
        kept = 0.1 < kr < 10 and xr < 0.01
        seeds = min(len(xavier), len(kaiming))  # Xavier against Kaiming: the seed rule
        findings.append(
            Finding(
                "init.kaiming_keeps",
                comparison_verdict("holds" if kept else "does not hold", seeds),
                {
                    "seeds": seeds,
                    "activation": activation,
                    "depth": config.depth,
                    "std_last_over_first_xavier": xr,
                    "std_last_over_first_kaiming": kr,
                    "stalled_xavier": f"{xs}/{len(xavier)}",
                    "stalled_kaiming": f"{ks}/{len(kaiming)}",
                },
            )
        )
    return findings


EXPERIMENT = Experiment(
    name="init",
    config=InitConfig,
    presets={
        "quick": {"depth": 32, "width": 128, "steps": 100, "seeds": 3},
        "tiny": {"depth": 30, "width": 32, "steps": 10, "seeds": 3, "activations": ("leaky_relu",)},
    },
    cells=_cells,
    axes=("activations", "inits"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    results={
        "first_std": float,
        "last_std": float,
        "std_ratio_last_to_first": float,
        "test_accuracy": float,
        "final_loss": float,
        "stalled": bool,
    },
    optional_results={"data": str},  # runs stored before it was recorded lack it
)
