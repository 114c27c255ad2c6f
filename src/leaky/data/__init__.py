"""Data for the experiments: built-in offline tasks and loaders for the user's files.

User files are read without unpickling, and their declared sizes are checked before any
data is read: at most ``max_bytes=`` per loader, by default ``$LEAKY_MAX_DATA_BYTES``
(``8G``, ``500M`` or bytes), else 1 GiB.

Examples:
    >>> d = load_named_dataset("spirals")
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
from leaky.data.fsdd import cached_fsdd, load_fsdd
from leaky.data.mnist import cached_mnist, load_mnist
from leaky.data.npz_archive import npz_array_names, read_npz
from leaky.data.size_limit import DEFAULT_MAX_DATA_BYTES, MAX_DATA_BYTES_ENV, max_data_bytes
from leaky.data.user_task import (
    UserTask,
    data_fingerprint,
    file_hashes,
    is_file_task,
    load_user_task,
    parse_task_spec,
    remember_file_hashes,
    task_spec_from_table,
)

__all__ = [
    "BUILTIN",
    "DEFAULT_MAX_DATA_BYTES",
    "MAX_DATA_BYTES_ENV",
    "ON_DISK",
    "BuiltinInfo",
    "Dataset",
    "Task",
    "UserTask",
    "data_fingerprint",
    "dataset_from_arrays",
    "file_hashes",
    "is_file_task",
    "list_datasets",
    "load_cifar10",
    "load_csv",
    "load_dataset_or_file",
    "load_fsdd",
    "load_idx",
    "load_mnist",
    "load_named_dataset",
    "load_npz",
    "load_user_task",
    "max_data_bytes",
    "npz_array_names",
    "parse_task_spec",
    "read_npz",
    "remember_file_hashes",
    "task_spec_from_table",
]


# Data sets read from disk (fetched by `leaky data fetch NAME`), beside the built-in ones.
ON_DISK: tuple[str, ...] = ("fsdd", "mnist")


def list_datasets() -> list[BuiltinInfo]:
    """The built-in tasks, in a fixed order."""
    return list(BUILTIN.values())


def load_named_dataset(name: str, **options: Any) -> Dataset:
    """One of leaky's own data sets by name: a built-in task, or ``fsdd`` / ``mnist`` from disk.

    For the user's files too, see :func:`load_dataset_or_file`.

    Options go to the task's maker (``seed``; for ``fsdd``: ``data_dir`` and
    ``holdout_speaker``, see :func:`leaky.data.fsdd.load_fsdd`; for ``mnist``: ``data_dir``,
    see :func:`leaky.data.mnist.load_mnist`). Made once per process and options, then
    shared: treat the tensors as read-only.

    Raises:
        ValueError: unknown name (the message lists the valid ones); for ``fsdd``, data
            that is not there (the message says how to get it) or a malformed file.
    """
    if name == "fsdd":
        return cached_fsdd(options.get("data_dir"), options.get("holdout_speaker"))
    if name == "mnist":
        return cached_mnist(options.get("data_dir"))
    if name not in BUILTIN:
        valid = ", ".join([*BUILTIN, *ON_DISK])
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {valid}")
    return _cached(name, tuple(sorted(options.items())))


def load_dataset_or_file(name: str) -> Dataset:
    """A data set by name (:func:`load_named_dataset`), or the user's ``file:...`` spec.

    See :mod:`leaky.data.user_task` for the specs.
    """
    return load_user_task(name) if is_file_task(name) else load_named_dataset(name)


@functools.lru_cache(maxsize=16)
def _cached(name: str, options: tuple[tuple[str, Any], ...]) -> Dataset:
    return BUILTIN[name].make(**dict(options))
