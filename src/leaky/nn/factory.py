"""Build any activation of the table by name, class or callable (timm's ``create_act``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from leaky.core.spec import get_spec

__all__ = ["ActivationFunction", "get_activation"]


class ActivationFunction(torch.nn.Module):
    """Wrap a plain function (``torch.tanh``, a lambda) as a module.

    Examples:
        >>> ActivationFunction(torch.tanh)
        ActivationFunction(fn=tanh)

    """

    def __init__(self, fn: Callable[..., torch.Tensor], **kwargs: Any) -> None:
        super().__init__()
        self.fn = fn
        self.kwargs = kwargs

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Call the wrapped function."""
        return self.fn(input, **self.kwargs)

    def extra_repr(self) -> str:
        """Name the function and its keyword arguments."""
        name = getattr(self.fn, "__name__", repr(self.fn))
        return ", ".join([f"fn={name}", *(f"{k}={v!r}" for k, v in self.kwargs.items())])


def _construct(cls: type[torch.nn.Module], label: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError:
        options = ", ".join(
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        given = ", ".join(kwargs)
        raise TypeError(
            f"{label} does not take the option(s) {given}; its options are: {options}"
        ) from None
    return cls(**kwargs)


def get_activation(
    activation: str | type[torch.nn.Module] | torch.nn.Module | Callable[..., torch.Tensor],
    **kwargs: Any,
) -> torch.nn.Module:
    """Build an activation module from a name, a class, a module or a function.

    Names are rows of :data:`leaky.core.spec.SPECS` (or their aliases); the Leaky ReLU family
    is built from :mod:`leaky.nn`, the rest from ``torch.nn``. A module instance is
    returned as it is; a plain function is wrapped in :class:`ActivationFunction`.

    Args:
        activation: ``"leaky_relu"``, ``"prelu"``, ... , a module class, a module, or a
            function of one tensor.
        **kwargs: options for the module (``negative_slope=0.2``, ``num_parameters=16``).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: an option the activation does not take.

    Examples:
        >>> get_activation("leaky_relu", negative_slope=0.2)
        LeakyReLU(negative_slope=0.2)
        >>> get_activation("tanh")
        Tanh()
        >>> get_activation(torch.nn.ReLU, inplace=True)
        ReLU(inplace=True)

    """
    if isinstance(activation, str):
        spec = get_spec(activation)
        return _construct(spec.module_class(), repr(spec.name), kwargs)
    if isinstance(activation, type) and issubclass(activation, torch.nn.Module):
        return _construct(activation, activation.__name__, kwargs)
    if isinstance(activation, torch.nn.Module):
        if kwargs:
            raise TypeError(
                f"Got a module instance {activation!r} and options {sorted(kwargs)}; "
                "pass the class or a name to set options"
            )
        return activation
    if callable(activation):
        return ActivationFunction(activation, **kwargs)
    raise TypeError(
        "Expected an activation name, a torch.nn.Module class or instance, or a function, "
        f"but got {type(activation).__name__}"
    )
