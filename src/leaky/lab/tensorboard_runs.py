"""Stored runs as TensorBoard runs: each run's curves, layer statistics and final numbers.

``leaky run EXPERIMENT --tensorboard DIR`` calls :func:`log_run` in the driver for each run
as soon as the store holds it, and :func:`log_runs` once the sweep is over (for runs stored
earlier); the workers never touch a writer. Each run gets its own folder, named after its
experiment, cell, seed and id (:func:`run_name`), so ``tensorboard --logdir DIR`` shows
one curve per run and groups them by experiment. A run already logged is left alone, so
logging the same sweep again adds only what is missing.

Tags: each stored metric under its own name (``loss``, ``dead_fraction``,
``never_active_fraction``: the dying experiment's monitor statistics), each layer
statistic as ``layers/<layer>/<name>`` (the vanishing experiment's per-layer gradient
norms), and each numeric result as ``results/<name>`` at the run's last step.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from leaky.lab.store import RunRecord
from leaky.system.atomic import ensure_output_dir, staging_folder
from leaky.system.errors import MissingExtraError

__all__ = ["check_tensorboard", "log_run", "log_runs", "run_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def check_tensorboard() -> Any:
    """Return ``SummaryWriter``; a clear error if the ``tensorboard`` package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingExtraError(
            "TensorBoard logging needs the tensorboard package: pip install 'leaky[tensorboard]'"
        ) from None
    return SummaryWriter


def run_name(record: RunRecord) -> str:
    """``EXPERIMENT/CELL-seedN-ID``: readable in TensorBoard's run list, unique by the id.

    Examples:
        >>> record = RunRecord("3f9c2a17e0b4d5c6", "dying", {"activation": "relu", "lr": 0.1},
        ...                    2, {}, "finished", 1.0)
        >>> run_name(record)
        'dying/activation=relu,lr=0.1-seed2-3f9c2a17'
    """
    # Sorted: a run just computed and the same run read back from the store hold its cell's
    # keys in different orders, and must get one folder.
    cell = sorted(record.cell.items())
    label = ",".join(_UNSAFE.sub("_", f"{key}={value}") for key, value in cell)
    experiment = _UNSAFE.sub("_", record.experiment)
    return f"{experiment}/{label or 'run'}-seed{record.seed}-{record.run_id[:8]}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def log_run(log_dir: str | os.PathLike[str], record: RunRecord) -> Path | None:
    """Write one run's event file into ``log_dir/run_name(record)``; None if already there.

    The folder is built aside and moved into place whole, so a run is logged completely
    or not at all (a killed process leaves no half-logged run that would be skipped).
    """
    writer_class = check_tensorboard()
    target = Path(log_dir) / run_name(record)
    if target.exists():
        return None
    ensure_output_dir(target.parent)
    # Staged under one fixed name (run names hold dots, which the stale-file rule reads as
    # a suffix), so the folders of killed writers are found and removed.
    with staging_folder(log_dir, "staging") as stage:
        writer = writer_class(log_dir=str(stage))
        try:
            last = 0
            for step, name, value in record.metrics:
                if value is not None:
                    writer.add_scalar(name, value, step)
                last = max(last, step)
            for step, layer, name, value in record.layers:
                if value is not None:
                    writer.add_scalar(f"layers/{layer}/{name}", value, step)
                last = max(last, step)
            for name, value in record.results.items():
                number = _number(value)
                if number is not None and not math.isnan(number):
                    writer.add_scalar(f"results/{name}", number, last)
        finally:
            writer.close()
        os.replace(stage, target)
    return target


def log_runs(log_dir: str | os.PathLike[str], records: Iterable[RunRecord]) -> list[Path]:
    """:func:`log_run` for each record; the folders written (runs logged before are skipped)."""
    written = (log_run(log_dir, record) for record in records)
    return [path for path in written if path is not None]
