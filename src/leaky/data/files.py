"""Loaders for the user's own data files: .npz, .csv, MNIST IDX and CIFAR-10 binary batches.

Nothing is ever unpickled: ``.npz`` files are read with ``allow_pickle=False``, and the
other formats are parsed byte by byte. Every malformed file (wrong magic number, truncated,
shape or label mismatch, NaN features, binary data given as text) gets one error that
names the file and the problem. Sizes are checked before anything is read or inflated:
each loader's ``max_bytes=`` (default ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB; see
:mod:`leaky.data.size_limit`) bounds the bytes a file may declare, and a gzip stream is
never inflated beyond what its header declared.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from leaky.data.dataset import Dataset
from leaky.data.npz_archive import read_npz
from leaky.data.size_limit import check_data_size, max_data_bytes

__all__ = ["dataset_from_arrays", "load_cifar10", "load_csv", "load_idx", "load_npz"]

PathLike = str | os.PathLike[str]


def _existing_file(path: PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Data file {str(path)!r} is a directory, not a file")
    if not path.is_file():
        raise ValueError(f"Data file {str(path)!r} does not exist")
    return path


@contextlib.contextmanager
def _open_data(path: PathLike) -> Iterator[tuple[BinaryIO, int | None]]:
    """The file's bytes as a stream (inflated if gzip) and its size (None for gzip).

    Read errors, damaged gzip streams included, become one line naming the file.
    """
    path = _existing_file(path)
    try:
        with path.open("rb") as raw:
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    yield stream, None  # type: ignore[misc]
            else:
                raw.seek(0)
                yield raw, path.stat().st_size
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: the gzip stream is damaged ({error})") from None
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None


def _read_at_most(stream: BinaryIO, count: int) -> bytearray:
    """Up to ``count`` bytes, in chunks: no buffer of ``count`` bytes is set aside up front."""
    data = bytearray()
    while len(data) < count:
        chunk = stream.read(min(2**20, count - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _read_bytes(path: PathLike, limit: int) -> bytes | bytearray:
    """The whole file (inflated if gzip), refused beyond ``limit`` before it is read."""
    with _open_data(path) as (stream, size):
        if size is not None:
            check_data_size(path, "the file", size, limit)
            return stream.read()
        raw = _read_at_most(stream, limit + 1)  # bounded: a gzip bomb stops here
    if len(raw) > limit:
        raise ValueError(
            f"{path}: the gzip stream inflates to more than the limit of {limit:,} bytes; "
            "to read it anyway, pass max_bytes= to the loader or set LEAKY_MAX_DATA_BYTES"
        )
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


def load_npz(path: PathLike, *, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read and check ``x`` / ``y`` and optional ``x_test`` / ``y_test`` from an ``.npz``.

    ``x_train`` / ``y_train`` are accepted for ``x`` / ``y``; pickles are never loaded.
    Every array's header is checked before any data is read: together they may hold at
    most ``max_bytes`` (default ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB).

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.npz"
        >>> np.savez(p, x=np.ones((3, 2)), y=np.array([0, 1, 1]))
        >>> sorted(load_npz(p))
        ['x', 'y']
    """
    arrays = read_npz(path, max_bytes=max_bytes)
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


def load_csv(
    path: PathLike, label_column: str, *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Read a CSV with a header row: every column but ``label_column`` is a feature.

    The file may be at most ``max_bytes`` long (default ``$LEAKY_MAX_DATA_BYTES``, else
    1 GiB) and must be UTF-8 text.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.csv"
        >>> _ = p.write_text("a,b,label\n1,2,0\n3,4,1\n")
        >>> x, y = load_csv(p, "label")
        >>> x.shape, y.tolist()
        ((2, 2), [0, 1])
    """
    path = _existing_file(path)
    raw = _read_bytes(path, max_data_bytes(max_bytes))
    try:
        text = raw.decode("utf-8-sig")  # -sig: drop a BOM
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "expected a CSV file with a header row"
        ) from None
    if "\0" in text:  # valid UTF-8 yet binary: the csv module would take NUL as a character
        line = text.count("\n", 0, text.index("\0")) + 1
        raise ValueError(
            f"{path}, line {line}: a NUL byte; is it a binary file rather than CSV text?"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise ValueError(
            f"{path}, line {reader.line_num}: {error}; is it a binary file rather than CSV text?"
        ) from None
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
_IDX_MAX_DIMS = 32  # what every numpy accepts; MNIST's files have 1 (labels) or 3 (images)


def _parse_idx(path: PathLike, limit: int) -> np.ndarray:
    with _open_data(path) as (stream, size):
        magic = stream.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
            type_byte = (
                f"; type byte {magic[2]:02x} is none of 08 09 0b 0c 0d 0e"
                if (len(magic) >= 3 and magic[:2] == b"\0\0")
                else ""
            )
            raise ValueError(
                f"{path}: not an MNIST IDX file (magic number {magic.hex() or 'missing'}; "
                f"expected 0000 then a type byte such as 08 and the number of dimensions"
                f"{type_byte})"
            )
        dtype = np.dtype(_IDX_TYPES[magic[2]])
        ndim = magic[3]
        if not 1 <= ndim <= _IDX_MAX_DIMS:
            raise ValueError(
                f"{path}: the IDX header declares {ndim} dimensions; expected 1 to "
                f"{_IDX_MAX_DIMS} (MNIST labels have 1, images 3)"
            )
        header = stream.read(4 * ndim)
        if len(header) < 4 * ndim:
            raise ValueError(f"{path}: truncated IDX header")
        dims = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(ndim))
        expected = math.prod(dims) * dtype.itemsize
        check_data_size(path, f"the IDX data of shape {dims} ({dtype})", expected, limit)
        found: int | None  # bytes of data the file holds; None: more than expected
        if size is not None and size - 4 - 4 * ndim != expected:
            found = size - 4 - 4 * ndim
        else:
            data = _read_at_most(stream, expected + 1)  # a gzip bomb inflates no further
            if len(data) == expected:
                return np.frombuffer(data, dtype=dtype).reshape(dims)
            found = len(data) if len(data) < expected else None
    short = found is not None and found < expected
    raise ValueError(
        f"{path}: the header promises shape {dims} ({expected:,} bytes of data) but the file "
        f"has {'more' if found is None else f'{found:,}'}; it is "
        f"{'truncated' if short else 'damaged'} or not what it claims"
    )


def load_idx(
    images: PathLike, labels: PathLike, *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST IDX images and labels (plain or gzip); images scaled to [0, 1] if uint8.

    Each file's header declares its shape: data beyond ``max_bytes`` (default
    ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB) is refused before it is read or inflated.
    """
    limit = max_data_bytes(max_bytes)
    x = _parse_idx(images, limit)
    y = _parse_idx(labels, limit)
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


def load_cifar10(
    batches: Sequence[PathLike], *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 binary batches (``data_batch_1.bin`` ...): images (N, 3, 32, 32) in [0, 1].

    Each batch may hold at most ``max_bytes`` (default ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB).
    """
    limit = max_data_bytes(max_bytes)
    xs, ys = [], []
    for path in batches:
        raw = _read_bytes(path, limit)
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
