"""Find activations called as functions inside ``forward`` (``F.relu(x)``, ``x.sigmoid()``).

Module hooks cannot see them, so a ``TorchFunctionMode`` watches every torch call during
the model's forward and names each activation call by the module it happens in and its
order there: ``blocks.0.mlp:gelu#0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as torch_f
from torch.overrides import TorchFunctionMode

__all__ = [
    "FUNCTIONAL_ACTIVATIONS",
    "UNMONITORED_ACTIVATIONS",
    "ActivationCallWatcher",
    "call_params",
]

# function -> spec name. Tensor methods and in-place variants count as the same activation.
FUNCTIONAL_ACTIVATIONS: dict[Callable[..., Any], str] = {
    torch.relu: "relu",
    torch.relu_: "relu",
    torch_f.relu: "relu",
    torch_f.relu_: "relu",
    torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu",
    torch_f.leaky_relu: "leaky_relu",
    torch_f.leaky_relu_: "leaky_relu",
    torch_f.prelu: "prelu",
    torch.prelu: "prelu",
    torch_f.rrelu: "rrelu",
    torch_f.rrelu_: "rrelu",
    torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid",
    torch.Tensor.sigmoid_: "sigmoid",
    torch_f.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    torch.Tensor.tanh: "tanh",
    torch.Tensor.tanh_: "tanh",
    torch_f.tanh: "tanh",
    torch_f.elu: "elu",
    torch_f.elu_: "elu",
    torch_f.gelu: "gelu",
    torch_f.silu: "silu",
    torch_f.relu6: "relu6",
    torch_f.hardtanh: "hardtanh",
    torch_f.hardtanh_: "hardtanh",
    torch_f.hardsigmoid: "hardsigmoid",
    torch_f.hardswish: "hardswish",
    torch_f.mish: "mish",
    torch_f.softplus: "softplus",
    torch_f.softsign: "softsign",
}

# Elementwise activations the spec table has no row for: calls are named in the report
# as not monitored rather than passed over in silence.
UNMONITORED_ACTIVATIONS: frozenset[Callable[..., Any]] = frozenset(
    {
        torch_f.selu,
        torch.selu,
        torch_f.celu,
        torch.celu,
        torch_f.logsigmoid,
        torch_f.tanhshrink,
        torch_f.softshrink,
        torch_f.hardshrink,
        torch_f.threshold,
        torch_f.glu,
    }
)

_POSITIONAL = {
    "leaky_relu": ("negative_slope",),
    "prelu": ("weight",),
    "rrelu": ("lower", "upper", "training"),
    "elu": ("alpha",),
    "hardtanh": ("min_val", "max_val"),
    "softplus": ("beta", "threshold"),
}


def call_params(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The activation options of a functional call, by name (PyTorch's defaults otherwise).

    Examples:
        >>> call_params("leaky_relu", (torch.zeros(1), 0.2), {})
        {'negative_slope': 0.2}
    """
    names = _POSITIONAL.get(kind, ())
    params = dict(zip(names, args[1:], strict=False))
    params.update({k: v for k, v in kwargs.items() if k in names})
    if kind == "leaky_relu":
        params.setdefault("negative_slope", 0.01)
    if kind == "rrelu":
        params.setdefault("training", False)
    return params


class ActivationCallWatcher(TorchFunctionMode):
    """Watches every torch call of a forward pass and reports what the monitor needs.

    * ``on_call(kind, function name, x, y, params, x_given)`` for every activation call
      (``x`` is a copy of the input when the call works in place; ``x_given`` is the
      tensor passed in, used to find the layer that produced it);
    * ``on_unmonitored(function name)`` for activation calls without a spec row;
    * ``on_arguments(args, kwargs)`` for every call, before it runs (the monitor finds
      its layers' weights there, to learn the order in which they are used).

    ``should_record()`` is asked first, so calls made inside activation modules (which
    module hooks already cover) are skipped. A callback that is None is not called.
    """

    def __init__(
        self,
        on_call: Callable[..., None] | None,
        should_record: Callable[[], bool],
        *,
        on_unmonitored: Callable[[str], None] | None = None,
        on_arguments: Callable[[tuple[Any, ...], dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.on_call = on_call
        self.should_record = should_record
        self.on_unmonitored = on_unmonitored
        self.on_arguments = on_arguments

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self.on_arguments is not None:
            self.on_arguments(args, kwargs)
        kind = FUNCTIONAL_ACTIVATIONS.get(func)
        if kind is None or self.on_call is None:
            if (
                self.on_unmonitored is not None
                and func in UNMONITORED_ACTIVATIONS
                and self.should_record()
            ):
                self.on_unmonitored(getattr(func, "__name__", repr(func)))
            return func(*args, **kwargs)
        if not args or not isinstance(args[0], torch.Tensor) or not self.should_record():
            return func(*args, **kwargs)
        x = args[0]
        inplace = func.__name__.endswith("_") or kwargs.get("inplace", False)
        x_seen = x.detach().clone() if inplace and kind not in ("relu", "leaky_relu") else x
        y = func(*args, **kwargs)
        if isinstance(y, torch.Tensor) and y.is_floating_point():
            self.on_call(kind, func.__name__, x_seen, y, call_params(kind, args, kwargs), x)
        return y
