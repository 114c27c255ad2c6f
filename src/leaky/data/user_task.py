"""The user's own data as an experiment task: a spec that names a file or folder.

A task spec is text, so it travels in a config like any built-in task name and is stored
with every run::

    file:path/to/data.npz                 format from the extension (.npz, .csv)
    file:csv:path/to/table.csv?label=y    format given; options after "?", joined by "&"
    file:idx:path/to/mnist/               a folder of MNIST IDX files (train-* and t10k-*)
    file:cifar10:path/to/cifar-10-batches-bin/   data_batch_*.bin and test_batch.bin
    file:data.npz?model=cnn               the model the accuracy experiment trains on it

Options: ``model`` (``mlp`` or ``cnn``), ``metric`` (``accuracy``) and, for CSV, ``label``
(the label column, default ``label``). A TOML config names the same things as a table::

    [[task]]
    path = "data/mine.csv"
    format = "csv"      # optional: from the extension
    model = "cnn"
    label = "digit"

The data's fingerprint (SHA-256 of the files read) identifies the runs made on it, so a
changed file makes a new sweep instead of mixing with the old one.

Examples:
    >>> task = parse_task_spec("file:csv:data/mine.csv?label=digit&model=mlp")
    >>> task.format, task.path, task.label, task.model
    ('csv', 'data/mine.csv', 'digit', 'mlp')
    >>> task_spec_from_table({"path": "d.npz", "model": "cnn"})
    'file:npz:d.npz?model=cnn'
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leaky.data.dataset import Dataset
from leaky.data.files import dataset_from_arrays, load_cifar10, load_csv, load_idx, load_npz

__all__ = [
    "FILE_PREFIX",
    "FORMATS",
    "MODELS",
    "UserTask",
    "data_fingerprint",
    "file_hashes",
    "is_file_task",
    "load_user_task",
    "parse_task_spec",
    "remember_file_hashes",
    "task_spec_from_table",
]

FILE_PREFIX = "file:"
FORMATS = ("npz", "csv", "idx", "cifar10")
MODELS = ("mlp", "cnn")
METRICS = ("accuracy",)
_EXTENSIONS = {".npz": "npz", ".csv": "csv"}
_OPTIONS = ("model", "metric", "label")
_TABLE_KEYS = ("path", "format", *_OPTIONS)
_IDX_PARTS = {  # role -> file name prefix (plain or .gz)
    "train_images": "train-images",
    "train_labels": "train-labels",
    "test_images": "t10k-images",
    "test_labels": "t10k-labels",
}


@dataclass(frozen=True)
class UserTask:
    """A user's data file (or folder) and how an experiment should use it."""

    path: str
    format: str
    model: str = "mlp"
    metric: str = "accuracy"
    label: str = "label"  # the label column of a CSV

    @property
    def spec(self) -> str:
        """The canonical spec text (format spelled out, options that differ from defaults)."""
        options = [
            f"{k}={getattr(self, k)}"
            for k in _OPTIONS
            if getattr(self, k) != UserTask.__dataclass_fields__[k].default
        ]
        return f"{FILE_PREFIX}{self.format}:{self.path}" + (
            "?" + "&".join(options) if options else ""
        )


def is_file_task(name: str) -> bool:
    """Whether a task or dataset name is a user-data spec (``file:...``)."""
    return isinstance(name, str) and name.startswith(FILE_PREFIX)


