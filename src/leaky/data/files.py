"""Loaders for the user's own data files: .npz, .csv, MNIST IDX and CIFAR-10 binary batches.

Nothing is ever unpickled: ``.npz`` files are read with ``allow_pickle=False``, and the
other formats are parsed byte by byte. Every malformed file (wrong magic number, truncated,
shape or label mismatch, NaN features, binary data given as text) gets one error that
names the file and the problem. Sizes are checked before anything is read or inflated:
each loader's ``max_bytes=`` (default ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB; see
:mod:`leaky.data.size_limit`) bounds the bytes a file may declare, and a gzip stream is
never inflated beyond what its header declared. A CSV declares no sizes: it is parsed
block by block into its arrays, which the same limit bounds as they fill.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import itertools
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

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
        raise _gzip_over_limit(path, limit)
    return raw


def _gzip_over_limit(path: PathLike, limit: int) -> ValueError:
    return ValueError(
        f"{path}: the gzip stream inflates to more than the limit of {limit:,} bytes; "
        "to read it anyway, pass max_bytes= to the loader or set LEAKY_MAX_DATA_BYTES"
    )


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


# CSV text is parsed in blocks of about this many bytes, each cut at a line end, so that a
# read holds its final arrays plus one block's text and values (a few hundred KiB) however
# long the file. Blocks stay below the csv module's default field limit (128 Ki characters).
_CSV_BLOCK_BYTES = 2**16
_SCAN_CHUNK_BYTES = 2**20
# Characters that send a block from np.loadtxt to the csv module: quotes (quoted fields,
# possibly spanning lines) and the ASCII separators 0x1c-0x1f, which np.loadtxt strips
# around a number as whitespace but Python's float() refuses.
_NOT_FOR_LOADTXT = '"\x1c\x1d\x1e\x1f'


def load_csv(
    path: PathLike, label_column: str, *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Read a CSV with a header row: every column but ``label_column`` is a feature.

    The file may be at most ``max_bytes`` long (default ``$LEAKY_MAX_DATA_BYTES``, else
    1 GiB) and must be UTF-8 text. The arrays it gives (float32 features, int64 labels)
    may hold at most ``max_bytes`` too: the text is parsed block by block into them, and
    refused as soon as the rows read so far pass the limit, so memory stays about the
    size of the arrays, never that of the parsed text.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.csv"
        >>> _ = p.write_text("a,b,label\n1,2,0\n3,4,1\n")
        >>> x, y = load_csv(p, "label")
        >>> x.shape, y.tolist()
        ((2, 2), [0, 1])
        >>> load_csv(p, "label", max_bytes=25)  # 22 bytes of text, 32 of arrays
        Traceback (most recent call last):
        ValueError: ...: the data of at least 2 rows x 3 columns (float32 features, ...
    """
    path = _existing_file(path)
    limit = max_data_bytes(max_bytes)
    line_count = _scan_csv_bytes(path, limit)
    with _open_data(path) as (stream, _):
        try:
            return _parse_csv(path, label_column, limit, _csv_blocks(stream), line_count)
        except UnicodeDecodeError:  # the first pass found none: the file was replaced
            raise ValueError(f"{path}: the file changed while it was read") from None


def _scan_csv_bytes(path: Path, limit: int) -> int:
    r"""Check the whole file before any of it is parsed; return its number of lines.

    A pass over the bytes (inflated if gzip) that holds one chunk at a time. It finds
    what the old whole-file reader found first, in the same order: a file or gzip stream
    over ``limit``, bytes that are not UTF-8, a NUL byte. The line count (lines end at
    ``\n``, ``\r\n`` or ``\r``, as the csv module reads them) bounds the number of rows.
    """
    with _open_data(path) as (stream, size):
        if size is not None:
            check_data_size(path, "the file", size, limit)
        total = 0  # bytes read so far
        pending = b""  # bytes not yet decoded: the start (until the BOM is decided) or a cut
        pending_at = 0  # offset of pending[0] in the file
        bom_decided = False
        not_utf8: tuple[int, int] | None = None  # (offset, byte) of the first bad byte
        nul_line: int | None = None
        newlines = returns = pairs = 0  # counts of \n, \r and \r\n
        last = b""
        while chunk := stream.read(_SCAN_CHUNK_BYTES):
            total += len(chunk)
            if size is None and total > limit:
                raise _gzip_over_limit(path, limit)  # a gzip bomb inflates no further
            if nul_line is None and (at := chunk.find(b"\0")) >= 0:
                nul_line = newlines + chunk.count(b"\n", 0, at) + 1
            pairs += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            newlines += chunk.count(b"\n")
            returns += chunk.count(b"\r")
            last = chunk[-1:]
            if not_utf8 is not None:
                continue  # keep reading: an oversized gzip stream still takes precedence
            data = pending + chunk
            if not bom_decided:
                if len(data) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(data):
                    pending = data
                    continue
                bom_decided = True
                if data.startswith(codecs.BOM_UTF8):  # utf-8-sig: drop a BOM
                    data, pending_at = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            not_utf8, used = _utf8_check(data, pending_at, final=False)
            pending, pending_at = data[used:], pending_at + used
        if not_utf8 is None and pending:
            not_utf8, _ = _utf8_check(pending, pending_at, final=True)
    if not_utf8 is not None:
        offset, byte = not_utf8
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{byte:02x} at offset {offset}); "
            "expected a CSV file with a header row"
        )
    if nul_line is not None:  # valid UTF-8 yet binary: the csv module takes NUL as a character
        raise ValueError(
            f"{path}, line {nul_line}: a NUL byte; is it a binary file rather than CSV text?"
        )
    return newlines + returns - pairs + (last not in (b"", b"\n", b"\r"))


