"""The playground's settings: one dataclass, its ranges, and a validator that names each problem.

Every setting the page can send is a field of :class:`PlaygroundParams` with a range in
:data:`FIELDS`. :func:`validate_params` checks a JSON object against them: unknown fields,
wrong types and values out of range are each reported against the field they concern, so
the page can show the message next to its control. A model too large for
:data:`MAX_PARAMETERS` is refused here, before anything is built.

Examples:
    >>> params, errors = validate_params({"depth": 0, "colour": "red"})
    >>> sorted(errors)
    ['colour', 'depth']
    >>> errors["depth"].message
    'Expected `depth` to be an integer from 1 to 50, but got 0.'
    >>> validate_params({"depth": 3})[0].depth
    3
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from leaky.core.spec import activation_names

__all__ = [
    "DATASETS",
    "FIELDS",
    "INITS",
    "MAX_PARAMETERS",
    "OPTIMIZERS",
    "FieldError",
    "FieldRange",
    "PlaygroundParams",
    "parameter_count",
    "read_text_values",
    "validate_params",
]

DATASETS: tuple[str, ...] = ("spirals", "circles", "xor", "blobs", "fn1d")
INITS: tuple[str, ...] = ("kaiming", "xavier", "torch")  # torch: PyTorch's default
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")
# Over all networks of a session (compare mode trains two): a 20 x 64 network has about
# 80,000, a 50 x 140 one about 1,000,000. Larger models train too slowly to watch live.
MAX_PARAMETERS = 1_000_000


@dataclass(frozen=True)
class PlaygroundParams:
    """One setup of the playground; the defaults are what the page opens with."""

    dataset: str = "spirals"
    noise: float = 0.05  # standard deviation of the noise added to the points (or targets)
    train_fraction: float = 0.7  # of the points, for training; the rest is the test set
    activation: str = "leaky_relu"
    negative_slope: float = 0.01  # Leaky ReLU's slope below zero
    prelu_init: float = 0.25  # PReLU's initial slope
    rrelu_lower: float = 1.0 / 8  # RReLU's slope range in training
    rrelu_upper: float = 1.0 / 3
    depth: int = 4  # hidden layers
    width: int = 16  # units per hidden layer
    init: str = "kaiming"
    bias_shift: float = 0.0  # subtracted from every hidden layer's initial bias
    optimizer: str = "adam"
    learning_rate: float = 0.01
    batch_size: int = 32
    recycle_every: int = 0  # steps between recyclings of the dead units (ReDo); 0: never
    seed: int = 0
    compare: bool = False  # train a second network differing only in its activation
    compare_activation: str = "relu"

    def activation_options(self, activation: str | None = None) -> dict[str, Any]:
        """Keyword options for ``activation`` (default: this setup's) from the slope fields."""
        name = self.activation if activation is None else activation
        if name == "leaky_relu":
            return {"negative_slope": self.negative_slope}
        if name == "prelu":
            return {"init": self.prelu_init}
        if name == "rrelu":
            return {"lower": self.rrelu_lower, "upper": self.rrelu_upper}
        return {}

    def activations(self) -> tuple[str, ...]:
        """The activations trained side by side: the compared one first, when comparing."""
        return (self.compare_activation, self.activation) if self.compare else (self.activation,)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class FieldRange:
    """What one field accepts: a kind and bounds, or a list of choices."""

    kind: str  # "int", "float", "bool" or "choice"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    log: bool = False  # shown on a log scale

    def describe(self) -> str:
        """The accepted values in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        noun = "an integer" if self.kind == "int" else "a number"
        return f"{noun} from {self.low:g} to {self.high:g}"


FIELDS: dict[str, FieldRange] = {
    "dataset": FieldRange("choice", choices=DATASETS),
    "noise": FieldRange("float", 0.0, 0.5),
    "train_fraction": FieldRange("float", 0.1, 0.9),
    "activation": FieldRange("choice", choices=activation_names()),
    "negative_slope": FieldRange("float", 0.0, 1.0),
    "prelu_init": FieldRange("float", 0.0, 1.0),
    "rrelu_lower": FieldRange("float", 0.0, 1.0),
    "rrelu_upper": FieldRange("float", 0.0, 1.0),
    "depth": FieldRange("int", 1, 50),
    "width": FieldRange("int", 2, 256),
    "init": FieldRange("choice", choices=INITS),
    "bias_shift": FieldRange("float", 0.0, 5.0),
    "optimizer": FieldRange("choice", choices=OPTIMIZERS),
    "learning_rate": FieldRange("float", 1e-5, 1.0, log=True),
    "batch_size": FieldRange("int", 1, 512),
    "recycle_every": FieldRange("int", 0, 10_000),
    "seed": FieldRange("int", 0, 2**31 - 1),
    "compare": FieldRange("bool"),
    "compare_activation": FieldRange("choice", choices=activation_names()),
}
assert set(FIELDS) == {f.name for f in fields(PlaygroundParams)}


@dataclass(frozen=True)
class FieldError:
    """A problem with one field: a catalogue key for the page, and the message in English.

    ``code`` is one of ``unknown``, ``type``, ``range``, ``choice``, ``too_large``,
    ``order``; ``details`` fills the catalogue's template
    (``playground.errors.<code>``).
    """

    code: str
    message: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"code": self.code, "message": self.message, **self.details}


def parameter_count(params: PlaygroundParams) -> int:
    """Weights and biases of every network the setup trains (PReLU slopes included).

    Examples:
        >>> parameter_count(PlaygroundParams(depth=1, width=2))  # 2-2 then 2-2 outputs
        12
    """
    inputs = 1 if params.dataset == "fn1d" else 2
    outputs = 1 if params.dataset == "fn1d" else 2
    total = 0
    for activation in params.activations():
        count, fan_in = 0, inputs
        for _ in range(params.depth):
            count += fan_in * params.width + params.width
            if activation == "prelu":
                count += params.width
            fan_in = params.width
        total += count + fan_in * outputs + outputs
    return total


def _check_value(name: str, value: Any, spec: FieldRange) -> tuple[Any, FieldError | None]:
    got = {"field": name, "got": value, "expected": spec.describe(), "kind": spec.kind}
    type_error = FieldError(
        "type", f"Expected `{name}` to be {spec.describe()}, but got {value!r}.", got
    )
    if spec.kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, type_error)
    if spec.kind == "choice":
        if not isinstance(value, str):
            return None, type_error
        if value not in spec.choices:
            return None, FieldError(
                "choice", f"Expected `{name}` to be {spec.describe()}, but got {value!r}.", got
            )
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, type_error
    if spec.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
        return None, type_error
    if not math.isfinite(value) or not spec.low <= value <= spec.high:  # type: ignore[operator]
        return None, FieldError(
            "range",
            f"Expected `{name}` to be {spec.describe()}, but got {value!r}.",
            {**got, "low": spec.low, "high": spec.high},
        )
    return (int(value) if spec.kind == "int" else float(value)), None


def read_text_values(texts: Mapping[str, str]) -> dict[str, Any]:
    """Settings written as text (a link's query) -> JSON values, for :func:`validate_params`.

    Numbers and ``true`` / ``false`` are read by their field's kind; text that is not one
    is kept as it is, so the validator names the field and what it got.

    Examples:
        >>> read_text_values({"depth": "3", "compare": "true", "noise": "x", "dataset": "xor"})
        {'depth': 3, 'compare': True, 'noise': 'x', 'dataset': 'xor'}
    """
    values: dict[str, Any] = {}
    for name, text in texts.items():
        spec = FIELDS.get(name)
        value: Any = text
        if spec is not None and spec.kind == "bool":
            value = {"true": True, "false": False}.get(text, text)
        elif spec is not None and spec.kind in ("int", "float"):
            try:
                number = float(text)
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                value = int(number) if spec.kind == "int" and number.is_integer() else number
        values[name] = value
    return values


def validate_params(
    changes: Any, base: PlaygroundParams | None = None
) -> tuple[PlaygroundParams, dict[str, FieldError]]:
    """Apply ``changes`` (a JSON object) to ``base``; return the new setup and the errors.

    With any error the returned setup is ``base`` unchanged: a setup is taken whole or
    not at all.
    """
    base = PlaygroundParams() if base is None else base
    if not isinstance(changes, dict):
        error = FieldError(
            "type",
            f"Expected the settings as a JSON object, but got {type(changes).__name__}.",
            {"field": "settings", "got": str(changes)[:40], "expected": "a JSON object"},
        )
        return base, {"settings": error}
    errors: dict[str, FieldError] = {}
    values: dict[str, Any] = {}
    for name, value in changes.items():
        spec = FIELDS.get(name) if isinstance(name, str) else None
        if spec is None:
            errors[str(name)] = FieldError(
                "unknown",
                f"Unknown setting `{name}`. Valid settings: {', '.join(FIELDS)}.",
                {"field": str(name)},
            )
            continue
        checked, error = _check_value(name, value, spec)
        if error is not None:
            errors[name] = error
        else:
            values[name] = checked
    if errors:
        return base, errors
    params = replace(base, **values)
    if params.rrelu_lower > params.rrelu_upper:
        message = (
            f"Expected `rrelu_lower` to be at most `rrelu_upper` ({params.rrelu_upper:g}), "
            f"but got {params.rrelu_lower:g}."
        )
        details = {"field": "rrelu_lower", "got": params.rrelu_lower, "high": params.rrelu_upper}
        return base, {"rrelu_lower": FieldError("order", message, details)}
    count = parameter_count(params)
    if count > MAX_PARAMETERS:
        message = (
            f"Expected at most {MAX_PARAMETERS:,} parameters over all networks, but depth "
            f"{params.depth} x width {params.width} gives {count:,}; lower the depth or width."
        )
        details = {"field": "width", "got": count, "high": MAX_PARAMETERS}
        error = FieldError("too_large", message, details)
        return base, {"width": error, "depth": error}
    return params, {}