def _format_of(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        if any(p.glob("data_batch_*.bin")):
            return "cifar10"
        if any(p.glob("train-images*")):
            return "idx"
        raise ValueError(
            f"Cannot tell the format of the folder {path!r}: expected MNIST IDX files "
            "(train-images-idx3-ubyte, ...) or CIFAR-10 batches (data_batch_1.bin, ...); "
            f"name it with file:FORMAT:PATH, FORMAT one of {', '.join(FORMATS)}"
        )
    extension = p.suffix.lower()
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    raise ValueError(
        f"Cannot tell the format of {path!r} from its extension {extension or '(none)'!r}: "
        f"expected .npz or .csv, or name it with file:FORMAT:PATH, FORMAT one of "
        f"{', '.join(FORMATS)}"
    )


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Expected {key} to be one of {', '.join(allowed)}, but got {value!r}")


def parse_task_spec(text: str) -> UserTask:
    """Read ``file:[FORMAT:]PATH[?key=value&...]`` (see the module's docstring).

    Checks the spelling only (format, options); the data is read by :func:`load_user_task`.
    """
    if not is_file_task(text):
        raise ValueError(f"Expected a data spec starting with {FILE_PREFIX!r}, but got {text!r}")
    rest = text[len(FILE_PREFIX) :]
    rest, _, query = rest.partition("?")
    head, sep, tail = rest.partition(":")
    fmt = head if sep and head in FORMATS else None
    path = tail if fmt else rest
    if not path:
        raise ValueError(f"Expected a path after {FILE_PREFIX!r} in {text!r}, e.g. file:data.npz")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or key not in _OPTIONS:
            raise ValueError(
                f"Expected options key=value with key one of {', '.join(_OPTIONS)} after '?' "
                f"in {text!r}, but got {item!r}"
            )
        options[key] = value
    task = UserTask(path=path, format=fmt or _format_of(path), **options)
    _check_choice("model", task.model, MODELS)
    _check_choice("metric", task.metric, METRICS)
    return task


def task_spec_from_table(table: Any) -> str:
    """A ``[[task]]`` table of a TOML config as spec text (path, format, model, metric, label)."""
    if not isinstance(table, dict):
        raise ValueError(f"Expected each [[task]] to be a table of key = value, but got {table!r}")
    unknown = sorted(set(table) - set(_TABLE_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown key {unknown[0]!r} in a [[task]] table; valid keys: {', '.join(_TABLE_KEYS)}"
        )
    path = table.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError('Expected every [[task]] table to have path = "..." (a file or folder)')
    for key in ("format", *_OPTIONS):
        if key in table and not isinstance(table[key], str):
            raise ValueError(f"Expected {key} in a [[task]] table to be text, got {table[key]!r}")
    if any(c in path for c in ",?&"):
        raise ValueError(f"Expected a path without ',', '?' or '&', but got {path!r}; rename it")
    fmt = table.get("format") or _format_of(path)
    _check_choice("format", fmt, FORMATS)
    options = [f"{k}={table[k]}" for k in _OPTIONS if k in table]
    return parse_task_spec(
        f"{FILE_PREFIX}{fmt}:{path}" + ("?" + "&".join(options) if options else "")
    ).spec


def _idx_files(folder: Path) -> dict[str, Path]:
    files = {}
    for role, prefix in _IDX_PARTS.items():
        found = sorted(folder.glob(f"{prefix}*"))
        if len(found) != 1:
            raise ValueError(
                f"{folder}: expected one {prefix}* file (MNIST IDX, plain or .gz), found "
                f"{len(found) or 'none'}"
            )
        files[role] = found[0]
    return files


def _cifar_files(folder: Path) -> tuple[list[Path], Path]:
    train = sorted(folder.glob("data_batch_*.bin"))
    test = folder / "test_batch.bin"
    if not train or not test.is_file():
        raise ValueError(
            f"{folder}: expected CIFAR-10 binary batches data_batch_1.bin ... and test_batch.bin"
        )
    return train, test


def _files(task: UserTask) -> list[Path]:
    path = Path(task.path)
    if task.format in ("idx", "cifar10"):
        if not path.is_dir():
            raise ValueError(
                f"Data folder {task.path!r} "
                + ("is a file; " if path.exists() else "does not exist; ")
                + f"the {task.format} format reads a folder"
            )
        if task.format == "idx":
            return list(_idx_files(path).values())
        train, test = _cifar_files(path)
        return [*train, test]
    if path.is_dir():
        raise ValueError(f"Data file {task.path!r} is a folder, not a {task.format} file")
    if not path.is_file():
        raise ValueError(f"Data file {task.path!r} does not exist")
    return [path]


# A file's SHA-256 by what says it is unchanged: (resolved path, size, modification time).
FileState = tuple[str, int, int]
_FILE_HASHES: dict[FileState, str] = {}
_MAX_FILE_HASHES = 64


def _file_sha256(state: FileState) -> str:
    # Each file's bytes are read for hashing once per process and state: the plan of a
    # sweep hashes them, and its workers are handed the hashes (remember_file_hashes).
    if state not in _FILE_HASHES:
        with open(state[0], "rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()
        while len(_FILE_HASHES) >= _MAX_FILE_HASHES:
            del _FILE_HASHES[next(iter(_FILE_HASHES))]
        _FILE_HASHES[state] = digest
    return _FILE_HASHES[state]


def _file_states(spec: str) -> list[tuple[Path, FileState]]:
    states = []
    for path in _files(parse_task_spec(spec)):
        try:
            stat = path.stat()
        except OSError as error:
            raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None
        states.append((path, (str(path.resolve()), stat.st_size, stat.st_mtime_ns)))
    return states


def data_fingerprint(spec: str) -> str:
    """SHA-256 over the files a spec reads (their names and bytes), as hex.

    Raises:
        ValueError: a missing file or folder, or an unknown format.
    """
    digest = hashlib.sha256()
    for path, state in _file_states(spec):
        try:
            file_hash = _file_sha256(state)
        except OSError as error:
            raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None
        digest.update(f"{path.name}\0{file_hash}\n".encode())
    return digest.hexdigest()


def file_hashes(spec: str) -> dict[FileState, str]:
    """The SHA-256 of each file a spec reads, by its state (hashing those not known yet).

    Hand them to :func:`remember_file_hashes` in another process (a sweep's worker), and
    it fingerprints the same unchanged files without reading them again.
    """
    return {state: _file_sha256(state) for _, state in _file_states(spec)}


def remember_file_hashes(hashes: dict[FileState, str]) -> None:
    """Take file hashes made elsewhere (:func:`file_hashes`) as this process's own.

    A file whose size or modification time has changed since has another state, so it
    is read and hashed again, and its fingerprint differs.
    """
    for state, digest in hashes.items():
        _FILE_HASHES.setdefault(state, digest)


def _arrays(task: UserTask) -> tuple[np.ndarray, ...]:
    files = _files(task)
    if task.format == "npz":
        arrays = load_npz(files[0])
        return tuple(arrays.get(k) for k in ("x", "y", "x_test", "y_test"))  # type: ignore[return-value]
    if task.format == "csv":
        x, y = load_csv(files[0], task.label)
        return x, y, None, None  # type: ignore[return-value]
    if task.format == "idx":
        parts = _idx_files(Path(task.path))
        x, y = load_idx(parts["train_images"], parts["train_labels"])
        x_test, y_test = load_idx(parts["test_images"], parts["test_labels"])
        return x, y, x_test, y_test
    train, test = _cifar_files(Path(task.path))
    x, y = load_cifar10(train)
    x_test, y_test = load_cifar10([test])
    return x, y, x_test, y_test


def _check_classes(task: UserTask, y: np.ndarray, y_test: np.ndarray | None) -> None:
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"{task.path}: the training labels hold {len(classes)} class"
            f"{'' if len(classes) == 1 else 'es'}; a classification task needs at least 2"
        )
    if y_test is not None:
        unseen = sorted(set(np.unique(y_test).tolist()) - set(classes.tolist()))
        if unseen:
            raise ValueError(
                f"{task.path}: test labels {unseen[:5]} never occur in the training labels; "
                "no model can learn them"
            )


def check_input_shape(task: UserTask, shape: tuple[int, ...]) -> None:
    """Refuse sample shapes the task's model kind cannot take.

    model=cnn: a 1-D CNN over (length) or (channels, length), which pools the length by 2,
    or a 2-D CNN over (channels, height, width), which pools each side by 4.
    """
    if task.model != "cnn":
        return
    usage = (
        f"{task.path}: model=cnn takes samples of shape (length >= 2), (channels, length >= 2) "
        f"or (channels, height >= 4, width >= 4), but got {shape}"
    )
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"{usage}; use model=mlp")
    if (len(shape) < 3 and shape[-1] < 2) or (len(shape) == 3 and min(shape[1:]) < 4):
        raise ValueError(usage)


def load_user_task(spec: str) -> Dataset:
    """The user's data as a checked classification :class:`Dataset` (cached per fingerprint).

    Without a test split in the data, a seeded 20% of the samples is held out.

    Raises:
        ValueError: a missing file, an unknown format, a malformed file (NaN, wrong shapes,
            see :mod:`leaky.data.files`), fewer than 2 classes, or test labels absent from
            training.
    """
    return _load(parse_task_spec(spec).spec, data_fingerprint(spec))


@functools.lru_cache(maxsize=4)
def _load(spec: str, fingerprint: str) -> Dataset:
    task = parse_task_spec(spec)
    x, y, x_test, y_test = _arrays(task)
    if len(x) < 2:
        raise ValueError(f"{task.path}: {len(x)} sample is too few to train and test on")
    _check_classes(task, y, y_test)
    check_input_shape(task, tuple(x.shape[1:]))
    data = dataset_from_arrays(
        Path(task.path).name or task.path,
        x,
        y,
        x_test,
        y_test,
        source=f"{task.spec} (sha256 {fingerprint[:12]})",
    )
    if not math.prod(data.input_shape):
        raise ValueError(f"{task.path}: samples of shape {data.input_shape} hold no features")
    return data
