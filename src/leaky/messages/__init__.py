"""The message catalogues: every sentence a figure, table, finding or page shows, per language.

Text lives in ``leaky/messages/<lang>.toml`` and nowhere else, so a translation is one file.
Beside the catalogues sits what every figure shares, whichever layer draws it: one colour
per activation and the fonts that carry each language (:mod:`.style`), and figures saved
whole, as PNG and SVG, in the reader's language (:mod:`.figure_files`).
Templates are :meth:`str.format` strings; :meth:`Messages.__call__` fills them from data,
translating what the data spells in code (verdicts, task kinds, ``True``) through the
catalogue's ``[terms]`` table and printing a missing number (NaN) as "n/a".

Examples:
    >>> get_messages("en")("curves.xlabel")
    'input x'
    >>> get_messages("ja")("curves.xlabel")
    '入力 x'
    >>> get_messages("en")("findings.born-dead.leaky_never.detail", born_dead=0, trials=4000)
    '0 of 4000 Leaky ReLU networks born dead over every cell'

"""

from __future__ import annotations

import functools
import math
import string
import tomllib
from importlib import resources
from typing import Any

__all__ = ["LANGUAGES", "Messages", "get_messages", "placeholders"]

LANGUAGES: tuple[str, ...] = ("en", "ja")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def placeholders(template: str) -> set[str]:
    """The field names a template uses (``{ci95[0]:.3f}`` counts as ``ci95``).

    Examples:
        >>> sorted(placeholders("{a:.2f} and {b[0]} {{literal}}"))
        ['a', 'b']
    """
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field.split("[", 1)[0].split(".", 1)[0])
    return names


class _Missing:
    """A number that is not there (NaN): formats as the catalogue's "n/a" whatever the spec."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __format__(self, spec: str) -> str:
        return self.text


class Messages:
    """One language's catalogue; call it with a dotted key and the fields to fill in."""

    def __init__(self, lang: str, entries: dict[str, str]) -> None:
        self.lang = lang
        self.entries = entries

    def __call__(self, key: str, **fields: Any) -> str:
        """Return the message for ``key`` with ``fields`` filled in.

        A field that is a dict of dicts is written with the sibling template
        ``<key's parent>.<field>_item`` once per entry (its key as ``name``), joined.
        """
        parent = key.rsplit(".", 1)[0]
        values = {}
        for name, value in fields.items():
            item = f"{parent}.{name}_item"
            if isinstance(value, dict) and item in self.entries:
                value = self.terms("separator").join(
                    self(item, name=entry, **row) for entry, row in value.items()
                ) or self.terms("none")
            values[name] = self._readable(value)
        return self.entries[key].format(**values)

    def _readable(self, value: Any) -> Any:
        if isinstance(value, bool):
            return self.terms("yes" if value else "no")
        if isinstance(value, float) and math.isnan(value):
            return _Missing(self.terms("not_available"))
        if isinstance(value, str):
            return self.terms(value, default=value)
        if isinstance(value, list | tuple):
            if value and all(isinstance(v, str) for v in value):
                return self.terms("separator").join(self.terms(v, default=v) for v in value)
            return [self._readable(v) for v in value] if value else self.terms("none")
        if isinstance(value, dict):
            return {k: self._readable(v) for k, v in value.items()}
        return value

    def terms(self, word: str, default: str | None = None) -> str:
        """A word from the ``[terms]`` table (``default``, or a KeyError, when absent)."""
        found = self.entries.get(f"terms.{word}")
        if found is None:
            if default is None:
                raise KeyError(f"terms.{word}")
            return default
        return found

    def has(self, key: str) -> bool:
        """Whether the catalogue has ``key``."""
        return key in self.entries

    def keys(self) -> set[str]:
        """All keys of this catalogue."""
        return set(self.entries)


@functools.cache
def get_messages(lang: str) -> Messages:
    """Load the catalogue for ``lang`` (``"en"`` or ``"ja"``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"Expected a language in {', '.join(LANGUAGES)}, but got {lang!r}")
    text = resources.files("leaky.messages").joinpath(f"{lang}.toml").read_text("utf-8")
    return Messages(lang, _flatten(tomllib.loads(text)))
