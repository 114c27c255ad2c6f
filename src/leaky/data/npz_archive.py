"""Read arrays from an ``.npz`` file without unpickling, and without trusting its sizes.

An ``.npz`` is a zip archive of ``.npy`` members. Before any array is read, each wanted
member's ``.npy`` header (shape and dtype) and the zip entry's declared size are checked:
object arrays are refused (they can only be unpickled), the declared bytes are compared
with the data limit (:mod:`leaky.data.size_limit`), and a member that holds less or more
data than its header promises is called truncated or damaged. Reading then allocates only
what the header declared and inflates no further, so a compression bomb costs nothing.
A file that is no zip at all (text, a lone ``.npy``, random bytes, a truncated archive) is
named for what it is, in one line.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(p, x=np.ones((3, 2)), y=np.array([0, 1, 1]))
    >>> npz_array_names(p)
    ['x', 'y']
    >>> read_npz(p, ["y"])["y"].tolist()
    [0, 1, 1]
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leaky.data.size_limit import check_data_size, max_data_bytes

__all__ = ["npz_array_names", "read_npz"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
# What a damaged archive or member can raise from zipfile, zlib and numpy's header parser.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


@dataclass(frozen=True)
class _Member:
    name: str  # the array's name (the member's name without ".npy")
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int  # bytes of .npy header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"array {self.name!r} of shape {self.shape} {self.dtype}"


def _what_it_is(path: Path, head: bytes) -> str:
    """One line saying what a file that is no zip archive seems to be."""
    expected = "an .npz archive (a zip of arrays written by numpy.savez)"
    if not head:
        return f"{path} is empty, not {expected}"
    if head.startswith(_NPY_MAGIC):
        return (
            f"{path} is a single .npy array, not an .npz archive; save the arrays with "
            "numpy.savez(path, x=..., y=...)"
        )
    if head.startswith(_ZIP_MAGIC):
        return (
            f"{path} is a truncated or damaged .npz archive: it starts like a zip file but "
            "its table of contents is missing or unreadable"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:  # a multi-byte character cut at the end is still text
        text = head[: error.start].decode("utf-8") if error.start > len(head) - 4 else ""
    if text and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        return f"{path} is a text file, not {expected}"
    return f"{path} is not {expected}; it starts with the bytes {head[:8].hex(' ')}"


def _open(path: Path) -> zipfile.ZipFile:
    if path.is_dir():
        raise ValueError(f"Data file {str(path)!r} is a directory, not an .npz file")
    if not path.is_file():
        raise ValueError(f"Data file {str(path)!r} does not exist")
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
        is_zip = zipfile.is_zipfile(path)
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None
    if not is_zip:
        raise ValueError(_what_it_is(path, head))
    try:
        return zipfile.ZipFile(path)
    except _DAMAGE as error:
        raise ValueError(f"{path} is a truncated or damaged .npz archive ({error})") from None


def _array_names(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {
        info.filename[: -len(".npy")]: info
        for info in archive.infolist()
        if info.filename.endswith(".npy") and not info.is_dir()
    }


def _no_arrays(path: Path, archive: zipfile.ZipFile) -> ValueError:
    held = [repr(info.filename) for info in archive.infolist()][:5]  # repr: one line
    return ValueError(
        f"{path} is a zip archive with no .npy arrays (it holds {', '.join(held) or 'nothing'}); "
        "an .npz is written by numpy.savez(path, x=..., y=...)"
    )


def _header(path: Path, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> _Member:
    """Read one member's .npy header (a few hundred bytes) and check it against the entry."""
    try:
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
            else:  # 3.0 (utf-8 field names): the same header through numpy's own parser
                shape, _, dtype = np.lib.format._read_array_header(stream, version)
            offset = stream.tell()
    except _DAMAGE as error:
        raise ValueError(
            f"{path}: array {name!r} has no readable .npy header ({error}); the file is "
            "damaged or not written by numpy.savez"
        ) from None
    member = _Member(name, info, tuple(int(d) for d in shape), np.dtype(dtype), offset)
    if member.dtype.hasobject:
        raise ValueError(
            f"{path}: array {name!r} holds Python objects (dtype object), which cannot be read "
            "without pickles, and leaky never unpickles; save numeric arrays instead"
        )
    return member


def _check_member_size(path: Path, member: _Member) -> None:
    declared = member.info.file_size - member.data_offset
    if declared < member.nbytes:
        raise ValueError(
            f"{path}: {member.describe()} needs {member.nbytes:,} bytes but the archive holds "
            f"{max(declared, 0):,}; the file is truncated or damaged"
        )
    if declared > member.nbytes:
        raise ValueError(
            f"{path}: {member.describe()} is followed by {declared - member.nbytes:,} more "
            "bytes than its header declares; the file is damaged or not what it claims"
        )


def npz_array_names(path: str | os.PathLike[str]) -> list[str]:
    """The names of the arrays in an ``.npz`` (its ``.npy`` members), reading no data.

    Raises:
        ValueError: the file is missing or no readable ``.npz`` (one line naming it).
    """
    path = Path(path)
    with _open(path) as archive:
        names = list(_array_names(archive))
        if not names:
            raise _no_arrays(path, archive)
    return names


def read_npz(
    path: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    *,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """Read the arrays ``names`` (default: all) of an ``.npz``, checking every header first.

    Args:
        path: the ``.npz`` file.
        names: arrays to read; a name the file lacks is an error that lists what it holds.
        max_bytes: most bytes of array data to read, summed over ``names``. Default: the
            environment variable ``LEAKY_MAX_DATA_BYTES``, else 1 GiB.

    Raises:
        ValueError: one line naming the file and the problem: not an ``.npz``, truncated
            or damaged, object arrays, or more data than ``max_bytes``.
    """
    path = Path(path)
    limit = max_data_bytes(max_bytes)
    with _open(path) as archive:
        available = _array_names(archive)
        if not available:
            raise _no_arrays(path, archive)
        wanted = list(available) if names is None else list(names)
        missing = [name for name in wanted if name not in available]
        if missing:
            raise ValueError(f"{path} has no array {missing[0]!r}; it holds {', '.join(available)}")
        members = [_header(path, archive, name, available[name]) for name in wanted]
        for member in members:
            check_data_size(path, member.describe(), member.nbytes, limit)
        total = sum(member.nbytes for member in members)
        if len(members) > 1:
            check_data_size(path, f"{len(members)} arrays together", total, limit)
        for member in members:
            _check_member_size(path, member)
        arrays = {}
        for member in members:
            try:
                with archive.open(member.info) as stream:
                    # Allocates what the header declared (checked above) and reads only that.
                    arrays[member.name] = np.lib.format.read_array(stream, allow_pickle=False)
            except _DAMAGE as error:
                raise ValueError(f"{path}: {member.describe()} is damaged ({error})") from None
    return arrays
