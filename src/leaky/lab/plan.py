"""A command's sweep, planned once: the experiment, its config, its runs and their identity.

:func:`plan` turns an experiment and a resolved config into one immutable :class:`Sweep`:
every (cell, seed) of the grid as a :class:`RunSpec`, the fingerprints of the user's data it
reads (each file hashed once per command) and the sweep's key. The runner executes that
value, the summary and TensorBoard logging read it, and the report groups stored runs with
the same :func:`sweep_key`, so what makes two runs "the same sweep" is written once.

Examples:
    >>> from leaky.lab.findings import resolve_config
    >>> sweep = plan("born-dead", resolve_config("born-dead", preset="tiny"))
    >>> sweep.name, len(sweep), sweep[0].experiment
    ('born-dead', 8, 'born-dead')
    >>> sweep == plan("born-dead", resolve_config("born-dead", preset="tiny"))
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from leaky.data import data_fingerprint, file_hashes
from leaky.lab.config import config_hash, config_to_dict
from leaky.lab.experiments import Experiment, get_experiment
from leaky.lab.store import RunRecord, Store
from leaky.system.version import __version__

__all__ = ["DEFAULT_THREADS", "RunSpec", "Sweep", "plan", "shared_settings", "sweep_key"]

DEFAULT_THREADS = 1  # torch threads per run: parallelism comes from workers

# A file's state (resolved path, size, modification time) and its SHA-256.
FileHash = tuple[tuple[str, int, int], str]


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: picklable, so a worker process can take it."""

    experiment: str
    cell: dict[str, Any]
    seed: int
    config: dict[str, Any]
    run_id: str
    threads: int = DEFAULT_THREADS  # torch threads it runs with (part of its id)
    # The user's data it reads: spec -> SHA-256 of its files (part of its id, and stored).
    data: dict[str, str] = field(default_factory=dict)
    # The hash of each of those files by its state, so a worker checks that the data is
    # unchanged without reading it again (not part of the id).
    file_hashes: tuple[FileHash, ...] = ()


def shared_settings(experiment: Experiment, config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings every run of a sweep shares: the config minus the grid's axes and seeds.

    The cell and the seed say the rest, so growing a grid or adding seeds keeps the sweep.
    """
    return {k: v for k, v in config.items() if k not in (*experiment.axes, "seeds")}


def sweep_key(
    experiment: Experiment,
    config: Mapping[str, Any],
    *,
    version: str | None,
    threads: int | str | None,
    data: Mapping[str, str] | None,
) -> str:
    """What makes runs one sweep: shared settings, leaky version, thread count, data.

    The thread count changes the last bits of every number, so it names another sweep;
    so does the user's data (its fingerprint): a changed file is a new sweep. The runner
    keys what it plans with it, the report groups what a store holds with it.

    Examples:
        >>> e = get_experiment("born-dead")
        >>> a = sweep_key(e, {"trials": 5, "seeds": 1}, version="1", threads=1, data=None)
        >>> a == sweep_key(e, {"trials": 5, "seeds": 9}, version="1", threads="1", data={})
        True
    """
    return json.dumps(
        [
            shared_settings(experiment, config),
            version,
            None if threads is None else str(threads),
            dict(data) if data else None,
        ],
        sort_keys=True,
    )


@dataclass(frozen=True)
class Sweep(Sequence[RunSpec]):
    """One experiment's planned runs for one config: a sequence of :class:`RunSpec`.

    Built by :func:`plan` once per command; everything after (execute, summarize, logging)
    takes this value instead of planning again.
    """

    experiment: Experiment
    config: Any  # the experiment's resolved config dataclass
    threads: int
    runs: tuple[RunSpec, ...]
    data: Mapping[str, str]  # the user's data it reads: spec -> SHA-256 of its files
    key: str  # sweep_key of its runs

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment.name

    @property
    def run_ids(self) -> frozenset[str]:
        """The ids of its runs."""
        return frozenset(spec.run_id for spec in self.runs)

    def stored_runs(self, store: Store) -> list[RunRecord]:
        """Its runs that ``store`` holds, in the store's order."""
        wanted = self.run_ids
        return [run for run in store.runs(self.name) if run.run_id in wanted]

    @overload
    def __getitem__(self, index: int) -> RunSpec: ...

    @overload
    def __getitem__(self, index: slice) -> list[RunSpec]: ...

    def __getitem__(self, index: int | slice) -> RunSpec | list[RunSpec]:
        return list(self.runs[index]) if isinstance(index, slice) else self.runs[index]

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[RunSpec]:
        return iter(self.runs)


def plan(
    experiment: Experiment | str,
    config: Any,
    *,
    threads: int = DEFAULT_THREADS,
    data: Mapping[str, str] | None = None,
) -> Sweep:
    """Every (cell, seed) of the experiment's grid for this config, run with ``threads``.

    ``data``: the fingerprints of the user's data the config reads (default: hash the
    files now, each once); they are part of every run's id, so a changed file makes new
    runs instead of reusing the old ones. The report passes what the store recorded.
    """
    if isinstance(experiment, str):
        experiment = get_experiment(experiment)
    hashes: dict[tuple[str, int, int], str] = {}
    if data is None:
        fingerprints = {}
        for spec in experiment.data_specs(config):
            hashes.update(file_hashes(spec))  # reads each file's bytes once...
            fingerprints[spec] = data_fingerprint(spec)  # ...and this reuses those hashes
        data = fingerprints
    data = dict(data)
    config_dict = config_to_dict(config)
    shared = shared_settings(experiment, config_dict)
    carried = tuple(hashes.items())
    specs: dict[str, RunSpec] = {}
    for cell in experiment.cells(config):
        for seed in experiment.seeds(config):
            run_id = config_hash(
                experiment.name,
                shared,
                cell,
                seed,
                __version__,
                {"threads": threads},
                *([{"data": data}] if data else []),  # built-in data: ids as they always were
            )
            specs.setdefault(
                run_id,
                RunSpec(experiment.name, cell, seed, config_dict, run_id, threads, data, carried),
            )
    key = sweep_key(experiment, config_dict, version=__version__, threads=threads, data=data)
    return Sweep(experiment, config, threads, tuple(specs.values()), data, key)
