"""Dying ReLU: do ReLU units die at high learning rates, and do Leaky ReLU units survive?

An MLP on MNIST-1D is trained with plain SGD at several learning rates, and in a second
variant with every hidden bias shifted negative at initialisation (``bias_shift``), which
pushes units towards the dead zone. Every ``log_every`` steps the fraction of dead units
(gradient 0 on every sample of a fixed probe batch of training data) and of never-active
units is stored, with the test accuracy at the end. Leaky ReLU and PReLU units can be
inactive but not dead, so for them the never-active fraction is the one to compare.

The summary reports the whole grid (learning rate x bias shift x activation): dead and
never-active fractions and accuracy per cell, with 95% t intervals over seeds and the
diverged runs counted. Where ReLU fails (at least ``DEAD_ENOUGH`` of its units dead, or a
run diverged), each other activation is compared with ReLU on accuracy by a paired test
over the same seeds (a diverged run counts as chance), and the cells fall in three
regions: it recovers (significantly more accurate), neither learns (both within
``LEARNED_ABOVE_CHANCE`` of chance), or no significant gain.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from leaky.data import load_dataset_or_file
from leaky.diagnosis.convert import convert
from leaky.diagnosis.repair import recycle
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    classification_data,
    comparison_verdict,
    dataset_on_disk,
    mlp_only,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import classifier_mlp_bytes
from leaky.lab.experiments.probes import dormant_units, unit_fractions
from leaky.lab.experiments.stats import mean_ci, paired_comparison
from leaky.lab.experiments.training import evaluate, train
from leaky.lab.models import mlp
from leaky.lab.store import RunRecord

__all__ = ["DEAD_ENOUGH", "EXPERIMENT", "LEARNED_ABOVE_CHANCE", "REMEDIES", "DyingConfig"]

DEAD_ENOUGH = 0.1  # the claim holds when at least this fraction of ReLU units died
# A cell where no activation's mean accuracy gets this far above chance: neither learned.
LEARNED_ABOVE_CHANCE = 0.1

_VARIANTS = {  # name -> (activation, options)
    "relu": ("relu", {}),
    "leaky_relu_0.01": ("leaky_relu", {"negative_slope": 0.01}),
    "leaky_relu_0.1": ("leaky_relu", {"negative_slope": 0.1}),
    "leaky_relu_0.2": ("leaky_relu", {"negative_slope": 0.2}),
    "prelu": ("prelu", {}),
    # Remedies that keep ReLU (see REMEDIES):
    "relu_lr/10": ("relu", {}),
    "relu_redo": ("relu", {}),
    "relu_to_leaky": ("relu", {}),
}
# ReLU networks repaired rather than replaced: a tenth of the cell's learning rate; ReDo
# (Sokar et al. 2023), recycling the τ-dormant units every ``redo_every`` steps; converted
# to Leaky ReLU (slope 0.01) at the first log where the probe finds a dead unit.
REMEDIES = ("relu_lr/10", "relu_redo", "relu_to_leaky")


@dataclass(frozen=True)
class DyingConfig:
    """Defaults: the full sweep."""

    activations: tuple[str, ...] = ("relu", "leaky_relu_0.01", "leaky_relu_0.1", "prelu")
    lrs: tuple[float, ...] = (0.01, 0.1, 0.3)  # SGD with momentum 0.9
    bias_shifts: tuple[float, ...] = (0.0, -1.0)  # added to every hidden bias at init
    dataset: str = "mnist1d"  # a built-in task, or your data: file:PATH
    depth: int = 4
    width: int = 128
    steps: int = 1000
    batch_size: int = 128
    log_every: int = 100
    probe_size: int = 1000  # training samples on which units are checked
    seeds: int = 5
    redo_every: int = 100  # relu_redo: steps between recyclings
    redo_tau: float = 0.025  # relu_redo: τ of the τ-dormant units it recycles (0: the dead)

    def __post_init__(self) -> None:
        positive(self, "depth", "width", "steps", "batch_size", "log_every", "probe_size", "seeds")
        positive(self, "redo_every")
        if not 0 <= self.redo_tau < 1:
            raise ValueError(f"Expected redo_tau in [0, 1), but got {self.redo_tau}")
        positive_numbers(self, "lrs")
        classification_data(self.dataset)
        mlp_only(self.dataset)
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
    data = load_dataset_or_file(config.dataset)
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
    remedy = cell["activation"] if cell["activation"] in REMEDIES else None
    converted: list[int] = []

    def log(step: int) -> None:
        dead, never = unit_fractions(model, probe)
        output.metrics += [(step, "dead_fraction", dead), (step, "never_active_fraction", never)]
        if remedy == "relu_to_leaky" and dead > 0 and not converted:
            convert(model, "leaky_relu", negative_slope=0.01)
            converted.append(step)
            output.metrics.append((step, "converted", 1.0))

    def recycle_dormant(step: int, optimizer: torch.optim.Optimizer) -> None:
        if step % config.redo_every:
            return
        dormant = dormant_units(model, probe, config.redo_tau)
        if dormant:
            done = recycle(model, dormant, probe[:2], optimizer=optimizer, generator=generator)
            count = sum(len(r.units) for r in done)
            output.metrics.append((step, "recycled_units", float(count)))

    log(0)
    result = train(
        model,
        data,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=cell["lr"] / 10 if remedy == "relu_lr/10" else cell["lr"],
        generator=generator,
        log_every=config.log_every,
        on_log=log,
        on_update=recycle_dormant if remedy == "relu_redo" else None,
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
        "chance": 1 / (data.num_classes or 1),
    }
    return output


def chance_of(runs: Sequence[RunRecord]) -> float:
    # Runs stored before "chance" was recorded trained on 10-class data.
    return next((r.results["chance"] for r in runs if "chance" in r.results), 0.1)


def accuracy_or_chance(run: RunRecord, chance: float) -> float:
    # A diverged network learned nothing: it counts as guessing in the paired tests.
    value = run.results.get("test_accuracy", math.nan)
    return chance if run.status == "diverged" or not math.isfinite(value) else value


def cell_stats(runs: Sequence[RunRecord], chance: float) -> dict[str, Any]:
    def interval(field: str) -> list[float]:
        return list(mean_ci([r.results.get(field, math.nan) for r in runs]))

    return {
        "dead": interval("final_dead_fraction"),
        "never_active": interval("final_never_active_fraction"),
        "accuracy": list(mean_ci([accuracy_or_chance(r, chance) for r in runs])),
        "diverged": sum(r.status == "diverged" for r in runs),
        "seeds": len(runs),
    }


def cell_name(lr: float, shift: float, depth: int | None = None) -> str:
    """A cell's name in the findings: ``lr=0.3 bias_shift=-1`` (and ``depth=8`` if given)."""
    name = f"lr={lr:g} bias_shift={shift:g}"
    return name if depth is None else f"{name} depth={depth}"


