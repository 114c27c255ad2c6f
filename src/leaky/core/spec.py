"""The one table that is the truth about activations.

Every other part of :mod:`leaky` (the factory, the modules' defaults, initialisation gains,
the monitor, the plots and the report) reads its facts from :data:`SPECS`. Add an
activation here and everything else picks it up; there is no second dict that can drift.

A row writes each fact once: its options' defaults in ``defaults``, the maths as plain
functions of those options' values (the float64 reference from :mod:`leaky.core.reference`,
the gain, the output's bounds, the derivative in torch), and ``arguments`` says which
options those functions take. :meth:`ActivationSpec.forward`, :meth:`~ActivationSpec.gain`
and the rest fill in the defaults.

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
import torch.nn.functional as torch_f
from torch import Tensor

from leaky.core import reference as ref

__all__ = [
    "SPECS",
    "ActivationSpec",
    "TorchDerivative",
    "activation_names",
    "get_spec",
    "leaky_gain",
]

_Options = Mapping[str, Any]
#: ``f(x, y, options) -> f'(x)``: the derivative with torch ops, from the input ``x``, the
#: output ``y = f(x)`` and the options by name (defaults filled in).
TorchDerivative = Callable[[Tensor, Tensor, _Options], Tensor]


def leaky_gain(negative_slope: float = 0.01) -> float:
    """He et al. (2015) gain for a Leaky ReLU: sqrt(2 / (1 + a^2)).

    It makes Var(w) = gain^2 / fan_in keep the forward signal's second moment constant
    from layer to layer. a = 0 gives ReLU's sqrt(2); a = 1 (the identity) gives 1.

    Examples:
        >>> leaky_gain(0.0) == math.sqrt(2)
        True

    """
    return math.sqrt(2.0 / (1.0 + negative_slope**2))


def _rrelu_gain(lower: float, upper: float) -> float:
    # A random slope a ~ U(lower, upper) enters the second moment as E[a^2].
    mean_square_slope = (lower * lower + lower * upper + upper * upper) / 3.0
    return math.sqrt(2.0 / (1.0 + mean_square_slope))


def _clip_bounds(min_val: float, max_val: float) -> tuple[float, float]:
    return float(min_val), float(max_val)


def _prelu_input_derivative(x: np.typing.ArrayLike, weight: np.typing.ArrayLike) -> np.ndarray:
    return ref.prelu_derivative(x, weight)[0]


# The derivatives in torch, one per row, each checked against the float64 reference
# derivative by the tests. Kinks follow PyTorch, as in the reference.
def _where_positive(x: Tensor, slope: Any) -> Tensor:
    # 1 above zero, `slope` (a number, or a tensor that broadcasts against x) at and below it.
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(x > 0, one, torch.as_tensor(slope, dtype=x.dtype, device=x.device))


def _prelu_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    # The learned `weight` (shaped to broadcast against x) when the caller has one.
    return _where_positive(x, options.get("weight", options["init"]))


def _rrelu_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    mean_slope = (options["lower"] + options["upper"]) / 2
    if not options.get("training", False):  # F.rrelu's default: evaluation
        return _where_positive(x, mean_slope)
    # In training each input below zero drew its own slope, and y / x recovers it.
    nonzero = x != 0
    return _where_positive(x, torch.where(nonzero, y / torch.where(nonzero, x, 1), mean_slope))


def _clip_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    return ((x > options["min_val"]) & (x < options["max_val"])).to(x.dtype)


def _elu_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), options["alpha"] * torch.exp(x.clamp(max=0)))


def _gelu_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    cdf = 0.5 * (1 + torch.erf(x * 0.7071067811865476))
    pdf = torch.exp(-0.5 * x * x) * 0.3989422804014327
    return cdf + x * pdf


def _silu_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _hardswish_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    # PyTorch gives the kinks to the flat pieces: 0 at x = -3, 1 at x = 3.
    middle = x / 3 + 0.5
    return torch.where(
        x <= -3, torch.zeros_like(x), torch.where(x >= 3, torch.ones_like(x), middle)
    )


def _softplus_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    beta = options["beta"]
    return torch.where(x * beta > options["threshold"], torch.ones_like(x), torch.sigmoid(x * beta))


def _mish_torch_derivative(x: Tensor, y: Tensor, options: _Options) -> Tensor:
    t = torch.tanh(torch_f.softplus(x))
    return t + x * torch.sigmoid(x) * (1 - t * t)


@dataclass(frozen=True)
class ActivationSpec:
    """One row of the activation table.

    The maths is given as functions of the options' values, in the order ``arguments``
    names them; the methods :meth:`forward`, :meth:`derivative`, :meth:`gain`,
    :attr:`output_range` and :meth:`local_derivative` take the options by name and fill in
    the rest from ``defaults``, so each default is written once, in ``defaults``.

    Attributes:
        name: canonical name, as ``torch.nn.functional`` spells it.
        title: name for people ("Leaky ReLU").
        aliases: other names :func:`get_spec` accepts (lookup ignores case, so the
            ``torch.nn`` class names work too).
        family: ``"rectifier"`` (piecewise linear), ``"saturating"`` (bounded on both
            sides) or ``"smooth"`` (comparison points).
        defaults: the module's keyword defaults, PyTorch's own.
        reference: float64 ``f(x, *values)`` from :mod:`leaky.core.reference`.
        reference_derivative: float64 ``f'(x, *values)``.
        torch_derivative: ``f'`` with torch ops, ``torch_derivative(x, y, options)`` from
            the input, the output and the options by name (defaults filled in, plus what
            the caller knows of the call: a PReLU's learned ``weight``, RReLU's
            ``training``); the monitor reads a unit's gradient flow through it.
        module: ``"package.module:Class"`` that :func:`leaky.nn.get_activation` builds.
        torch_modules: ``torch.nn`` classes that compute this activation (for the monitor
            and for converting models).
        arguments: the options the functions above take, in order, after ``x`` (keys of
            ``defaults`` or ``fixed``).
        fixed: option values this row pins (ReLU6 is Hardtanh on [0, 6]); they win over
            the caller's.
        gain_formula: initialisation gain ``gain_formula(*values)``, agreeing with
            ``torch.nn.init.calculate_gain`` wherever PyTorch knows the activation; None
            means the second-moment gain of ``reference``.
        bounds: ``bounds(*values) -> (low, high)`` for an activation whose output is
            bounded where it saturates, else None (see :attr:`output_range`).
        slope_param: the keyword that sets the slope below zero, if there is one.
        saves: what the backward pass keeps alive, in words.
        can_die: True when the gradient is exactly 0 on a whole half-line (ReLU: every
            input <= 0), so that a unit whose pre-activation stays there stops learning for
            good.
        saturates: True when the derivative vanishes (or is 0) for large |x| on both sides.
        saturating_ends: which of the two bounds are saturation (ReLU6 saturates only at
            6: its low end is the rectifier's inactive side, counted as "never active").
        double_backward: whether second derivatives are supported.
        names: ``name`` and then the aliases.

    """

    name: str
    title: str
    aliases: tuple[str, ...]
    family: str
    defaults: Mapping[str, Any]
    reference: Callable[..., np.ndarray]
    reference_derivative: Callable[..., np.ndarray]
    torch_derivative: TorchDerivative
    module: str
    torch_modules: tuple[type[torch.nn.Module], ...]
    arguments: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    gain_formula: Callable[..., float] | None = None
    bounds: Callable[..., tuple[float, float]] | None = None
    slope_param: str | None = None
    saves: str = "output"
    can_die: bool = False
    saturates: bool = False
    double_backward: bool = True
    saturating_ends: tuple[bool, bool] = (True, True)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))
        object.__setattr__(self, "names", (self.name, *self.aliases))
        missing = [a for a in self.arguments if a not in self.defaults and a not in self.fixed]
        assert not missing, f"{self.name}: arguments {missing} have no default"

    def options(self, **params: Any) -> dict[str, Any]:
        """Every option by name: ``params`` over the defaults, the row's fixed values last.

        Examples:
            >>> get_spec("relu6").options(max_val=1.0)
            {'inplace': False, 'max_val': 6.0, 'min_val': 0.0}

        """
        return {**self.defaults, **params, **self.fixed}

    def _values(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        options = self.options(**params)
        return tuple(options[key] for key in self.arguments)

    def forward(self, x: np.typing.ArrayLike, **params: Any) -> np.ndarray:
        """The float64 reference f(x) for these options (others at their defaults)."""
        return self.reference(x, *self._values(params))

    def derivative(self, x: np.typing.ArrayLike, **params: Any) -> np.ndarray:
        """The float64 reference f'(x) for these options (others at their defaults)."""
        return self.reference_derivative(x, *self._values(params))

    def gain(self, **params: Any) -> float:
        """Initialisation gain for these options (others at their defaults)."""
        values = self._values(params)
        if self.gain_formula is None:
            return ref.second_moment_gain(lambda z: self.reference(z, *values))
        return self.gain_formula(*values)

    @property
    def output_range(self) -> Callable[..., tuple[float, float]] | None:
        """``output_range(**params) -> (low, high)``, else None when the output is unbounded.

        The bounds a saturating activation's output approaches where its derivative
        vanishes. The monitor counts an output as saturated when it lies within a margin
        of a bound (see :mod:`leaky.diagnosis.monitor.site_stats`).
        """
        return None if self.bounds is None else self._output_range

    def _output_range(self, **params: Any) -> tuple[float, float]:
        assert self.bounds is not None
        return self.bounds(*self._values(params))

    def local_derivative(self, x: torch.Tensor, y: torch.Tensor, **params: Any) -> torch.Tensor:
        """f'(x) elementwise with torch ops, from the input ``x`` and the output ``y``.

        Examples:
            >>> x = torch.tensor([-1.0, 0.0, 2.0])
            >>> get_spec("leaky_relu").local_derivative(x, x, negative_slope=0.1)
            tensor([0.1000, 0.1000, 1.0000])

        """
        return self.torch_derivative(x, y, self.options(**params))

    def module_class(self) -> type[torch.nn.Module]:
        """Import and return the ``torch.nn.Module`` class that implements this row."""
        module_path, _, class_name = self.module.partition(":")
        return getattr(importlib.import_module(module_path), class_name)

    def negative_slope(self, **params: Any) -> float | None:
        """The slope below zero for these params (the mean slope for RReLU), else None."""
        options = self.options(**params)
        if self.name == "relu":
            return 0.0
        if self.name == "rrelu":
            return (options["lower"] + options["upper"]) / 2.0
        return None if self.slope_param is None else float(options[self.slope_param])


SPECS: tuple[ActivationSpec, ...] = (
    ActivationSpec(
        name="relu",
        title="ReLU",
        aliases=(),
        family="rectifier",
        defaults={"inplace": False},
        reference=ref.relu,
        reference_derivative=ref.relu_derivative,
        torch_derivative=lambda x, y, o: _where_positive(x, 0.0),
        gain_formula=lambda: leaky_gain(0.0),
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
        arguments=("negative_slope",),
        reference=ref.leaky_relu,
        reference_derivative=ref.leaky_relu_derivative,
        torch_derivative=lambda x, y, o: _where_positive(x, o["negative_slope"]),
        gain_formula=leaky_gain,
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
        arguments=("init",),  # the slope everywhere until it is learned
        reference=ref.prelu,
        reference_derivative=_prelu_input_derivative,
        torch_derivative=_prelu_torch_derivative,
        gain_formula=leaky_gain,
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
        arguments=("lower", "upper"),
        reference=ref.rrelu,
        reference_derivative=ref.rrelu_derivative,
        torch_derivative=_rrelu_torch_derivative,
        gain_formula=_rrelu_gain,
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
        reference=ref.sigmoid,
        reference_derivative=ref.sigmoid_derivative,
        torch_derivative=lambda x, y, o: y * (1 - y),
        gain_formula=lambda: 1.0,
        module="torch.nn:Sigmoid",
        torch_modules=(torch.nn.Sigmoid,),
        saturates=True,
        bounds=lambda: (0.0, 1.0),
    ),
    ActivationSpec(
        name="tanh",
        title="tanh",
        aliases=(),
        family="saturating",
        defaults={},
        reference=ref.tanh,
        reference_derivative=ref.tanh_derivative,
        torch_derivative=lambda x, y, o: 1 - y * y,
        gain_formula=lambda: 5.0 / 3.0,
        module="torch.nn:Tanh",
        torch_modules=(torch.nn.Tanh,),
        saturates=True,
        bounds=lambda: (-1.0, 1.0),
    ),
    ActivationSpec(
        name="elu",
        title="ELU",
        aliases=(),
        family="smooth",
        defaults={"alpha": 1.0, "inplace": False},
        arguments=("alpha",),
        reference=ref.elu,
        reference_derivative=ref.elu_derivative,
        torch_derivative=_elu_torch_derivative,
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
        reference=ref.gelu,
        reference_derivative=ref.gelu_derivative,
        torch_derivative=_gelu_torch_derivative,
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
        reference=ref.silu,
        reference_derivative=ref.silu_derivative,
        torch_derivative=_silu_torch_derivative,
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
        arguments=("min_val", "max_val"),
        fixed={"min_val": 0.0, "max_val": 6.0},
        reference=ref.hardtanh,
        reference_derivative=ref.hardtanh_derivative,
        torch_derivative=_clip_torch_derivative,
        module="torch.nn:ReLU6",
        torch_modules=(torch.nn.ReLU6,),
        saves="input",
        can_die=True,
        saturates=True,
        bounds=_clip_bounds,
        saturating_ends=(False, True),
    ),
    ActivationSpec(
        name="hardtanh",
        title="Hardtanh",
        aliases=(),
        family="saturating",
        defaults={"min_val": -1.0, "max_val": 1.0, "inplace": False},
        arguments=("min_val", "max_val"),
        reference=ref.hardtanh,
        reference_derivative=ref.hardtanh_derivative,
        torch_derivative=_clip_torch_derivative,
        module="torch.nn:Hardtanh",
        torch_modules=(torch.nn.Hardtanh,),
        saves="input",
        can_die=True,
        saturates=True,
        bounds=_clip_bounds,
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
        reference=ref.hardsigmoid,
        reference_derivative=ref.hardsigmoid_derivative,
        torch_derivative=lambda x, y, o: ((x > -3) & (x < 3)).to(x.dtype) / 6,
        module="torch.nn:Hardsigmoid",
        torch_modules=(torch.nn.Hardsigmoid,),
        saves="input",
        can_die=True,
        saturates=True,
        bounds=lambda: (0.0, 1.0),
    ),
    ActivationSpec(
        name="hardswish",
        title="Hardswish",
        aliases=("hard_swish",),
        family="smooth",
        defaults={"inplace": False},
        reference=ref.hardswish,
        reference_derivative=ref.hardswish_derivative,
        torch_derivative=_hardswish_torch_derivative,
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
        reference=ref.mish,
        reference_derivative=ref.mish_derivative,
        torch_derivative=_mish_torch_derivative,
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
        arguments=("beta", "threshold"),
        reference=ref.softplus,
        reference_derivative=ref.softplus_derivative,
        torch_derivative=_softplus_torch_derivative,
        module="torch.nn:Softplus",
        torch_modules=(torch.nn.Softplus,),
        saves="input",
    ),
    ActivationSpec(
        name="softsign",
        title="Softsign",
        aliases=(),
        family="saturating",
        defaults={},
        reference=ref.softsign,
        reference_derivative=ref.softsign_derivative,
        # 1 / (1 + |x|)^2 = (1 - |y|)^2: the output alone gives it.
        torch_derivative=lambda x, y, o: (1 - y.abs()).square(),
        module="torch.nn:Softsign",
        torch_modules=(torch.nn.Softsign,),
        saves="input",  # torch composes it from abs, add and div
        saturates=True,
        bounds=lambda: (-1.0, 1.0),
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
