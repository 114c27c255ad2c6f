"""The experiments that put the article's claims to the test, by name."""

from __future__ import annotations

from typing import Any

from leaky.lab.experiments.accuracy import EXPERIMENT as ACCURACY
from leaky.lab.experiments.base import (
    VERDICTS,
    Experiment,
    Finding,
    RunOutput,
    check_results,
    wilson_interval,
)
from leaky.lab.experiments.born_dead import EXPERIMENT as BORN_DEAD
from leaky.lab.experiments.dying import EXPERIMENT as DYING
from leaky.lab.experiments.fused_memory import EXPERIMENT as FUSED_MEMORY
from leaky.lab.experiments.init_depth import EXPERIMENT as INIT_DEPTH
from leaky.lab.experiments.init_scale import EXPERIMENT as INIT
from leaky.lab.experiments.rectifiers import EXPERIMENT as RECTIFIERS
from leaky.lab.experiments.remedies import EXPERIMENT as REMEDIES
from leaky.lab.experiments.saturation import EXPERIMENT as SATURATION
from leaky.lab.experiments.slope import EXPERIMENT as SLOPE
from leaky.lab.experiments.vanishing import EXPERIMENT as VANISHING

__all__ = [
    "EXPERIMENTS",
    "VERDICTS",
    "Experiment",
    "Finding",
    "RunOutput",
    "check_results",
    "check_stored_results",
    "get_experiment",
    "wilson_interval",
]

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        VANISHING,
        DYING,
        REMEDIES,
        BORN_DEAD,
        ACCURACY,
        SLOPE,
        INIT,
        FUSED_MEMORY,
        RECTIFIERS,
        SATURATION,
        INIT_DEPTH,
    )
}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name lists the valid ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}. Valid names: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def check_stored_results(experiment: str, results: dict[str, Any]) -> str | None:
    """What is wrong with the results of a stored run of ``experiment``, or None.

    :func:`~leaky.lab.experiments.base.check_results` for the experiment of that name; the
    runs of an experiment this leaky does not know are not its to judge (None). The check
    the lab and the report give a :class:`~leaky.lab.store.Store`: a run it finds wrong is
    damaged.

    Examples:
        >>> check_stored_results("vanishing", {"ratio_at_init": "abc"})
        'Expected ratio_at_init in its results to be a number, but got "abc"'
        >>> check_stored_results("vanishing", {"grad_norms": "abc"})
        'Expected its results to hold test_accuracy (a number), but it is missing'
        >>> check_stored_results("demo", {"anything": "abc"}) is None
        True
    """
    known = EXPERIMENTS.get(experiment)
    return None if known is None else check_results(known, results)
