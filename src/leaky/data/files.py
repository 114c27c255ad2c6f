"""Loaders for the user's own data files: .npz, .csv, MNIST IDX and CIFAR-10 binary batches.

Nothing is ever unpickled: ``.npz`` files are read with ``allow_pickle=False``, and the
other formats are parsed byte by byte. Every malformed file (wrong magic number, truncated,
shape or label mismatch, NaN features) gets one error that names the file and the problem.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from leaky.data.dataset import Dataset

__all__ = ["dataset_from_arrays", "load_cifar10", "load_csv", "load_idx", "load_npz"]

PathLike = str | os.PathLike[str]


def _read_bytes(path: PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Data file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: the gzip stream is damaged ({error})") from None
    return raw


def _check_features(path: PathLike, x: np.ndarray) -> np.ndarray:
    if x.ndim < 2:
        raise ValueError(
            f"{path}: expected features of shape (samples, ...), but got shape {x.shape}; "
            "a single feature per sample is shape (samples, 1)"
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected numeric features, but got dtype {x.dtype}")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{path}: {int(bad.sum())} features are NaN or infinite (first at {first})"
        )
    return x


def _check_labels(path: PathLike, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"{path}: expected one label per sample, but labels have shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{path}: {n} samples but {len(y)} labels")
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        raise ValueError(f"{path}: labels must be finite numbers, got dtype {y.dtype}")
    if np.any(y != np.round(y)) or np.any(y < 0):
        raise ValueError(f"{path}: labels must be integers >= 0 (class indices)")
    return y.astype(np.int64)


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Read and check ``x`` / ``y`` and optional ``x_test`` / ``y_test`` from an ``.npz``.

    ``x_train`` / ``y_train`` are accepted for ``x`` / ``y``; pickles are never loaded.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.npz"
        >>> np.savez(p, x=np.ones((3, 2)), y=np.array([0, 1, 1]))
        >>> sorted(load_npz(p))
        ['x', 'y']
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Data file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as error:
        raise ValueError(f"{path}: cannot be read without unpickling ({error})") from None
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    for alias in ("x", "y"):
        if f"{alias}_train" in arrays and alias not in arrays:
            arrays[alias] = arrays.pop(f"{alias}_train")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(
            f"{path}: expected arrays 'x' and 'y' (and optionally 'x_test', 'y_test'), but "
            f"{', '.join(repr(m) for m in missing)} missing; "
            f"it holds {', '.join(arrays) or 'nothing'}"
        )
    out = {"x": _check_features(path, arrays["x"])}
    out["y"] = _check_labels(path, arrays["y"], len(out["x"]))
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path}: 'x_test' and 'y_test' must come together")
    if "x_test" in arrays:
        out["x_test"] = _check_features(path, arrays["x_test"])
        out["y_test"] = _check_labels(path, arrays["y_test"], len(out["x_test"]))
        if out["x_test"].shape[1:] != out["x"].shape[1:]:
            raise ValueError(
                f"{path}: 'x' samples have shape {out['x'].shape[1:]} but 'x_test' samples "
                f"{out['x_test'].shape[1:]}"
            )
    return out


def load_csv(path: PathLike, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    r"""Read a CSV with a header row: every column but ``label_column`` is a feature.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.csv"
        >>> _ = p.write_text("a,b,label\n1,2,0\n3,4,1\n")
        >>> x, y = load_csv(p, "label")
        >>> x.shape, y.tolist()
        ((2, 2), [0, 1])
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Data file {str(path)!r} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: drop a BOM
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: the header names {', '.join(repeated)} more than once")
    if label_column not in header:
        raise ValueError(
            f"{path}: no column named {label_column!r}; the columns are {', '.join(header)}"
        )
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {i}: {len(row)} values for {len(header)} columns")
        for j, cell in enumerate(row):
            try:
                values[i - 2, j] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path}, line {i}, column {header[j]!r}: {cell!r} is not a number"
                ) from None
    label = header.index(label_column)
    x = _check_features(path, np.delete(values, label, axis=1))
    return x, _check_labels(path, values[:, label], len(x))


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _parse_idx(path: PathLike) -> np.ndarray:
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"{path}: not an MNIST IDX file (magic number {raw[:4].hex() or 'missing'}; "
            "expected 0000 then a type byte such as 08 and the number of dimensions)"
        )
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: the header promises shape {dims} ({expected} bytes of data) but the file "
            f"has {len(raw) - header}; it is truncated or not what it claims"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def load_idx(images: PathLike, labels: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST IDX images and labels (plain or gzip); images scaled to [0, 1] if uint8."""
    x = _parse_idx(images)
    y = _parse_idx(labels)
    if x.ndim < 2:
        raise ValueError(f"{images}: expected images (at least 2 dimensions), got shape {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"{labels}: expected a 1-D label file, got shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x
    x = _check_features(images, x)
    if x.ndim == 3:
        x = x[:, None]  # one channel
    return x, _check_labels(labels, y.astype(np.int64), len(x))


_CIFAR_RECORD = 1 + 3 * 32 * 32


def load_cifar10(batches: Sequence[PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 binary batches (``data_batch_1.bin`` ...): images (N, 3, 32, 32) in [0, 1]."""
    xs, ys = [], []
    for path in batches:
        raw = _read_bytes(path)
        if not raw or len(raw) % _CIFAR_RECORD:
            raise ValueError(
                f"{path}: {len(raw)} bytes is not a whole number of CIFAR-10 records "
                f"({_CIFAR_RECORD} bytes each: 1 label byte + 3x32x32 pixels)"
            )
        records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
        labels = records[:, 0].astype(np.int64)
        if labels.max() > 9:
            raise ValueError(f"{path}: label {int(labels.max())} found; CIFAR-10 labels are 0-9")
        xs.append(records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
        ys.append(labels)
    if not xs:
        raise ValueError("Expected at least one CIFAR-10 batch file")
    return np.concatenate(xs), np.concatenate(ys)


def dataset_from_arrays(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    source: str = "user file",
) -> Dataset:
    """A classification :class:`Dataset` from checked arrays; a seeded split if no test set.

    Examples:
        >>> d = dataset_from_arrays("mine", np.zeros((10, 3)), np.arange(10) % 2)
        >>> d.sizes, d.num_classes
        ((8, 2), 2)
    """
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{name}: give both x_test and y_test, or neither")
    if x_test is None:
        if not 0 < test_fraction < 1:
            raise ValueError(f"Expected test_fraction in (0, 1), got {test_fraction}")
        order = np.random.default_rng(seed).permutation(len(x))
        cut = len(x) - max(1, round(len(x) * test_fraction))
        if cut < 1:
            raise ValueError(f"{name}: {len(x)} samples are too few to split into train and test")
        train, test = order[:cut], order[cut:]
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
        classes,
        "classification",
        f"{name}: {len(x)} train / {len(x_test)} test samples of shape {tuple(x.shape[1:])}",
        source,
    )
