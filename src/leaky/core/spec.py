"""The one table that is the truth about activations.

Every other part of :mod:`leaky` (the factory, the modules' defaults, initialisation gains,
the monitor, the plots and the report) reads its facts from :data:`SPECS`. Add an
activation here and everything else picks it up; there is no second dict that can drift.

Examples:
    >>> get_spec("lrelu").name
    'leaky_relu'
    >>> round(get_spec("leaky_relu").gain(negative_slope=0.2), 6)
    1.38675
    >>> [s.name for s in SPECS if s.can_die]
    ['relu', 'relu6', 'hardtanh', 'hardsigmoid', 'hardswish']

"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from leaky.core import reference as ref

__all__ = ["SPECS", "ActivationSpec", "activation_names", "get_spec", "leaky_gain"]


def leaky_gain(negative_slope: float = 0.01) -> float:
    """He et al. (2015) gain for a Leaky ReLU: sqrt(2 / (1 + a^2)).

    It makes Var(w) = gain^2 / fan_in keep the forward signal's second moment constant
    from layer to layer. a = 0 gives ReLU's sqrt(2); a = 1 (the identity) gives 1.

    Examples:
        >>> leaky_gain(0.0) == math.sqrt(2)
        True

    """
    return math.sqrt(2.0 / (1.0 + negative_slope**2))


def _rrelu_gain(lower: float = 1.0 / 8, upper: float = 1.0 / 3, **_: Any) -> float:
    # A random slope a ~ U(lower, upper) enters the second moment as E[a^2].
    mean_square_slope = (lower * lower + lower * upper + upper * upper) / 3.0
    return math.sqrt(2.0 / (1.0 + mean_square_slope))


@dataclass(frozen=True)
class ActivationSpec:
    """One row of the activation table.

    Attributes:
        name: canonical name, as ``torch.nn.functional`` spells it.
        title: name for people ("Leaky ReLU").
        aliases: other names :func:`get_spec` accepts (lookup ignores case, so the
            ``torch.nn`` class names work too).
        family: ``"rectifier"`` (piecewise linear), ``"saturating"`` (bounded on both
            sides) or ``"smooth"`` (comparison points).
        defaults: the module's keyword defaults, PyTorch's own.
        forward: float64 reference ``f(x, **params)`` from :mod:`leaky.core.reference`.
        derivative: float64 reference ``f'(x, **params)``.
        gain: initialisation gain ``gain(**params)``; agrees with
            ``torch.nn.init.calculate_gain`` wherever PyTorch knows the activation.
        module: ``"package.module:Class"`` that :func:`leaky.nn.get_activation` builds.
        torch_modules: ``torch.nn`` classes that compute this activation (for the monitor
            and for converting models).
        slope_param: the keyword that sets the slope below zero, if there is one.
        saves: what the backward pass keeps alive, in words.
        can_die: True when the gradient is exactly 0 on a whole half-line (ReLU: every
            input <= 0), so that a unit whose pre-activation stays there stops learning for
            good.
        saturates: True when the derivative vanishes (or is 0) for large |x| on both sides.
        output_range: ``output_range(**params) -> (low, high)``, the bounds a saturating
            activation's output approaches where its derivative vanishes (None when the
            output is unbounded). The monitor counts an output as saturated when it lies
            within a margin of a bound (see :mod:`leaky.diagnosis.monitor.site_stats`).
        saturating_ends: which of the two bounds are saturation (ReLU6 saturates only at
            6: its low end is the rectifier's inactive side, counted as "never active").
        double_backward: whether second derivatives are supported.

    """

    name: str
    title: str
    aliases: tuple[str, ...]
    family: str
    defaults: Mapping[str, Any]
    forward: Callable[..., np.ndarray]
    derivative: Callable[..., np.ndarray]
    gain: Callable[..., float]
    module: str
    torch_modules: tuple[type[torch.nn.Module], ...]
    slope_param: str | None = None
    saves: str = "output"
    can_die: bool = False
    saturates: bool = False
    double_backward: bool = True
    output_range: Callable[..., tuple[float, float]] | None = None
    saturating_ends: tuple[bool, bool] = (True, True)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "names", (self.name, *self.aliases))

    def module_class(self) -> type[torch.nn.Module]:
        """Import and return the ``torch.nn.Module`` class that implements this row."""
        module_path, _, class_name = self.module.partition(":")
        return getattr(importlib.import_module(module_path), class_name)

    def negative_slope(self, **params: Any) -> float | None:
        """The slope below zero for these params (the mean slope for RReLU), else None."""
        merged = {**self.defaults, **params}
        if self.name == "relu":
            return 0.0
        if self.name == "rrelu":
            return (merged["lower"] + merged["upper"]) / 2.0
        return None if self.slope_param is None else float(merged[self.slope_param])


def _smooth_gain(f: Callable[[np.ndarray], np.ndarray]) -> Callable[..., float]:
    def gain(**params: Any) -> float:
        return ref.second_moment_gain(lambda x: f(x, **params))

    return gain


SPECS: tuple[ActivationSpec, ...] = (
    ActivationSpec(
        name="relu",
        title="ReLU",
        aliases=(),
        family="rectifier",
        defaults={"inplace": False},
        forward=lambda x, **_: ref.relu(x),
        derivative=lambda x, **_: ref.relu_derivative(x),
        gain=lambda **_: math.sqrt(2.0),
        module="torch.nn:ReLU",
        torch_modules=(torch.nn.ReLU,),
        saves="output",
        can_die=True,
    ),
    ActivationSpec(
        name="leaky_relu",
        title="Leaky ReLU",
        aliases=("lrelu", "leaky", "LeakyReLU"),
        family="rectifier",
        defaults={"negative_slope": 0.01, "inplace": False},
        forward=lambda x, negative_slope=0.01, **_: ref.leaky_relu(x, negative_slope),
        derivative=lambda x, negative_slope=0.01, **_: ref.leaky_relu_derivative(x, negative_slope),
        gain=lambda negative_slope=0.01, **_: leaky_gain(negative_slope),
        module="leaky.nn:LeakyReLU",
        torch_modules=(torch.nn.LeakyReLU,),
        slope_param="negative_slope",
        saves="output (or a 1-bit mask); the input only for a negative slope",
    ),
    ActivationSpec(
        name="prelu",
        title="PReLU",
        aliases=(),
        family="rectifier",
        defaults={"num_parameters": 1, "init": 0.25},
        forward=lambda x, init=0.25, **_: ref.prelu(x, init),
        derivative=lambda x, init=0.25, **_: ref.prelu_derivative(x, init)[0],
        gain=lambda init=0.25, **_: leaky_gain(init),
        module="leaky.nn:PReLU",
        torch_modules=(torch.nn.PReLU,),
        slope_param="init",
        saves="input and weight (the slope's gradient needs x itself)",
    ),
    ActivationSpec(
        name="rrelu",
        title="RReLU",
        aliases=(),
        family="rectifier",
        defaults={"lower": 1.0 / 8, "upper": 1.0 / 3, "inplace": False},
        forward=lambda x, lower=1 / 8, upper=1 / 3, **_: ref.rrelu(x, lower, upper),
        derivative=lambda x, lower=1 / 8, upper=1 / 3, **_: ref.rrelu_derivative(x, lower, upper),
        gain=_rrelu_gain,
        module="leaky.nn:RReLU",
        torch_modules=(torch.nn.RReLU,),
        saves="output; in training also one integer seed that regenerates the slopes",
    ),
    ActivationSpec(
        name="sigmoid",
        title="Sigmoid",
        aliases=("logistic",),
        family="saturating",
        defaults={},
        forward=lambda x, **_: ref.sigmoid(x),
        derivative=lambda x, **_: ref.sigmoid_derivative(x),
        gain=lambda **_: 1.0,
        module="torch.nn:Sigmoid",
        torch_modules=(torch.nn.Sigmoid,),
        saturates=True,
        output_range=lambda **_: (0.0, 1.0),
    ),
    ActivationSpec(
        name="tanh",
        title="tanh",
        aliases=(),
        family="saturating",
        defaults={},
        forward=lambda x, **_: ref.tanh(x),
        derivative=lambda x, **_: ref.tanh_derivative(x),
        gain=lambda **_: 5.0 / 3.0,
        module="torch.nn:Tanh",
        torch_modules=(torch.nn.Tanh,),
        saturates=True,
        output_range=lambda **_: (-1.0, 1.0),
    ),
    ActivationSpec(
        name="elu",
        title="ELU",
        aliases=(),
        family="smooth",
        defaults={"alpha": 1.0, "inplace": False},
        forward=lambda x, alpha=1.0, **_: ref.elu(x, alpha),
        derivative=lambda x, alpha=1.0, **_: ref.elu_derivative(x, alpha),
        gain=_smooth_gain(lambda x, alpha=1.0, **_: ref.elu(x, alpha)),
        module="torch.nn:ELU",
        torch_modules=(torch.nn.ELU,),
        saves="input",
    ),
    ActivationSpec(
        name="gelu",
        title="GELU",
        aliases=(),
        family="smooth",
        defaults={"approximate": "none"},
        forward=lambda x, **_: ref.gelu(x),
        derivative=lambda x, **_: ref.gelu_derivative(x),
        gain=_smooth_gain(lambda x, **_: ref.gelu(x)),
        module="torch.nn:GELU",
        torch_modules=(torch.nn.GELU,),
        saves="input",
    ),
    ActivationSpec(
        name="silu",
        title="SiLU",
        aliases=("swish",),
        family="smooth",
        defaults={"inplace": False},
        forward=lambda x, **_: ref.silu(x),
        derivative=lambda x, **_: ref.silu_derivative(x),
        gain=_smooth_gain(lambda x, **_: ref.silu(x)),
        module="torch.nn:SiLU",
        torch_modules=(torch.nn.SiLU,),
        saves="input",
    ),
    ActivationSpec(
        name="relu6",
        title="ReLU6",
        aliases=(),
        family="rectifier",
        defaults={"inplace": False},
        forward=lambda x, **_: ref.hardtanh(x, 0.0, 6.0),
        derivative=lambda x, **_: ref.hardtanh_derivative(x, 0.0, 6.0),
        gain=_smooth_gain(lambda x, **_: ref.hardtanh(x, 0.0, 6.0)),
        module="torch.nn:ReLU6",
        torch_modules=(torch.nn.ReLU6,),
        saves="input",
        can_die=True,
        saturates=True,
        output_range=lambda **_: (0.0, 6.0),
        saturating_ends=(False, True),
    ),
    ActivationSpec(
        name="hardtanh",
        title="Hardtanh",
        aliases=(),
        family="saturating",
        defaults={"min_val": -1.0, "max_val": 1.0, "inplace": False},
        forward=lambda x, min_val=-1.0, max_val=1.0, **_: ref.hardtanh(x, min_val, max_val),
        derivative=lambda x, min_val=-1.0, max_val=1.0, **_: ref.hardtanh_derivative(
            x, min_val, max_val
        ),
        gain=_smooth_gain(
            lambda x, min_val=-1.0, max_val=1.0, **_: ref.hardtanh(x, min_val, max_val)
        ),
        module="torch.nn:Hardtanh",
        torch_modules=(torch.nn.Hardtanh,),
        saves="input",
        can_die=True,
        saturates=True,
        output_range=lambda min_val=-1.0, max_val=1.0, **_: (float(min_val), float(max_val)),
    ),
    # The mobile-network and smooth-rectifier activations common in models found in the
    # wild (MobileNetV3, EfficientNet-style SE blocks, YOLO-style Mish): rows so the monitor
    # and the converter know them.
    ActivationSpec(
        name="hardsigmoid",
        title="Hardsigmoid",
        aliases=(),
        family="saturating",
        defaults={"inplace": False},
        forward=lambda x, **_: ref.hardsigmoid(x),
        derivative=lambda x, **_: ref.hardsigmoid_derivative(x),
        gain=_smooth_gain(lambda x, **_: ref.hardsigmoid(x)),
        module="torch.nn:Hardsigmoid",
        torch_modules=(torch.nn.Hardsigmoid,),
        saves="input",
        can_die=True,
        saturates=True,
        output_range=lambda **_: (0.0, 1.0),
    ),
    ActivationSpec(
        name="hardswish",
        title="Hardswish",
        aliases=("hard_swish",),
        family="smooth",
        defaults={"inplace": False},
        forward=lambda x, **_: ref.hardswish(x),
        derivative=lambda x, **_: ref.hardswish_derivative(x),
        gain=_smooth_gain(lambda x, **_: ref.hardswish(x)),
        module="torch.nn:Hardswish",
        torch_modules=(torch.nn.Hardswish,),
        saves="input",
        can_die=True,
    ),
    ActivationSpec(
        name="mish",
        title="Mish",
        aliases=(),
        family="smooth",
        defaults={"inplace": False},
        forward=lambda x, **_: ref.mish(x),
        derivative=lambda x, **_: ref.mish_derivative(x),
        gain=_smooth_gain(lambda x, **_: ref.mish(x)),
        module="torch.nn:Mish",
        torch_modules=(torch.nn.Mish,),
        saves="input",
    ),
    ActivationSpec(
        name="softplus",
        title="Softplus",
        aliases=(),
        family="smooth",
        defaults={"beta": 1.0, "threshold": 20.0},
        forward=lambda x, beta=1.0, threshold=20.0, **_: ref.softplus(x, beta, threshold),
        derivative=lambda x, beta=1.0, threshold=20.0, **_: ref.softplus_derivative(
            x, beta, threshold
        ),
        gain=_smooth_gain(
            lambda x, beta=1.0, threshold=20.0, **_: ref.softplus(x, beta, threshold)
        ),
        module="torch.nn:Softplus",
        torch_modules=(torch.nn.Softplus,),
        saves="input",
    ),
)

_BY_NAME: Mapping[str, ActivationSpec] = MappingProxyType(
    {alias.lower(): spec for spec in SPECS for alias in spec.names}
)


def activation_names() -> tuple[str, ...]:
    """Canonical names of every row, in table order.

    Examples:
        >>> activation_names()[:3]
        ('relu', 'leaky_relu', 'prelu')

    """
    return tuple(spec.name for spec in SPECS)


def get_spec(name: str) -> ActivationSpec:
    """Return the row for ``name`` or one of its aliases (case-insensitive).

    Raises:
        ValueError: for an unknown name; the message lists the valid names.

    Examples:
        >>> get_spec("ReLU").can_die
        True

    """
    if not isinstance(name, str):
        raise TypeError(f"Expected an activation name as a string, but got {type(name).__name__}")
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        valid = ", ".join(activation_names())
        raise ValueError(
            f"Unknown activation {name!r}. Valid names: {valid} (aliases such as 'lrelu' work too)"
        ) from None
