"""Activation sites: which modules are activations, and their local derivative in torch.

A module is recognised through the spec table (``ActivationSpec.torch_modules``, which
``leaky.nn``'s modules subclass). The derivative of each row is written here with torch
ops, from the site's input ``x`` and output ``y``; a test checks every one against the
float64 reference derivative of :mod:`leaky.core.reference`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as torch_f

from leaky.core.spec import SPECS, ActivationSpec, get_spec

__all__ = ["local_derivative", "slope_is_never_zero", "spec_for_class", "spec_for_module"]

_MODULE_TO_SPEC: dict[type[torch.nn.Module], ActivationSpec] = {
    cls: spec for spec in SPECS for cls in spec.torch_modules
}


def spec_for_class(module_class: type) -> ActivationSpec | None:
    """The spec row of an activation module class (most specific base first), else None.

    Examples:
        >>> spec_for_class(torch.nn.ReLU6).name, spec_for_class(torch.nn.Linear)
        ('relu6', None)
    """
    for cls in getattr(module_class, "__mro__", ()):
        if cls in _MODULE_TO_SPEC:
            return _MODULE_TO_SPEC[cls]
    return None


def spec_for_module(module: torch.nn.Module) -> ActivationSpec | None:
    """The spec row of an activation module, else None.

    Examples:
        >>> spec_for_module(torch.nn.LeakyReLU()).name
        'leaky_relu'
    """
    return spec_for_class(type(module))


def _param(module: torch.nn.Module | None, name: str, default: Any) -> Any:
    return getattr(module, name, default) if module is not None else default


def _rectifier(slope: Any) -> Callable[..., torch.Tensor]:
    def derivative(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
        a = slope(x, module, params)
        return torch.where(x > 0, torch.ones((), dtype=x.dtype, device=x.device), a)

    return derivative


def _prelu_slope(x: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    weight = params.get("weight", _param(module, "weight", None))
    if weight is None:
        return torch.tensor(0.25, dtype=x.dtype, device=x.device)
    weight = weight.detach().to(x.dtype)
    if weight.numel() > 1 and x.dim() >= 2:
        shape = [1] * x.dim()
        shape[1] = -1
        weight = weight.view(shape)
    return weight.reshape(()) if weight.numel() == 1 else weight


def _rrelu_slope(x: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    lower = params.get("lower", _param(module, "lower", 1 / 8))
    upper = params.get("upper", _param(module, "upper", 1 / 3))
    training = params.get("training", _param(module, "training", False))
    if not training:
        return torch.tensor((lower + upper) / 2, dtype=x.dtype, device=x.device)
    y = params["output"]
    return torch.where(x != 0, y / torch.where(x != 0, x, 1), (lower + upper) / 2)


def _clip(min_default: float, max_default: float) -> Callable[..., torch.Tensor]:
    def derivative(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
        low = params.get("min_val", _param(module, "min_val", min_default))
        high = params.get("max_val", _param(module, "max_val", max_default))
        return ((x > low) & (x < high)).to(x.dtype)

    return derivative


def _elu(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    alpha = params.get("alpha", _param(module, "alpha", 1.0))
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(torch.clamp(x, max=0)))


def _gelu(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    cdf = 0.5 * (1 + torch.erf(x * 0.7071067811865476))
    pdf = torch.exp(-0.5 * x * x) * 0.3989422804014327
    return cdf + x * pdf


def _silu(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _hardsigmoid(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    return ((x > -3) & (x < 3)).to(x.dtype) / 6


def _hardswish(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    # PyTorch gives the kinks to the flat pieces: 0 at x = -3, 1 at x = 3.
    middle = x / 3 + 0.5
    return torch.where(
        x <= -3, torch.zeros_like(x), torch.where(x >= 3, torch.ones_like(x), middle)
    )


def _softplus(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    beta = params.get("beta", _param(module, "beta", 1.0))
    threshold = params.get("threshold", _param(module, "threshold", 20.0))
    return torch.where(x * beta > threshold, torch.ones_like(x), torch.sigmoid(x * beta))


def _mish(x: torch.Tensor, y: torch.Tensor, module: Any, params: dict) -> torch.Tensor:
    t = torch.tanh(torch_f.softplus(x))
    return t + x * torch.sigmoid(x) * (1 - t * t)


_DERIVATIVES: dict[str, Callable[..., torch.Tensor]] = {
    "relu": _rectifier(lambda x, m, p: torch.zeros((), dtype=x.dtype, device=x.device)),
    "leaky_relu": _rectifier(
        lambda x, m, p: torch.tensor(
            p.get("negative_slope", _param(m, "negative_slope", 0.01)), dtype=x.dtype
        ).to(x.device)
    ),
    "prelu": _rectifier(_prelu_slope),
    "rrelu": _rectifier(_rrelu_slope),
    "sigmoid": lambda x, y, m, p: y * (1 - y),
    "tanh": lambda x, y, m, p: 1 - y * y,
    "elu": _elu,
    "gelu": _gelu,
    "silu": _silu,
    "relu6": _clip(0.0, 6.0),
    "hardtanh": _clip(-1.0, 1.0),
    "hardsigmoid": _hardsigmoid,
    "hardswish": _hardswish,
    "softplus": _softplus,
    "mish": _mish,
}


def local_derivative(
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    module: torch.nn.Module | None = None,
    **params: Any,
) -> torch.Tensor:
    """f'(x) elementwise for the activation ``kind`` (a spec name), from its input and output.

    Options come from ``params`` (a functional call's arguments) or else from ``module``.

    Examples:
        >>> x = torch.tensor([-1.0, 2.0])
        >>> local_derivative("leaky_relu", x, x, negative_slope=0.1)
        tensor([0.1000, 1.0000])
    """
    spec = get_spec(kind)
    with torch.no_grad():
        return _DERIVATIVES[spec.name](x, y, module, {**params, "output": y})


def slope_is_never_zero(kind: str, module: torch.nn.Module | None = None, **params: Any) -> bool:
    """True for rectifiers whose fixed slope below zero is non-zero: their units cannot die.

    Examples:
        >>> slope_is_never_zero("leaky_relu", negative_slope=0.01), slope_is_never_zero("relu")
        (True, False)
    """
    spec = get_spec(kind)
    if spec.name == "leaky_relu":
        return params.get("negative_slope", _param(module, "negative_slope", 0.01)) != 0
    if spec.name == "rrelu":
        return params.get("lower", _param(module, "lower", 1 / 8)) > 0
    # PReLU's learned slopes may reach 0; its units are checked through the derivative,
    # on the device, rather than by reading the slopes back to the host every batch.
    return False
