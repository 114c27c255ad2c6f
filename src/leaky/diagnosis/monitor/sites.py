"""Activation sites: which modules are activations, and their local derivative in torch.

A module is recognised through the spec table (``ActivationSpec.torch_modules``, which
``leaky.nn``'s modules subclass). Activation modules of other libraries (Hugging Face's
``NewGELUActivation``, written as a module that calls ``torch.tanh``) are recognised by
their class name (:func:`is_activation_like`), since those libraries are not imported.
The local derivative is the row's own (``ActivationSpec.torch_derivative``, checked
against the float64 reference); this module only gathers its options from the call's
arguments and the monitored module.
"""

from __future__ import annotations

from typing import Any

import torch

from leaky.core.spec import SPECS, ActivationSpec, get_spec

__all__ = [
    "FOREIGN_ACTIVATIONS",
    "is_activation_like",
    "local_derivative",
    "monitored_spec",
    "slope_is_never_zero",
    "spec_for_class",
    "spec_for_module",
]

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


# Activation modules of other libraries, by class name -> spec name (transformers'
# activations, nanoGPT's NewGELU, CLIP's QuickGELU). The tanh and sigmoid approximations
# of GELU are monitored as GELU: the same units are active, and the same ones (far below
# zero) pass no gradient. Not here, so listed as not monitored: ClippedGELUActivation
# (its clip is not GELU's), LinearActivation, ReLUSquaredActivation, LaplaceActivation.
FOREIGN_ACTIVATIONS: dict[str, str] = {
    "GELUActivation": "gelu",
    "NewGELUActivation": "gelu",
    "FastGELUActivation": "gelu",
    "QuickGELUActivation": "gelu",
    "AccurateGELUActivation": "gelu",
    "GELUTanh": "gelu",
    "PytorchGELUTanh": "gelu",
    "NewGELU": "gelu",
    "QuickGELU": "gelu",
    "SiLUActivation": "silu",
    "MishActivation": "mish",
}


def is_activation_like(module: torch.nn.Module) -> bool:
    """True for a leaf module without parameters whose class name says it is an activation.

    The name is one of :data:`FOREIGN_ACTIVATIONS` or ends in ``Activation``. Torch calls
    made inside such a module (the ``torch.tanh`` of a tanh-approximate GELU) are part of
    it, never activation sites of their own.

    Examples:
        >>> class NewGELUActivation(torch.nn.Module): ...
        >>> is_activation_like(NewGELUActivation()), is_activation_like(torch.nn.Linear(1, 1))
        (True, False)
    """
    name = type(module).__name__
    if name not in FOREIGN_ACTIVATIONS and not name.endswith("Activation"):
        return False
    return not module._modules and not module._parameters


def spec_for_module(module: torch.nn.Module) -> ActivationSpec | None:
    """The spec row of an activation module, else None.

    Examples:
        >>> spec_for_module(torch.nn.LeakyReLU()).name
        'leaky_relu'
    """
    return spec_for_class(type(module))


def monitored_spec(module: torch.nn.Module) -> ActivationSpec | None:
    """The spec row the monitor reads ``module`` as, else None.

    :func:`spec_for_module`, else, for an activation-like module of another library (see
    :func:`is_activation_like`), the row :data:`FOREIGN_ACTIVATIONS` names.

    Examples:
        >>> class FastGELUActivation(torch.nn.Module): ...
        >>> monitored_spec(FastGELUActivation()).name, spec_for_module(FastGELUActivation())
        ('gelu', None)
    """
    spec = spec_for_module(module)
    if spec is None and is_activation_like(module):
        name = FOREIGN_ACTIVATIONS.get(type(module).__name__)
        return None if name is None else get_spec(name)
    return spec


def _options(spec: ActivationSpec, module: Any, params: dict[str, Any]) -> dict[str, Any]:
    # Each of the row's options from the call's arguments, else the module's attribute of
    # that name, else the row's default.
    return {
        key: params[key] if key in params else getattr(module, key, default)
        for key, default in spec.defaults.items()
    }


def _channel_weight(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # PReLU's slopes, one per channel along dim 1 (or one shared), shaped to broadcast.
    weight = weight.detach()
    if weight.numel() == 1:
        return weight.reshape(())
    if x.dim() >= 2:
        shape = [1] * x.dim()
        shape[1] = -1
        return weight.view(shape)
    return weight


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
    options = _options(spec, module, params)
    # What the call knows beyond the row's options: learned slopes and the module's mode.
    weight = params.get("weight", getattr(module, "weight", None))
    if isinstance(weight, torch.Tensor):
        options["weight"] = _channel_weight(x, weight)
    training = params.get("training", getattr(module, "training", None))
    if training is not None:
        options["training"] = training
    with torch.no_grad():
        return spec.local_derivative(x, y, **options)


def slope_is_never_zero(kind: str, module: torch.nn.Module | None = None, **params: Any) -> bool:
    """True for rectifiers whose fixed slope below zero is non-zero: their units cannot die.

    Examples:
        >>> slope_is_never_zero("leaky_relu", negative_slope=0.01), slope_is_never_zero("relu")
        (True, False)
    """
    spec = get_spec(kind)
    if spec.name == "leaky_relu":
        return _options(spec, module, params)["negative_slope"] != 0
    if spec.name == "rrelu":
        return _options(spec, module, params)["lower"] > 0
    # PReLU's learned slopes may reach 0; its units are checked through the derivative,
    # on the device, rather than by reading the slopes back to the host every batch.
    return False