def _utf8_check(data: bytes, at: int, *, final: bool) -> tuple[tuple[int, int] | None, int]:
    """The first bad byte's (file offset, value) or None, and how many bytes decode whole."""
    try:
        return None, codecs.utf_8_decode(data, "strict", final)[1]
    except UnicodeDecodeError as error:
        return (at + error.start, data[error.start]), 0


def _csv_blocks(stream: BinaryIO) -> Iterator[str]:
    r"""The text (BOM dropped) in blocks of about ``_CSV_BLOCK_BYTES``, each ending a line.

    A block ends after ``\n``, or after a ``\r`` that is not its last character (a ``\r``
    at the end may be the first half of ``\r\n``), so that reading each block's lines
    gives the lines of the whole text. A line longer than a block is kept whole.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    carry = ""
    while raw := stream.read(_CSV_BLOCK_BYTES):
        text = carry + decoder.decode(raw)
        cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1)) + 1
        if cut:
            yield text[:cut]
        carry = text[cut:]
    carry += decoder.decode(b"", final=True)
    if carry:
        yield carry


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    """Lines as ``io.StringIO(text, newline="")`` gives them (the csv module's input)."""
    return itertools.chain.from_iterable(io.StringIO(b, newline="") for b in blocks)


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _csv_error(path: PathLike, line: int, error: csv.Error) -> ValueError:
    return ValueError(f"{path}, line {line}: {error}; is it a binary file rather than CSV text?")


def _drain(path: PathLike, reader: Any, lines_before: int) -> bool:
    """Read the rest of the text for a csv error, which the old reader found first.

    Returns whether a non-blank row is left.
    """
    found = False
    try:
        for row in reader:
            found = found or not _blank(row)
    except csv.Error as error:
        raise _csv_error(path, lines_before + reader.line_num, error) from None
    return found


def _line_count(block: str) -> int:
    """The lines ``io.StringIO(block, newline="")`` gives (a block is never empty)."""
    ends = block.count("\n")
    if "\r" in block:
        ends += block.count("\r") - block.count("\r\n")
    return ends + (not block.endswith(("\n", "\r")))


def _loadtxt_block(block: str, lines: int, columns: int) -> np.ndarray | None:
    """The block's values (float64, one row per line), or None if it needs the csv module.

    np.loadtxt parses numbers with the same C function as float() and is several times
    faster than the csv module. It is trusted only when each of the block's ``lines``
    gave one row of ``columns`` numbers; blank lines and errors go to the csv module.
    The caller keeps from it what it reads differently (``_NOT_FOR_LOADTXT``, lines over
    the csv field limit).
    """
    if block.isspace():  # blank lines only; np.loadtxt would warn "no data"
        return None
    try:
        values = np.loadtxt(
            io.StringIO(block), dtype=np.float64, delimiter=",", comments=None, ndmin=2
        )
    except ValueError:
        return None
    return values if values.shape == (lines, columns) else None


def _csv_values(
    path: PathLike, rows: list[list[str]], header: list[str], number: int
) -> np.ndarray:
    """The float64 values of the non-blank ``rows``; ``number``: non-blank rows before them.

    Raises:
        ValueError: for the first row (numbered among the non-blank rows, header 1) with
            the wrong number of values or a cell that is not a number.
    """
    rows = [row for row in rows if not _blank(row)]
    columns = len(header)
    if all(len(row) == columns for row in rows):
        with contextlib.suppress(ValueError):  # the loop below names the bad cell
            cells = map(float, itertools.chain.from_iterable(rows))
            return np.fromiter(cells, np.float64, len(rows) * columns).reshape(-1, columns)
    values = np.empty((len(rows), columns), dtype=np.float64)
    for i, row in enumerate(rows, start=number + 1):
        if len(row) != columns:
            raise ValueError(f"{path}, line {i}: {len(row)} values for {columns} columns")
        for j, cell in enumerate(row):
            try:
                values[i - number - 1, j] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path}, line {i}, column {header[j]!r}: {cell!r} is not a number"
                ) from None
    return values


