"""How much array data a user file may hold before it is read: one limit for every loader.

Every loader reads the sizes a file declares (an ``.npy`` header, an IDX header, the file's
length) and compares them with the limit *before* it reads or inflates anything, so a
damaged header or a compression bomb costs nothing. The limit is, in order: the loader's
``max_bytes=`` argument, the environment variable ``LEAKY_MAX_DATA_BYTES`` (``8G``,
``500M`` or a number of bytes; it reaches ``leaky diagnose --data`` too), or 1 GiB.

Examples:
    >>> max_data_bytes(), max_data_bytes(4096)
    (1073741824, 4096)
    >>> import textwrap
    >>> try:
    ...     check_data_size("d.npz", "array 'x'", 5000, 4096)
    ... except ValueError as error:
    ...     print(textwrap.fill(str(error), 80))
    d.npz: array 'x' holds 4.9 KiB (5,000 bytes), more than the limit of 4.0 KiB
    (4,096 bytes); to read it anyway, pass max_bytes= to the loader or set
    LEAKY_MAX_DATA_BYTES (for example LEAKY_MAX_DATA_BYTES=1M)
"""

from __future__ import annotations

import math
import os

from leaky.system.byte_sizes import format_bytes, parse_bytes

__all__ = ["DEFAULT_MAX_DATA_BYTES", "MAX_DATA_BYTES_ENV", "check_data_size", "max_data_bytes"]

DEFAULT_MAX_DATA_BYTES = 2**30  # 1 GiB: MNIST is 47 MB and CIFAR-10 180 MB as stored
MAX_DATA_BYTES_ENV = "LEAKY_MAX_DATA_BYTES"


def max_data_bytes(max_bytes: int | None = None) -> int:
    """The limit in bytes: ``max_bytes`` if given, else ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB."""
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"Expected max_bytes to be a whole number >= 0, got {max_bytes!r}")
        return max_bytes
    text = os.environ.get(MAX_DATA_BYTES_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_DATA_BYTES
    return parse_bytes(text, MAX_DATA_BYTES_ENV)


def _suggestion(nbytes: int) -> str:
    # The next power of two in M or G units that holds the data, as an example to copy.
    mib = max(1, 2 ** math.ceil(math.log2(max(nbytes, 1) / 2**20)))
    return f"{mib // 1024}G" if mib >= 1024 else f"{mib}M"


def check_data_size(path: object, what: str, nbytes: int, limit: int) -> None:
    """Refuse ``nbytes`` of data declared by ``path`` when it is over ``limit``.

    Raises:
        ValueError: naming the file, what holds the bytes, the size, the limit and how
            to raise the limit.
    """
    if nbytes <= limit:
        return
    raise ValueError(
        f"{path}: {what} holds {format_bytes(nbytes)} ({nbytes:,} bytes), more than the "
        f"limit of {format_bytes(limit)} ({limit:,} bytes); to read it anyway, pass "
        f"max_bytes= to the loader or set {MAX_DATA_BYTES_ENV} (for example "
        f"{MAX_DATA_BYTES_ENV}={_suggestion(nbytes)})"
    )
