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

__all__ = ["FUNCTIONAL_ACTIVATIONS", "ActivationCallWatcher", "call_params"]

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
}

_POSITIONAL = {
    "leaky_relu": ("negative_slope",),
    "prelu": ("weight",),
    "rrelu": ("lower", "upper", "training"),
    "elu": ("alpha",),
    "hardtanh": ("min_val", "max_val"),
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
    """Calls ``on_call(kind, function name, x, y, params)`` for every activation call.

    ``should_record()`` is asked first, so calls made inside activation modules (which
    module hooks already cover) are skipped.
    """

    def __init__(
        self,
        on_call: Callable[[str, str, torch.Tensor, torch.Tensor, dict[str, Any]], None],
        should_record: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.on_call = on_call
        self.should_record = should_record

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        kind = FUNCTIONAL_ACTIVATIONS.get(func)
        if kind is None or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        if not self.should_record():
            return func(*args, **kwargs)
        x = args[0]
        inplace = func.__name__.endswith("_") or kwargs.get("inplace", False)
        x_seen = x.detach().clone() if inplace and kind not in ("relu", "leaky_relu") else x
        y = func(*args, **kwargs)
        if isinstance(y, torch.Tensor) and y.is_floating_point():
            self.on_call(kind, func.__name__, x_seen, y, call_params(kind, args, kwargs))
        return y