def _parse_csv(
    path: Path, label_column: str, limit: int, blocks: Iterator[str], line_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Parse checked text into arrays allocated once, with the old reader's errors.

    Errors keep the old reader's precedence (it parsed the whole text with the csv module
    before it looked at the header, and the header before the values): when the header
    or a row is wrong, the rest of the text is still read for a csv error.
    """
    current: list[io.StringIO] = []

    def header_lines() -> Iterator[str]:
        for block in blocks:
            current[:] = [io.StringIO(block, newline="")]
            yield from current[0]

    reader = csv.reader(header_lines())
    header = None
    try:
        for row in reader:
            if not _blank(row):
                header = [name.strip() for name in row]
                break
    except csv.Error as error:
        raise _csv_error(path, reader.line_num, error) from None
    lines_read = reader.line_num
    rest = itertools.chain([current[0].read()] if current else [], blocks)
    no_rows = f"{path}: expected a header row and at least one data row"
    if header is None:
        raise ValueError(no_rows)
    repeated = sorted({name for name in header if header.count(name) > 1})
    problem = None
    if repeated:
        problem = f"{path}: the header names {', '.join(repeated)} more than once"
    elif label_column not in header:
        problem = f"{path}: no column named {label_column!r}; the columns are {', '.join(header)}"
    if problem is not None:
        if not _drain(path, csv.reader(_lines(rest)), lines_read):
            raise ValueError(no_rows)
        raise ValueError(problem)

    columns, label = len(header), header.index(label_column)
    row_bytes = 4 * (columns - 1) + 8  # float32 features and an int64 label
    max_rows = limit // row_bytes
    # Allocated once: the line count bounds the rows, the limit bounds the bytes.
    capacity = min(max(line_count - lines_read, 0), max_rows)
    x = np.empty((capacity, columns - 1), dtype=np.float32)
    y = np.empty(capacity, dtype=np.float64)  # labels stay float64 until checked, as before
    filled = 0
    bad_count, first_bad = 0, None

    def store(values: np.ndarray) -> None:
        nonlocal filled, bad_count, first_bad
        end = filled + len(values)
        if end > max_rows:
            check_data_size(
                path,
                f"the data of at least {end:,} rows x {columns} columns "
                "(float32 features, int64 labels)",
                end * row_bytes,
                limit,
            )
        if end > capacity:
            raise ValueError(f"{path}: the file changed while it was read")
        features = x[filled:end]
        features[:, :label] = values[:, :label]
        features[:, label:] = values[:, label + 1 :]
        y[filled:end] = values[:, label]
        bad = ~np.isfinite(features)
        if bad.any():
            if first_bad is None:
                row, column = np.argwhere(bad)[0]
                first_bad = (filled + int(row), int(column))
            bad_count += int(bad.sum())
        filled = end

    # np.loadtxt block by block while blocks are plain numbers; from the first block that
    # needs it (quotes may span lines), the csv module reads the rest.
    reader = None
    for block in rest:
        if not block:
            continue
        if len(block) > csv.field_size_limit() or any(c in block for c in _NOT_FOR_LOADTXT):
            reader = csv.reader(_lines(itertools.chain([block], rest)))
            break
        lines = _line_count(block)
        values = _loadtxt_block(block, lines, columns)
        lines_read += lines
        if values is None:  # blank lines or a bad row: the csv module reads it, names it
            try:
                rows = list(csv.reader(io.StringIO(block, newline="")))
                values = _csv_values(path, rows, header, filled + 1)
            except ValueError:
                _drain(path, csv.reader(_lines(rest)), lines_read)
                raise
        store(values)
    if reader is not None:
        chunk_rows = max(1, _CSV_BLOCK_BYTES // (2 * columns))
        while True:
            try:
                rows = list(itertools.islice(reader, chunk_rows))
            except csv.Error as error:
                raise _csv_error(path, lines_read + reader.line_num, error) from None
            if not rows:
                break
            try:
                values = _csv_values(path, rows, header, filled + 1)
            except ValueError:
                _drain(path, reader, lines_read)
                raise
            store(values)

    if filled == 0:
        raise ValueError(no_rows)
    if first_bad is not None:
        raise ValueError(f"{path}: {bad_count} features are NaN or infinite (first at {first_bad})")
    if filled < capacity:  # blank lines: give back the rows not used, in place
        x.resize((filled, columns - 1), refcheck=False)
        y.resize(filled, refcheck=False)
    return x, _check_labels(path, y, filled)


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
