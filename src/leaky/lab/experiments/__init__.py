"""The experiments that put the article's claims to the test, by name."""

from __future__ import annotations

from leaky.lab.experiments.accuracy import EXPERIMENT as ACCURACY
from leaky.lab.experiments.base import VERDICTS, Experiment, Finding, RunOutput, wilson_interval
from leaky.lab.experiments.born_dead import EXPERIMENT as BORN_DEAD
from leaky.lab.experiments.dying import EXPERIMENT as DYING
from leaky.lab.experiments.fused_memory import EXPERIMENT as FUSED_MEMORY
from leaky.lab.experiments.init_scale import EXPERIMENT as INIT
from leaky.lab.experiments.slope import EXPERIMENT as SLOPE
from leaky.lab.experiments.vanishing import EXPERIMENT as VANISHING

__all__ = [
    "EXPERIMENTS",
    "VERDICTS",
    "Experiment",
    "Finding",
    "RunOutput",
    "get_experiment",
    "wilson_interval",
]

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (VANISHING, DYING, BORN_DEAD, ACCURACY, SLOPE, INIT, FUSED_MEMORY)
}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name lists the valid ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}. Valid names: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]
