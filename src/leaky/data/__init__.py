"""Data for the experiments: built-in offline tasks and loaders for the user's files.

Examples:
    >>> d = load_dataset("spirals")
    >>> d.sizes, d.num_classes, d.task
    ((1600, 400), 2, 'classification')
"""

from __future__ import annotations

import functools
from typing import Any

from leaky.data.builtin import BUILTIN, BuiltinInfo
from leaky.data.dataset import Dataset, Task
from leaky.data.files import (
    dataset_from_arrays,
    load_cifar10,
    load_csv,
    load_idx,
    load_npz,
)

__all__ = [
    "BUILTIN",
    "BuiltinInfo",
    "Dataset",
    "Task",
    "dataset_from_arrays",
    "list_datasets",
    "load_cifar10",
    "load_csv",
    "load_dataset",
    "load_idx",
    "load_npz",
]


def list_datasets() -> list[BuiltinInfo]:
    """The built-in tasks, in a fixed order."""
    return list(BUILTIN.values())


def load_dataset(name: str, **options: Any) -> Dataset:
    """Make a built-in task by name (options such as ``seed`` go to its maker).

    Made once per process and options, then shared: treat the tensors as read-only.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name not in BUILTIN:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(BUILTIN)}")
    return _cached(name, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=16)
def _cached(name: str, options: tuple[tuple[str, Any], ...]) -> Dataset:
    return BUILTIN[name].make(**dict(options))
