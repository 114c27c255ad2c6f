"""Beyond the article: does the initialisation's gain matter only beyond about 20 layers?

A rule of thumb from practice (Sander Dieleman in Lasagne issue 468, 2015: getting the gain
right "matters very little unless you go beyond 20 or so layers"; issue 658: a missing
factor sqrt(2) per layer is only about 10^3 after 20 layers): Xavier's gain 1 is fine for
ReLU networks until they are deep, where Kaiming's sqrt(2) is needed.

The init experiment's network and runs (:mod:`leaky.lab.experiments.init_scale`: an MLP
initialised with Xavier or Kaiming, its activations' spread at initialisation, then SGD with
momentum), at several depths, trained long enough that test accuracy means something; by
default on MNIST (:mod:`leaky.data.mnist`). One finding from paired tests over the seeds,
depth by depth: the gain matters (Kaiming's accuracy differs significantly from Xavier's,
by at least :data:`MATTERS` accuracy) at no depth below 20 and at some depth beyond it;
"does not hold" when it matters below 20, or when every deep difference is known to be
smaller than :data:`MATTERS`; "not significant" when the deep differences are large but the
seeds do not separate them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields

from leaky.lab.experiments import init_scale
from leaky.lab.experiments.base import (
    MIN_SEEDS,
    Experiment,
    Finding,
    RunOutput,
    dataset_on_disk,
    positive,
)
from leaky.lab.experiments.stats import mean_ci, paired_comparison
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "MATTERS", "InitDepthConfig", "init_config"]

MATTERS = 0.01  # an accuracy difference smaller than this "matters very little"
SHALLOW_BELOW = 20  # the rule's threshold: depths below it are shallow, beyond it deep


@dataclass(frozen=True)
class InitDepthConfig:
    """Defaults: the full sweep. The init experiment's settings, with ``depths`` an axis."""

    depths: tuple[int, ...] = (5, 10, 20, 30, 40)  # hidden layers
    width: int = 256
    activations: tuple[str, ...] = ("relu",)
    inits: tuple[str, ...] = ("xavier", "kaiming")
    dataset: str = "mnist"  # MNIST from disk (leaky data fetch mnist), or a built-in task
    steps: int = 1000
    batch_size: int = 128
    lr: float = 0.01  # SGD with momentum 0.9
    seeds: int = 5  # Xavier's deep runs train in some seeds and stall in others

    def __post_init__(self) -> None:
        if not self.depths:
            raise ValueError("Expected at least one depth")
        positive(self, "depths")
        if not {"xavier", "kaiming"} <= set(self.inits):
            raise ValueError(f"Expected inits to hold xavier and kaiming, but got {self.inits!r}")
        for depth in self.depths:
            init_config(self, depth)  # the init experiment checks every shared setting


def init_config(config: InitDepthConfig, depth: int) -> init_scale.InitConfig:
    """The init experiment's config that trains ``config``'s runs at ``depth``."""
    shared = {
        f.name: getattr(config, f.name) for f in fields(init_scale.InitConfig) if f.name != "depth"
    }
    return init_scale.InitConfig(**shared, depth=depth)


def _cells(config: InitDepthConfig) -> list[dict]:
    return [
        {**cell, "depth": depth}
        for depth in config.depths
        for cell in init_scale.EXPERIMENT.cells(init_config(config, depth))
    ]


def _run(config: InitDepthConfig, cell: dict, seed: int) -> RunOutput:
    inner = {k: v for k, v in cell.items() if k != "depth"}
    return init_scale.EXPERIMENT.run(init_config(config, cell["depth"]), inner, seed)


def _memory(config: InitDepthConfig) -> int:
    assert init_scale.EXPERIMENT.memory is not None
    return init_scale.EXPERIMENT.memory(init_config(config, max(config.depths)))


def _accuracy(runs: Sequence[RunRecord]) -> dict[tuple[str, str, int], dict[int, float]]:
    out: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for run in runs:
        c = run.cell
        value = float(run.results.get("test_accuracy", math.nan))
        out[(c["activation"], c["init"], int(c["depth"]))][run.seed] = value
    return out


def _summarize(config: InitDepthConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    accuracy = _accuracy(runs)
    findings = []
    for activation in config.activations:
        rows, seeds, shallow, deep = {}, [], [], []
        for depth in config.depths:
            xavier = accuracy.get((activation, "xavier", depth))
            kaiming = accuracy.get((activation, "kaiming", depth))
            if not xavier or not kaiming:
                continue
            common = sorted(set(xavier) & set(kaiming))
            # A diverged run is chance, as the init experiment counts it: 0.1 on 10 classes.
            paired = paired_comparison(
                [_or_chance(xavier[s]) for s in common], [_or_chance(kaiming[s]) for s in common]
            )
            matters = paired.verdict in ("holds", "does not hold") and (
                abs(paired.mean_difference) >= MATTERS
            )
            seeds.append(paired.n)
            rows[str(depth)] = {
                "xavier": list(mean_ci(list(xavier.values()))),
                "kaiming": list(mean_ci(list(kaiming.values()))),
                "difference": paired.mean_difference,
                "ci95": list(paired.ci95),
                "p_value": paired.p_value,
                "matters": matters,
            }
            if depth < SHALLOW_BELOW:
                shallow.append(matters)
            elif depth > SHALLOW_BELOW:
                deep.append(matters)
        if not rows:
            continue
        if min(seeds) < MIN_SEEDS or any(not math.isfinite(r["difference"]) for r in rows.values()):
            verdict = "inconclusive"
        elif not shallow or not deep:
            verdict = "inconclusive"  # the sweep has no depth on one side of the threshold
        elif any(shallow):
            verdict = "does not hold"  # it matters in a shallow network already
        elif any(deep):
            verdict = "holds"
        elif all(abs(r["ci95"][0]) < MATTERS and abs(r["ci95"][1]) < MATTERS
                 for d, r in rows.items() if int(d) > SHALLOW_BELOW):  # fmt: skip
            verdict = "does not hold"  # it does not matter in a deep network either
        else:
            verdict = "not significant"  # deep differences the seeds cannot separate
        findings.append(
            Finding(
                "init-depth.gain_matters_when_deep",
                verdict,
                {
                    "activation": activation,
                    "seeds": min(seeds),
                    "threshold": SHALLOW_BELOW,
                    "matters_at": MATTERS,
                    "by_depth": rows,
                    "depths": ", ".join(
                        f"{d}: {r['difference']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
                        for d, r in rows.items()
                    ),
                    "matters_depths": ", ".join(d for d, r in rows.items() if r["matters"]) or "-",
                },
            )
        )
    return findings


def _or_chance(value: float) -> float:
    # As dying.accuracy_or_chance, on a value: 10-class data, chance 0.1.
    return value if math.isfinite(value) else 0.1


EXPERIMENT = Experiment(
    name="init-depth",
    config=InitDepthConfig,
    presets={
        "quick": {"depths": (5, 30), "steps": 300, "width": 128},
        "tiny": {"depths": (3, 21), "steps": 10, "width": 16},
    },
    cells=_cells,
    axes=(*init_scale.EXPERIMENT.axes, "depths"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    part="beyond",
    check_data=dataset_on_disk,
    results={**init_scale.EXPERIMENT.results, "data": str},
)
