"""Dying ReLU: do ReLU units die at high learning rates, and do Leaky ReLU units survive?

An MLP on MNIST-1D is trained with plain SGD at several learning rates, and in a second
variant with every hidden bias shifted negative at initialisation (``bias_shift``), which
pushes units towards the dead zone. Every ``log_every`` steps the fraction of dead units
(gradient 0 on every sample of a fixed probe batch of training data) and of never-active
units is stored, with the test accuracy at the end. Leaky ReLU and PReLU units can be
inactive but not dead, so for them the never-active fraction is the one to compare.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from leaky.data import load_dataset
from leaky.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    classification_dataset,
    positive,
    positive_numbers,
)
from leaky.experiments.footprint import classifier_mlp_bytes
from leaky.experiments.probes import unit_fractions
from leaky.experiments.training import evaluate, train
from leaky.models import mlp
from leaky.store import RunRecord

__all__ = ["DEAD_ENOUGH", "EXPERIMENT", "DyingConfig"]

DEAD_ENOUGH = 0.1  # the claim holds when at least this fraction of ReLU units died

_VARIANTS = {  # name -> (activation, options)
    "relu": ("relu", {}),
    "leaky_relu_0.01": ("leaky_relu", {"negative_slope": 0.01}),
    "leaky_relu_0.1": ("leaky_relu", {"negative_slope": 0.1}),
    "prelu": ("prelu", {}),
}


@dataclass(frozen=True)
class DyingConfig:
    """Defaults: the full sweep."""

    activations: tuple[str, ...] = ("relu", "leaky_relu_0.01", "leaky_relu_0.1", "prelu")
    lrs: tuple[float, ...] = (0.01, 0.1, 0.3)  # SGD with momentum 0.9
    bias_shifts: tuple[float, ...] = (0.0, -1.0)  # added to every hidden bias at init
    dataset: str = "mnist1d"
    depth: int = 4
    width: int = 128
    steps: int = 1000
    batch_size: int = 128
    log_every: int = 100
    probe_size: int = 1000  # training samples on which units are checked
    seeds: int = 2

    def __post_init__(self) -> None:
        positive(self, "depth", "width", "steps", "batch_size", "log_every", "probe_size", "seeds")
        positive_numbers(self, "lrs")
        classification_dataset(self.dataset)
        if not self.activations or not self.bias_shifts:
            raise ValueError("Expected at least one activation and one bias shift")
        for name in self.activations:
            if name not in _VARIANTS:
                raise ValueError(f"Expected activations among {', '.join(_VARIANTS)}; got {name!r}")


def _cells(config: DyingConfig) -> list[dict]:
    return [
        {"activation": a, "lr": lr, "bias_shift": b}
        for a in config.activations
        for lr in config.lrs
        for b in config.bias_shifts
    ]


def _memory(config: DyingConfig) -> int:
    # SGD with momentum; the probe batch is at most the training set (4,000 samples).
    return classifier_mlp_bytes(config, optimizer_states=1)


def _run(config: DyingConfig, cell: dict, seed: int) -> RunOutput:
    data = load_dataset(config.dataset)
    generator = torch.Generator().manual_seed(seed)
    activation, options = _VARIANTS[cell["activation"]]
    model = mlp(
        math.prod(data.input_shape),
        data.num_classes or 1,
        depth=config.depth,
        width=config.width,
        activation=activation,
        generator=generator,
        **options,
    )
    hidden = [m for m in model if isinstance(m, nn.Linear)][:-1]
    with torch.no_grad():
        for layer in hidden:
            layer.bias += cell["bias_shift"]
    probe = data.x_train[: config.probe_size]
    output = RunOutput()

    def log(step: int) -> None:
        dead, never = unit_fractions(model, probe)
        output.metrics += [(step, "dead_fraction", dead), (step, "never_active_fraction", never)]

    log(0)
    result = train(
        model,
        data,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=cell["lr"],
        generator=generator,
        log_every=config.log_every,
        on_log=log,
    )
    output.metrics += [(step, "loss", loss) for step, loss in result.losses]
    output.diverged = result.diverged
    final = [v for s, n, v in output.metrics if n == "dead_fraction"][-1]
    never = [v for s, n, v in output.metrics if n == "never_active_fraction"][-1]
    accuracy = math.nan if result.diverged else evaluate(model, data)["accuracy"]
    output.results = {
        "final_dead_fraction": final,
        "final_never_active_fraction": never,
        "test_accuracy": accuracy,
    }
    return output


def _or_minus_one(value: float) -> float:
    return -1.0 if math.isnan(value) else value


def _summarize(config: DyingConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    groups: dict[tuple[str, float, float], list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[(run.cell["activation"], run.cell["lr"], run.cell["bias_shift"])].append(run)
    if not groups:
        return []

    def mean(key: tuple[str, float, float], field: str) -> float:
        values = [r.results.get(field, math.nan) for r in groups[key]]
        values = [v for v in values if not math.isnan(v)]
        return statistics.fmean(values) if values else math.nan

    table = {
        f"{a} lr={lr:g} bias_shift={b:g}": {
            "dead": mean((a, lr, b), "final_dead_fraction"),
            "never_active": mean((a, lr, b), "final_never_active_fraction"),
            "accuracy": mean((a, lr, b), "test_accuracy"),
            "diverged": sum(r.status == "diverged" for r in groups[(a, lr, b)]),
        }
        for a, lr, b in sorted(groups)
    }
    relu = {k: v for k, v in groups.items() if k[0] == "relu"}
    findings = []
    if relu:
        worst = max(relu, key=lambda k: _or_minus_one(mean(k, "final_dead_fraction")))
        dead = mean(worst, "final_dead_fraction")
        findings.append(
            Finding(
                "dying.relu_dies",
                "inconclusive"
                if math.isnan(dead)
                else ("holds" if dead >= DEAD_ENOUGH else "does not hold"),
                {
                    "lr": worst[1],
                    "bias_shift": worst[2],
                    "dead_fraction": dead,
                    "threshold": DEAD_ENOUGH,
                    "cells": table,
                },
            )
        )
    leaky = sorted({k[0] for k in groups if k[0] != "relu"})
    if relu and leaky:
        # Where ReLU lost most units, do the others keep theirs active and learn as well?
        # (A fixed non-zero slope cannot die by construction, so "dead" alone proves
        # nothing for Leaky ReLU; the never-active fraction and the accuracy can fail.)
        _, lr, shift = worst
        relu_never = mean(worst, "final_never_active_fraction")
        relu_accuracy = mean(worst, "test_accuracy")
        rows = {
            name: {
                "dead": mean((name, lr, shift), "final_dead_fraction"),
                "never_active": mean((name, lr, shift), "final_never_active_fraction"),
                "accuracy": mean((name, lr, shift), "test_accuracy"),
            }
            for name in leaky
            if (name, lr, shift) in groups
        }

        def learned_more(accuracy: float) -> bool:
            # ReLU runs that all diverged learned nothing: any finite accuracy beats them.
            if math.isnan(relu_accuracy):
                return math.isfinite(accuracy)
            return accuracy > relu_accuracy

        kept = all(
            r["dead"] == 0 and r["never_active"] < relu_never and learned_more(r["accuracy"])
            for r in rows.values()
        )
        # With nothing run beside ReLU in its worst setting, there is nothing to compare.
        survived = ("holds" if kept else "does not hold") if rows else "inconclusive"
        findings.append(
            Finding(
                "dying.leaky_survives",
                survived,
                {
                    "lr": lr,
                    "bias_shift": shift,
                    "relu": {"dead": dead, "never_active": relu_never, "accuracy": relu_accuracy},
                    "others": rows,
                },
            )
        )
    return findings


EXPERIMENT = Experiment(
    name="dying",
    config=DyingConfig,
    presets={
        "quick": {
            "activations": ("relu", "leaky_relu_0.01", "prelu"),
            "lrs": (0.01, 0.3),
            "steps": 300,
            "log_every": 100,
            "seeds": 1,
        },
        "tiny": {
            "activations": ("relu", "leaky_relu_0.01"),
            "lrs": (0.3,),
            "bias_shifts": (-1.0,),
            "steps": 60,
            "log_every": 30,
            "width": 64,
            "seeds": 1,
        },
    },
    cells=_cells,
    axes=("activations", "lrs", "bias_shifts"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
)
