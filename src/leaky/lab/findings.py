"""The lab's front door: plan a sweep once, run it into a store, summarise, write findings.

``leaky run`` is :func:`run_and_summarize`: the config resolved and checked
(:func:`resolve_config`), one :class:`~leaky.lab.plan.Sweep` planned, the backend and the
memory checked once, the runs executed, the findings summarised and the stored runs logged
to TensorBoard, each step taking that one sweep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaky.core.spec import SPECS
from leaky.data import list_datasets, load_user_task, task_spec_from_table
from leaky.data.fsdd import FETCH_COMMAND, FSDD_DESCRIPTION, FSDD_LICENSE, fsdd_status
from leaky.data.mnist import MNIST_FETCH_COMMAND, MNIST_LICENSE, T10K_SPLIT, mnist_status
from leaky.lab.config import Setting, config_to_dict, describe_config, format_value, resolve
from leaky.lab.experiments import EXPERIMENTS, Finding, check_stored_results, get_experiment
from leaky.lab.plan import DEFAULT_THREADS, Sweep, plan
from leaky.lab.resources import check_memory, check_plan_size
from leaky.lab.runner import SweepResult, check_backend, execute
from leaky.lab.store import RunRecord, Store
from leaky.lab.tensorboard_runs import check_tensorboard, log_run, log_runs
from leaky.messages import get_messages
from leaky.system.atomic import atomic_path, ensure_output_dir
from leaky.system.errors import ParameterError

__all__ = [
    "ExperimentRun",
    "experiment_settings",
    "format_findings",
    "listing",
    "resolve_config",
    "run_and_summarize",
    "run_experiment",
    "summarize",
    "write_findings",
]


def resolve_config(
    name: str, *, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """The experiment's config: defaults, then the preset, then the overrides.

    Raises:
        ValueError: an unknown preset, key or value, a sweep of too many runs (see
            :func:`leaky.lab.resources.check_plan_size`; its memory is checked where the
            number of workers is known, by :func:`run_experiment`), or data it needs that
            is not on disk.
    """
    experiment = get_experiment(name)
    if preset and preset not in experiment.presets:
        raise ValueError(f"Unknown preset {preset!r}; {name} has {', '.join(experiment.presets)}")
    base = dict(experiment.presets[preset]) if preset else {}
    overrides = _with_task_tables(name, dict(overrides or {}))
    config = resolve(experiment.config, {**base, **overrides})
    check_plan_size(name, config)  # before a store is opened or a plan is built
    for spec in experiment.data_specs(config):
        load_user_task(spec)  # missing, malformed or unusable data: an error now, not midway
    if experiment.check_data is not None:
        experiment.check_data(config)
    return config


def listing(what: str, experiment: str | None = None) -> tuple[tuple[str, ...], list]:
    """A table (header, rows): the experiments, datasets, activations, or an experiment's settings.

    Examples:
        >>> header, rows = listing("activations")
        >>> header
        ('activation', 'defaults', 'can a unit die?')
        >>> rows[1]
        ('leaky_relu', 'negative_slope=0.01, inplace=False', 'no')
    """
    if what == "settings":
        rows = [
            (s.name, s.type, format_value(s.default), format_value(quick), s.about)
            for s, quick in experiment_settings(str(experiment))
        ]
        return ("setting", "type", "default", "--quick", "what it sets"), rows
    if what == "experiments":
        return ("experiment", "question"), [(e.name, e.question()) for e in EXPERIMENTS.values()]
    if what == "datasets":
        rows = [(info.name, info.description, info.source, "built in") for info in list_datasets()]
        fsdd = fsdd_status()
        state = {
            "present": f"present ({fsdd.recordings:,} recordings)",
            "absent": f"not here: {FETCH_COMMAND}",
            "damaged": "damaged: leaky data list says why",
        }[fsdd.state]
        rows.append(("fsdd", FSDD_DESCRIPTION, f"FSDD ({FSDD_LICENSE}), fetched", state))
        mnist = mnist_status()
        mnist_state = {
            "full": "present (60,000 / 10,000)",
            "test set": f"test set only: split {T10K_SPLIT[0]:,} / {T10K_SPLIT[1]:,}",
            "absent": f"not here: {MNIST_FETCH_COMMAND}",
            "damaged": "damaged: leaky data list says why",
        }[mnist.state]
        rows.append(
            (
                "mnist",
                "real 28x28 handwritten digits, 10 classes",
                f"MNIST ({MNIST_LICENSE}), fetched",
                mnist_state,
            )
        )
        return ("dataset", "what", "source", "state"), rows
    if what == "activations":
        rows = [
            (
                s.name,
                ", ".join(f"{k}={v}" for k, v in s.defaults.items()) or "-",
                "yes" if s.can_die else "no",
            )
            for s in SPECS
        ]
        return ("activation", "defaults", "can a unit die?"), rows
    raise ParameterError(
        f"Expected {{what}} to be experiments, datasets, activations or settings, but got {what!r}",
        "what",
    )


def experiment_settings(name: str) -> list[tuple[Setting, Any]]:
    """Each setting of the experiment (name, type, default, meaning) with its ``quick`` value.

    Examples:
        >>> setting, quick = experiment_settings("born-dead")[0]
        >>> setting.name, setting.default, quick
        ('depths', (2, 4, 6, 8, 10, 15, 20), [2, 5, 10, 20])
    """
    experiment = get_experiment(name)
    quick = config_to_dict(resolve(experiment.config, experiment.presets.get("quick", {})))
    return [(s, quick[s.name]) for s in describe_config(experiment.config)]


def _with_task_tables(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A TOML config's ``[[task]]`` tables as ``file:`` specs in the experiment's data field.

    ``tasks`` (accuracy): the tables' tasks follow the ones ``tasks`` names, else replace
    the defaults; ``dataset`` (dying, slope): one table.
    """
    if "task" not in overrides:
        return overrides
    tables = overrides.pop("task")
    field_name = get_experiment(name).user_data
    if field_name is None:
        raise ValueError(f"The {name} experiment runs on built-in data only; remove [[task]]")
    if not isinstance(tables, list) or not tables:
        raise ValueError("Expected [[task]] tables (an array of tables) in the config file")
    specs = [task_spec_from_table(table) for table in tables]
    if field_name == "dataset":
        if len(specs) != 1:
            raise ValueError(f"The {name} experiment trains on one dataset: give one [[task]]")
        return {**overrides, "dataset": specs[0]}
    given = overrides.get(field_name, [])
    given = given.split(",") if isinstance(given, str) else list(given)
    return {**overrides, field_name: [*filter(None, given), *specs]}


