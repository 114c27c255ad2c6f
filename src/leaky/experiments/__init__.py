"""The experiments that put the article's claims to the test, by name."""

from __future__ import annotations

from leaky.experiments.accuracy import EXPERIMENT as ACCURACY
from leaky.experiments.base import VERDICTS, Experiment, Finding, RunOutput, wilson_interval
from leaky.experiments.born_dead import EXPERIMENT as BORN_DEAD
from leaky.experiments.dying import EXPERIMENT as DYING
from leaky.experiments.fused_memory import EXPERIMENT as FUSED_MEMORY
from leaky.experiments.init_scale import EXPERIMENT as INIT
from leaky.experiments.slope import EXPERIMENT as SLOPE
from leaky.experiments.vanishing import EXPERIMENT as VANISHING

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
