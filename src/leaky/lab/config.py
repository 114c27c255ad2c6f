"""Configuration is data: a dataclass with typed defaults, overridden by TOML and ``key=value``.

Unknown keys and values of the wrong type are errors that name the key. The resolved
config is what gets stored with every result, and its hash (with the seed) names the run.

Examples:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Config:
    ...     depth: int = 10
    ...     activations: tuple[str, ...] = ("relu", "leaky_relu")
    ...     lr: float = 0.1
    >>> resolve(Config, parse_assignments(["depth=20", "activations=tanh,relu"]))
    Config(depth=20, activations=('tanh', 'relu'), lr=0.1)
    >>> resolve(Config, {"dpeth": 3})
    Traceback (most recent call last):
    ...
    ValueError: Unknown config key 'dpeth' for Config; valid keys: depth, activations, lr
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "Setting",
    "config_hash",
    "config_to_dict",
    "describe_config",
    "format_value",
    "load_toml",
    "parse_assignments",
    "resolve",
]

T = TypeVar("T")


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split ``["key=value", ...]`` into a dict of strings (typed later by :func:`resolve`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Expected --set key=value, but got {item!r}")
        out[key.strip()] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file of overrides (top-level keys only).

    Raises:
        ValueError: one line naming the file: missing, unreadable, not UTF-8 text (a
            binary file, with the first bad byte), or not valid TOML.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Config file {str(path)!r} is a directory, not a TOML file")
    if not path.is_file():
        raise ValueError(f"Config file {str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"Cannot read config file {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "expected a TOML file of key = value lines such as: width = 64"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None


def _convert(key: str, value: Any, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() == "none")
        if type(None) in args and is_none:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(key, value, option)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(
                f"Expected {key} to be one of {', '.join(map(str, args))}, got {value!r}"
            )
        return value
    if origin is tuple:
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            items = [value]  # a single value for a list field: a list of one
        element = args[0] if args else str
        return tuple(
            _convert(key, item.strip() if isinstance(item, str) else item, element)
            for item in items
            if not (isinstance(item, str) and not item.strip())
        )
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"Expected {key} to be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"Expected {key} to be an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"Expected {key} to be an integer, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"Expected {key} to be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Expected {key} to be a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"Expected {key} to be a finite number, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"Expected {key} to be text, got {value!r}")
        return value
    raise TypeError(f"Config field {key} has an unsupported type {kind!r}")


def resolve(config_class: type[T], overrides: Mapping[str, Any] | None = None, **more: Any) -> T:
    """Build ``config_class`` from its defaults and the overrides, converting types.

    Raises:
        ValueError: an unknown key (naming the valid ones) or a value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(config_class)
    values = {}
    for key, value in {**(overrides or {}), **more}.items():
        if key not in fields:
            raise ValueError(
                f"Unknown config key {key!r} for {config_class.__name__}; valid keys: "
                f"{', '.join(fields)}"
            )
        values[key] = _convert(key, value, hints[key])
    return config_class(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(*parts: Any) -> str:
    """Stable short hash of JSON-able parts (config dicts, names, seeds).

    Examples:
        >>> config_hash({"a": 1}, 0) == config_hash({"a": 1}, 0) != config_hash({"a": 1}, 1)
        True
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One config field as a user sees it: name, type, default and what it means."""

    name: str
    type: str  # e.g. "int", "list of str", "float or none"
    default: Any
    about: str = ""  # the comment beside the field in the config class


def _type_text(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_text(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return f"list of {_type_text(args[0]) if args else 'str'}"
    return getattr(kind, "__name__", str(kind))


def format_value(value: Any) -> str:
    """A config value as ``--set key=VALUE`` takes it (lists comma-separated).

    Examples:
        >>> format_value((5, 10)), format_value(0.05), format_value(("relu",))
        ('5,10', '0.05', 'relu')
    """
    if isinstance(value, list | tuple):
        return ",".join(format_value(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def describe_config(config_class: type) -> list[Setting]:
    """Every setting of a config dataclass, in order, with the comment written beside it.

    Examples:
        >>> from leaky.lab.experiments.vanishing import VanishingConfig
        >>> depths = describe_config(VanishingConfig)[0]
        >>> depths.name, depths.type, format_value(depths.default), depths.about
        ('depths', 'list of int', '5,10,20,40', 'hidden layers')
    """
    hints = typing.get_type_hints(config_class)
    try:
        source = inspect.getsource(config_class)
    except (OSError, TypeError):  # no source (a frozen app): settings without comments
        source = ""
    comments = dict(re.findall(r"^ {4}(\w+)\s*:[^#\n]*#\s*(.*?)\s*$", source, flags=re.M))
    return [
        Setting(
            name=f.name,
            type=_type_text(hints[f.name]),
            default=f.default if f.default is not dataclasses.MISSING else f.default_factory(),  # type: ignore[misc]
            about=comments.get(f.name, ""),
        )
        for f in dataclasses.fields(config_class)
    ]