def run_experiment(
    name: str,
    config: Any,
    store: Store,
    *,
    workers: int = 1,
    threads: int = DEFAULT_THREADS,
    progress: bool | None = None,
    on_saved: Callable[[RunRecord], None] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> SweepResult:
    """Plan ``config``'s sweep once and run what ``store`` lacks, ``threads`` threads each.

    ``on_saved`` gets each run as soon as the store holds it (see
    :func:`leaky.lab.runner.execute`). ``backend="ray"`` runs them as Ray tasks: on the
    cluster at ``address`` (``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:10001"``), or on a
    local Ray instance of ``workers x threads`` CPUs when ``address`` is None. Runs that
    start at once on this machine must fit its memory (see
    :func:`leaky.lab.resources.check_memory`).
    """
    sweep = plan(name, config, threads=threads)
    checked = _check_where(sweep, backend, address, workers)
    return execute(sweep, store, backend=checked, progress=progress, on_saved=on_saved)


def _check_where(sweep: Sweep, backend: str, address: str | None, workers: int) -> Any:
    checked = check_backend(backend, address, workers=workers, threads=sweep.threads)
    if address is None:  # its runs start at once on this machine
        check_memory(sweep.name, sweep.config, workers=checked.workers)
    return checked


def summarize(sweep: Sweep, store: Store) -> list[Finding]:
    """The experiment's findings from the runs of ``sweep`` that ``store`` holds."""
    return sweep.experiment.summarize(sweep.config, sweep.stored_runs(store))


@dataclass(frozen=True)
class ExperimentRun:
    """What ``leaky run`` did: the sweep, how its execution went, the findings."""

    sweep: Sweep
    result: SweepResult
    findings: list[Finding]
    logged: int | None = None  # runs in the TensorBoard folder, when one was asked for


def run_and_summarize(
    name: str,
    store_path: str | Path,
    *,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    threads: int = DEFAULT_THREADS,
    progress: bool | None = None,
    backend: str = "local",
    address: str | None = None,
    tensorboard_dir: str | Path | None = None,
) -> ExperimentRun:
    """Resolve, plan once, run into the store at ``store_path``, summarise and log.

    Everything that can be refused (the config, the data, the backend, the memory, the
    TensorBoard folder) is checked before the store is opened, so a refused sweep leaves
    no file behind. ``tensorboard_dir``: each run is logged there as the store saves it,
    and the sweep's runs stored earlier once it is over.

    Raises:
        ValueError: a bad name, setting, backend or path (a
            :class:`~leaky.system.errors.ParameterError` names the parameter).
        SweepInterrupted: on Ctrl-C or SIGTERM, after storing every run that finished.
    """
    config = resolve_config(name, preset=preset, overrides=overrides)
    sweep = plan(name, config, threads=threads)
    checked = _check_where(sweep, backend, address, workers)
    on_saved = None
    if tensorboard_dir is not None:
        check_tensorboard()
        ensure_output_dir(tensorboard_dir)  # before the sweep: a bad folder costs no run
        folder = tensorboard_dir

        def on_saved(record: RunRecord) -> None:
            log_run(folder, record)

    with Store(store_path, check_results=check_stored_results) as store:
        result = execute(sweep, store, backend=checked, progress=progress, on_saved=on_saved)
        findings = summarize(sweep, store)
        logged = None
        if tensorboard_dir is not None:  # the sweep's runs an earlier command stored, too
            stored = sweep.stored_runs(store)
            log_runs(tensorboard_dir, stored)
            logged = len(stored)
    return ExperimentRun(sweep, result, findings, logged)


def format_findings(findings: Sequence[Finding], lang: str = "en") -> str:
    """A readable table: verdict, claim, the numbers in one line."""
    if not findings:
        return "(no findings)"
    words = get_messages(lang)
    verdicts = [words.terms(f.verdict) for f in findings]
    width = max(len(v) for v in verdicts)
    return "\n".join(
        f"{v.ljust(width)}  [{f.experiment}] {f.claim(lang)}\n{' ' * width}  {f.detail(lang)}"
        for v, f in zip(verdicts, findings, strict=True)
    )


def _json_safe(value: Any) -> Any:
    # NaN (a number that could not be computed) becomes null: strict JSON has no NaN.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_findings(path: str | Path, findings: Sequence[Finding], lang: str = "en") -> Path:
    """Write findings as JSON (claims and details in ``lang``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(
                _json_safe([f.to_dict(lang) for f in findings]), indent=2, ensure_ascii=False
            ),
            encoding="utf-8",
        )
    return path
