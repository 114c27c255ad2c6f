"""The message catalogues: every sentence a figure, table or page shows, per language.

Text lives in ``messages/<lang>.toml`` and nowhere else, so a translation is one file.

Examples:
    >>> get_messages("en")("curves.xlabel")
    'input x'
    >>> get_messages("ja")("curves.xlabel")
    '入力 x'

"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Any

__all__ = ["LANGUAGES", "Messages", "get_messages"]

LANGUAGES: tuple[str, ...] = ("en", "ja")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class Messages:
    """One language's catalogue; call it with a dotted key and format fields."""

    def __init__(self, lang: str, entries: dict[str, str]) -> None:
        self.lang = lang
        self.entries = entries

    def __call__(self, key: str, **fields: Any) -> str:
        """Return the message for ``key`` with ``fields`` filled in."""
        return self.entries[key].format(**fields)

    def keys(self) -> set[str]:
        """All keys of this catalogue."""
        return set(self.entries)


@functools.cache
def get_messages(lang: str) -> Messages:
    """Load the catalogue for ``lang`` (``"en"`` or ``"ja"``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"Expected a language in {', '.join(LANGUAGES)}, but got {lang!r}")
    text = resources.files("leaky.report").joinpath("messages", f"{lang}.toml").read_text("utf-8")
    return Messages(lang, _flatten(tomllib.loads(text)))
