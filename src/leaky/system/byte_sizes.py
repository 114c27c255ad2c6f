"""Sizes in bytes, written for people ("1.5 GiB") and read from them ("8G", "500M").

Examples:
    >>> format_bytes(1536), format_bytes(3 * 2**30)
    ('1.5 KiB', '3.0 GiB')
    >>> parse_bytes("8G", "LEAKY_MAX_DATA_BYTES"), parse_bytes("1024", "limit")
    (8589934592, 1024)
"""

from __future__ import annotations

import re

__all__ = ["format_bytes", "parse_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def format_bytes(count: int | float) -> str:
    """``count`` bytes in binary units with one decimal; beyond PiB the number just grows.

    Examples:
        >>> format_bytes(0), format_bytes(2**20), format_bytes(2**60)
        ('0 B', '1.0 MiB', '1,024.0 PiB')
    """
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def parse_bytes(text: str, name: str) -> int:
    """A byte count such as ``4294967296``, ``512M``, ``4G`` or ``4GiB`` (binary units).

    Raises:
        ValueError: naming ``name`` (the setting the text came from) and the accepted forms.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(
            f"Expected {name} to be a number of bytes such as 4294967296, 512M or 4G, "
            f"but got {text!r}"
        )
    return int(float(match[1]) * _SUFFIXES[match[2].upper()])
