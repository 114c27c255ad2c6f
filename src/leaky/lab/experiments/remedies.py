"""My units are dying: what should I do? The remedies compared on the dying grid.

The dying experiment's MLP, data and grid (learning rate x negative bias shift at
initialisation), at two depths, with seven ways to train it: ReLU as is; ReLU at a tenth
of the cell's learning rate; Leaky ReLU with slope 0.01 and 0.2; PReLU; ReLU with ReDo (Sokar et al.
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

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from leaky.lab.experiments import dying
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    comparison_verdict,
    positive,
)
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "RemediesConfig", "cell_depth", "dying_config"]

REMEDIES = (
    "relu_lr/10",
    "leaky_relu_0.01",
    "leaky_relu_0.2",
    "prelu",
    "relu_redo",
    "relu_to_leaky",
)


@dataclass(frozen=True)
class RemediesConfig:
    """Defaults: the full sweep (the dying grid at two depths, every remedy, 5 seeds).

    The dying experiment's settings, with ``depths`` an axis of the grid instead of its one
    ``depth``; each run trains as :class:`~leaky.lab.experiments.dying.DyingConfig` would at
    that depth.
    """

    activations: tuple[str, ...] = ("relu", *REMEDIES)
    lrs: tuple[float, ...] = (0.01, 0.1, 0.3)  # SGD with momentum 0.9
    bias_shifts: tuple[float, ...] = (0.0, -1.0)  # added to every hidden bias at init
    depths: tuple[int, ...] = (4, 8)  # hidden layers
    dataset: str = "mnist1d"  # a built-in task, or your data: file:PATH
    width: int = 128
    steps: int = 1000
    batch_size: int = 128
    log_every: int = 100
    probe_size: int = 1000  # training samples on which units are checked
    seeds: int = 5
    redo_every: int = 100  # relu_redo: steps between recyclings
    redo_tau: float = 0.025  # relu_redo: τ of the τ-dormant units it recycles (0: the dead)

    def __post_init__(self) -> None:
        if not self.depths:
            raise ValueError("Expected at least one depth")
        positive(self, "depths")  # named as this config's key, before dying's checks
        for depth in self.depths:
            dying_config(self, depth)  # the dying experiment checks every shared setting


def dying_config(config: RemediesConfig, depth: int) -> dying.DyingConfig:
    """The dying experiment's config that trains ``config``'s runs at ``depth``."""
    shared = {f.name: getattr(config, f.name) for f in fields(dying.DyingConfig)
              if f.name != "depth"}  # fmt: skip
    return dying.DyingConfig(**shared, depth=depth)


def _cells(config: RemediesConfig) -> list[dict]:
    return [
        {**cell, "depth": depth}
        for depth in config.depths
        for cell in dying.EXPERIMENT.cells(dying_config(config, depth))
    ]


def _run(config: RemediesConfig, cell: dict, seed: int) -> RunOutput:
    return dying.EXPERIMENT.run(dying_config(config, cell["depth"]), cell, seed)


def _memory(config: RemediesConfig) -> int:
    assert dying.EXPERIMENT.memory is not None
    return dying.EXPERIMENT.memory(dying_config(config, max(config.depths)))


def _check_data(config: RemediesConfig) -> None:
    assert dying.EXPERIMENT.check_data is not None
    dying.EXPERIMENT.check_data(dying_config(config, config.depths[0]))


def _groups(runs: Sequence[RunRecord]) -> dict[tuple[Any, ...], list[RunRecord]]:
    # (activation, lr, bias shift, depth) -> the runs of that cell, over seeds.
    groups: dict[tuple[Any, ...], list[RunRecord]] = defaultdict(list)
    for run in runs:
        c = run.cell
        groups[(c["activation"], c["lr"], c["bias_shift"], cell_depth(run))].append(run)
    return groups


def cell_depth(run: RunRecord) -> int:
    """A run's depth: its cell's, or (runs stored before depth was an axis) its config's."""
    return int(run.cell.get("depth", run.config.get("depth", 4)))


def _summarize(config: RemediesConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    groups = _groups(runs)
    if not groups:
        return []
    chance = dying.chance_of(runs)
    relu = {key[1:]: rs for key, rs in groups.items() if key[0] == "relu"}
    table = {
        f"{key[0]} {dying.cell_name(*key[1:])}": dying.cell_stats(groups[key], chance)
        for key in sorted(groups)
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
    groups: dict[tuple[Any, ...], list[RunRecord]],
    relu: dict[tuple[Any, ...], list[RunRecord]],
    chance: float,
    table: dict[str, Any],
) -> Finding | None:
    # Where ReLU was healthy, is the remedy significantly less accurate than ReLU?
    costs, free, seeds_used = {}, {}, []
    for cell, relu_runs in sorted(relu.items()):
        other = groups.get((name, *cell))
        if not other or dying.relu_fails(relu_runs, chance):
            continue
        row, paired = dying.paired_with_relu(relu_runs, other, chance)
        seeds_used.append(paired.n)
        (costs if paired.verdict == "does not hold" else free)[dying.cell_name(*cell)] = row
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
            "depths": (4,),
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
            "depths": (4,),
            "width": 64,
            "seeds": 3,
        },
    },
    cells=_cells,
    axes=(*dying.EXPERIMENT.axes, "depths"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    check_data=_check_data,
    user_data="dataset",
    results=dying.EXPERIMENT.results,
    optional_results=dying.EXPERIMENT.optional_results,
)