def _summarize(config: DyingConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    groups = group_runs(runs)
    if not groups:
        return []
    chance = chance_of(runs)
    table = {
        f"{a} {cell_name(lr, b)}": cell_stats(groups[(a, lr, b)], chance)
        for a, lr, b in sorted(groups)
    }
    relu = {(lr, b): runs for (a, lr, b), runs in groups.items() if a == "relu"}
    findings = []
    if relu:
        stats = {k: cell_stats(v, chance) for k, v in relu.items()}

        def dead_or_minus_one(key: tuple[float, float]) -> float:
            value = stats[key]["dead"][0]
            return -1.0 if math.isnan(value) else value

        worst = max(stats, key=dead_or_minus_one)
        dead, low, high = stats[worst]["dead"]
        findings.append(
            Finding(
                "dying.relu_dies",
                "inconclusive"
                if math.isnan(dead)
                else ("holds" if dead >= DEAD_ENOUGH else "does not hold"),
                {
                    "lr": worst[0],
                    "bias_shift": worst[1],
                    "dead_fraction": dead,
                    "ci95": [low, high],
                    "seeds": stats[worst]["seeds"],
                    "threshold": DEAD_ENOUGH,
                    "cells": table,
                },
            )
        )
    for name in config.activations:
        if name == "relu" or not relu:
            continue
        finding = recovery(name, groups, relu, chance)
        if finding is not None:
            findings.append(finding)
    return findings


def group_runs(runs: Sequence[RunRecord]) -> dict[tuple[str, float, float], list[RunRecord]]:
    """(activation, lr, bias shift) -> the runs of that cell, over seeds."""
    groups: dict[tuple[str, float, float], list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[(run.cell["activation"], run.cell["lr"], run.cell["bias_shift"])].append(run)
    return groups


def relu_fails(runs: Sequence[RunRecord], chance: float) -> bool:
    """Whether ReLU failed in a cell: at least DEAD_ENOUGH of its units dead, or a divergence."""
    stats = cell_stats(runs, chance)
    return stats["dead"][0] >= DEAD_ENOUGH or bool(stats["diverged"])


def paired_with_relu(
    relu_runs: Sequence[RunRecord], other: Sequence[RunRecord], chance: float
) -> tuple[dict[str, Any], Any]:
    """A cell's row (both sides' statistics and the difference) and the paired test."""
    relu_stats, theirs = cell_stats(relu_runs, chance), cell_stats(other, chance)
    by_seed = {r.seed: accuracy_or_chance(r, chance) for r in other}
    mine = {r.seed: accuracy_or_chance(r, chance) for r in relu_runs}
    seeds = sorted(set(by_seed) & set(mine))
    paired = paired_comparison([mine[s] for s in seeds], [by_seed[s] for s in seeds])
    row = {
        "relu_dead": relu_stats["dead"][0],
        "relu_accuracy": relu_stats["accuracy"],
        "relu_diverged": relu_stats["diverged"],
        "dead": theirs["dead"][0],
        "never_active": theirs["never_active"][0],
        "accuracy": theirs["accuracy"],
        "diverged": theirs["diverged"],
        "difference": paired.mean_difference,
        "ci95": list(paired.ci95),
        "p_value": paired.p_value,
        "seeds": paired.n,
    }
    return row, paired


def recovery(
    name: str,
    groups: dict[tuple[Any, ...], list[RunRecord]],
    relu: dict[tuple[Any, ...], list[RunRecord]],
    chance: float,
    key: str = "dying.leaky_recovers",
) -> Finding | None:
    """Where ReLU fails (units die, or runs diverge), does ``name`` learn where ReLU does not?

    Per such cell, a paired test of accuracy (same seeds) and the region it falls in:
    "recovers" (significantly more accurate than ReLU, and at least LEARNED_ABOVE_CHANCE
    above chance), "neither" (both stay within LEARNED_ABOVE_CHANCE of chance) or
    "no gain" (the rest).
    """
    regions: dict[str, dict[str, Any]] = {"recovers": {}, "neither": {}, "no_gain": {}}
    seeds_used = []
    # A cell is (lr, bias shift), or (lr, bias shift, depth) where depth is an axis too.
    for cell, relu_runs in sorted(relu.items()):
        if not relu_fails(relu_runs, chance):
            continue  # ReLU did not fail here: nothing to recover from
        other = groups.get((name, *cell))
        if not other:
            continue
        row, paired = paired_with_relu(relu_runs, other, chance)
        relu_stats, theirs = cell_stats(relu_runs, chance), cell_stats(other, chance)
        seeds_used.append(paired.n)
        learned = theirs["accuracy"][0] - chance >= LEARNED_ABOVE_CHANCE
        if paired.verdict == "holds" and learned:
            region = "recovers"
        elif max(relu_stats["accuracy"][0], theirs["accuracy"][0]) - chance < LEARNED_ABOVE_CHANCE:
            region = "neither"
        else:
            region = "no_gain"
        regions[region][cell_name(*cell)] = row
    if not seeds_used:
        return None  # ReLU failed nowhere it was compared: nothing to claim
    seeds = min(seeds_used)
    verdict = "holds" if regions["recovers"] else "does not hold"
    return Finding(
        key,
        comparison_verdict(verdict, seeds),
        {
            "activation": name,
            "recovers": regions["recovers"],
            "neither": regions["neither"],
            "no_gain": regions["no_gain"],
            "cells_where_relu_fails": len(seeds_used),
            "recovered_cells": len(regions["recovers"]),
            "neither_cells": len(regions["neither"]),
            "seeds": seeds,
            "chance": chance,
            "threshold": DEAD_ENOUGH,
        },
    )


EXPERIMENT = Experiment(
    name="dying",
    config=DyingConfig,
    presets={
        "quick": {
            "activations": ("relu", "leaky_relu_0.01", "prelu"),
            "lrs": (0.01, 0.3),
            "steps": 200,
            "log_every": 50,
            "seeds": 3,
        },
        "tiny": {
            "activations": ("relu", "leaky_relu_0.01"),
            "lrs": (0.3,),
            "bias_shifts": (-1.0,),
            "steps": 60,
            "log_every": 30,
            "width": 64,
            "seeds": 3,
        },
    },
    cells=_cells,
    axes=("activations", "lrs", "bias_shifts"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    check_data=dataset_on_disk,
    user_data="dataset",
    results={
        "final_dead_fraction": float,
        "final_never_active_fraction": float,
        "test_accuracy": float,  # NaN when the run diverged
    },
    optional_results={"chance": float},  # runs stored before it was recorded lack it
)
