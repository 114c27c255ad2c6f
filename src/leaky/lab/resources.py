"""Will a sweep fit? Its number of runs and each run's memory, checked before anything starts.

:func:`check_resources` is called where an experiment's config is resolved
(:func:`leaky.lab.findings.resolve_config`), so ``leaky run`` refuses a sweep before it opens
its store, builds its plan or allocates a tensor:

* the plan: at most :data:`MAX_RUNS_PER_SWEEP` (10,000) runs, counted as cells x seeds
  from the config's lists without building them (``seeds=1000000`` is refused at once,
  not after minutes of planning);
* memory: the experiment's estimate of one run (:mod:`leaky.lab.experiments.footprint`), times
  the runs that go at once (``--workers``), against the memory available now
  (``MemAvailable`` in ``/proc/meminfo``, within the cgroup's limit when there is one).

Each refusal is a ``ValueError`` that names the setting to lower and the numbers.

Examples:
    >>> import textwrap
    >>> from leaky.lab.findings import resolve_config
    >>> check_resources("born-dead", resolve_config("born-dead", preset="tiny"))
    >>> planned_runs("born-dead", resolve_config("born-dead", preset="tiny"))
    8
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from leaky.lab.experiments import get_experiment
from leaky.system.byte_sizes import format_bytes
from leaky.system.errors import ParameterError
from leaky.system.machine import available_memory

__all__ = [
    "MAX_RUNS_PER_SWEEP",
    "check_memory",
    "check_plan_size",
    "check_resources",
    "planned_runs",
]

# Hours of work at a second a run, and planned in well under a second (runner.plan took
# 3 to 5 s for 100,000 runs on 2 cores).
MAX_RUNS_PER_SWEEP = 10_000


def _axis_lengths(experiment: Any, config: Any) -> dict[str, int]:
    return {axis: len(getattr(config, axis)) for axis in experiment.axes}


def planned_runs(name: str, config: Any) -> int:
    """Runs of the sweep: the grid's cells times the seeds, counted without building them.

    Duplicates in a list count twice here (the plan keeps one), so this is an upper bound.
    """
    experiment = get_experiment(name)
    if experiment.count_cells is not None:
        cells = experiment.count_cells(config)
    elif experiment.axes:
        cells = math.prod(_axis_lengths(experiment, config).values())
    else:
        cells = len(experiment.cells(config))
    return cells * len(experiment.seeds(config))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def check_plan_size(name: str, config: Any, *, limit: int = MAX_RUNS_PER_SWEEP) -> None:
    """Refuse a sweep of more than ``limit`` runs, naming the list or seed count to lower.

    Examples:
        >>> import textwrap
        >>> from leaky.lab.findings import resolve_config
        >>> config = resolve_config("slope", preset="tiny")
        >>> try:
        ...     check_plan_size("slope", dataclasses.replace(config, seeds=10**6))
        ... except ValueError as error:
        ...     print(textwrap.fill(str(error), 80))
        Expected at most 10,000 runs in one sweep, but slope with seeds=1000000 plans
        3,000,000 (3 slopes x 1,000,000 seeds); lower seeds
    """
    total = planned_runs(name, config)
    if total <= limit:
        return
    experiment = get_experiment(name)
    factors = {**_axis_lengths(experiment, config), "seeds": len(experiment.seeds(config))}
    culprit = max(factors, key=lambda key: factors[key])
    parts = " x ".join(f"{count:,} {key}" for key, count in factors.items())
    advice = "" if culprit == "seeds" else ", or run its values in parts into the same store"
    raise ValueError(
        f"Expected at most {limit:,} runs in one sweep, but {name} with "
        f"{culprit}={_show(getattr(config, culprit))} plans {total:,} ({parts}); lower "
        f"{culprit}{advice}"
    )


def _culprit(estimate: Any, config: Any) -> str | None:
    """The changed setting whose default would shrink the estimate most."""
    base, best, name = estimate(config), estimate(config), None
    for field in dataclasses.fields(config):
        default = field.default
        if default is dataclasses.MISSING or getattr(config, field.name) == default:
            continue
        try:
            smaller = estimate(dataclasses.replace(config, **{field.name: default}))
        except (TypeError, ValueError):  # the default does not fit with the other settings
            continue
        if smaller < best:
            best, name = smaller, field.name
    return name if best < base else None


def check_memory(name: str, config: Any, *, workers: int = 1, available: int | None = None) -> None:
    """Refuse runs whose estimated memory, times ``workers``, exceeds what is available.

    ``available`` defaults to :func:`available_memory`; when that is unknown, nothing is
    checked.

    Examples:
        >>> import textwrap
        >>> from leaky.lab.findings import resolve_config
        >>> config = resolve_config("vanishing", preset="tiny")
        >>> try:
        ...     check_memory("vanishing", dataclasses.replace(config, width=10**5), available=2**34)
        ... except ValueError as error:
        ...     print(textwrap.fill(str(error), 80))
        Expected one vanishing run to fit in memory, but with width=100000 one run needs
        about 1.4 TiB (a rough estimate from the settings) and 16.0 GiB is available;
        lower width
    """
    experiment = get_experiment(name)
    if experiment.memory is None:
        return
    available = available_memory() if available is None else available
    if available is None:
        return
    one = experiment.memory(config)
    if one * workers <= available:
        return
    culprit = _culprit(experiment.memory, config)
    setting = f"with {culprit}={_show(getattr(config, culprit))} " if culprit else ""
    if workers > 1 and one <= available:
        total = format_bytes(one * workers)
        need = f"{workers} runs at once ({{workers}} {workers}) need about {total}"
        advice = f"use fewer {{workers}} (at most {max(1, available // max(one, 1))})"
    else:
        need = f"one run needs about {format_bytes(one)}"
        advice = f"lower {culprit}" if culprit else "use smaller settings (or a preset: {preset})"
    raise ParameterError(
        f"Expected one {name} run to fit in memory, but {setting}{need} (a rough estimate "
        f"from the settings) and {format_bytes(available)} is available; {advice}",
        "workers",
        "preset",
    )


def check_resources(name: str, config: Any, *, workers: int = 1) -> None:
    """:func:`check_plan_size` and :func:`check_memory`: will this sweep fit here?

    Raises:
        ValueError: the sweep plans too many runs, or a run (times ``workers``) would not
            fit in the memory available; the message names the setting to lower.
    """
    check_plan_size(name, config)
    check_memory(name, config, workers=workers)
