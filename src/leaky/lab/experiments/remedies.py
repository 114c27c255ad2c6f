"""My units are dying: what should I do? The remedies compared on the dying grid.

The dying experiment's MLP, data and grid (learning rate x negative bias shift at
initialisation), with seven ways to train it: ReLU as is; ReLU at a tenth of the cell's
learning rate; Leaky ReLU with slope 0.01 and 0.2; PReLU; ReLU with ReDo (Sokar et al.
2023: every ``redo_every`` steps the τ-dormant units of a probe batch are recycled by
:func:`leaky.diagnosis.repair.recycle`, incoming weights drawn again, outgoing weights and
the optimizer's momentum there zeroed); ReLU converted to Leaky ReLU 0.01 at the first
log where the probe finds a dead unit. The dead fraction is logged over training; test
accuracy at the end.

Two findings per remedy, from paired tests over the same seeds (a diverged run counts as
chance): where ReLU fails (at least ``DEAD_ENOUGH`` of its units dead, or a run diverged),
does the remedy recover (significantly more accurate, and learning)? And where nothing was
dying, does it cost accuracy (significantly less accurate than ReLU)?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leaky.lab.experiments import dying
from leaky.lab.experiments.base import Experiment, Finding, comparison_verdict
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "RemediesConfig"]

REMEDIES = (
    "relu_lr/10",
    "leaky_relu_0.01",
    "leaky_relu_0.2",
    "prelu",
    "relu_redo",
    "relu_to_leaky",
)


@dataclass(frozen=True)
class RemediesConfig(dying.DyingConfig):
    """Defaults: the full sweep (the dying grid, every remedy, 5 seeds)."""

    activations: tuple[str, ...] = ("relu", *REMEDIES)
    seeds: int = 5


def _summarize(config: RemediesConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    groups = dying.group_runs(runs)
    if not groups:
        return []
    chance = dying.chance_of(runs)
    relu = {(lr, b): rs for (a, lr, b), rs in groups.items() if a == "relu"}
    table = {
        f"{a} {dying.cell_name(lr, b)}": dying.cell_stats(groups[(a, lr, b)], chance)
        for a, lr, b in sorted(groups)
    }
    findings = []
    for name in config.activations:
        if name == "relu" or not relu:
            continue
        found = dying.recovery(name, groups, relu, chance, key="remedies.recovers")
        if found is not None:
            findings.append(found)
        cost = _cost(name, groups, relu, chance, table)
        if cost is not None:
            findings.append(cost)
    return findings


def _cost(
    name: str,
    groups: dict[tuple[str, float, float], list[RunRecord]],
    relu: dict[tuple[float, float], list[RunRecord]],
    chance: float,
    table: dict[str, Any],
) -> Finding | None:
    # Where ReLU was healthy, is the remedy significantly less accurate than ReLU?
    costs, free, seeds_used = {}, {}, []
    for (lr, shift), relu_runs in sorted(relu.items()):
        other = groups.get((name, lr, shift))
        if not other or dying.relu_fails(relu_runs, chance):
            continue
        row, paired = dying.paired_with_relu(relu_runs, other, chance)
        seeds_used.append(paired.n)
        (costs if paired.verdict == "does not hold" else free)[dying.cell_name(lr, shift)] = row
    if not seeds_used:
        return None  # ReLU was failing everywhere: no healthy cell to pay in
    verdict = "does not hold" if costs else "holds"
    return Finding(
        "remedies.costs_nothing",
        comparison_verdict(verdict, min(seeds_used)),
        {
            "activation": name,
            "costs": costs,
            "free": free,
            "healthy_cells": len(seeds_used),
            "costly_cells": len(costs),
            "seeds": min(seeds_used),
            "cells": table,
        },
    )


EXPERIMENT = Experiment(
    name="remedies",
    config=RemediesConfig,
    presets={
        "quick": {
            "lrs": (0.01, 0.3),
            "bias_shifts": (0.0, -1.0),
            "steps": 200,
            "log_every": 50,
            "redo_every": 50,
            "seeds": 3,
        },
        "tiny": {
            "activations": ("relu", "relu_redo", "relu_to_leaky"),
            "lrs": (0.3,),
            "bias_shifts": (-1.0,),
            "steps": 60,
            "log_every": 30,
            "redo_every": 30,
            "width": 64,
            "seeds": 3,
        },
    },
    cells=dying.EXPERIMENT.cells,
    axes=dying.EXPERIMENT.axes,
    run=dying.EXPERIMENT.run,
    summarize=_summarize,
    memory=dying.EXPERIMENT.memory,
    check_data=dying.EXPERIMENT.check_data,
    user_data="dataset",
    results=dying.EXPERIMENT.results,
    optional_results=dying.EXPERIMENT.optional_results,
)
