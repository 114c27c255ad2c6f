"""Initialisation driven by the activation (He et al. 2015, "Delving Deep into Rectifiers").

For a layer followed by an activation f, drawing weights with Var(w) = gain^2 / fan_in
keeps the second moment of the signal constant from layer to layer. For Leaky ReLU with
slope a the gain is sqrt(2 / (1 + a^2)), so Var(w) = 2 / ((1 + a^2) * fan_in). Gains come
from :data:`leaky.core.spec.SPECS`.

Examples:
    >>> calculate_gain("leaky_relu", 0.2) == torch.nn.init.calculate_gain("leaky_relu", 0.2)
    True
    >>> g = torch.Generator().manual_seed(0)
    >>> w = kaiming_normal_(torch.empty(256, 4096), "relu", generator=g)
    >>> round(w.var().item() * 4096, 1)
    2.0

"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from leaky.core.spec import get_spec

__all__ = [
    "RAI_SIGMA",
    "calculate_gain",
    "fan",
    "init_layer_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "rai_",
    "rai_parameters",
]

# Randomized asymmetric initialisation (Lu, Shin, Su and Karniadakis 2019): the standard
# deviation, times 1 / sqrt(fan_in), of the symmetric part, with P = Beta(2, 1) for the
# positive entry: the setting the paper recommends for ReLU (these constants as its public
# reimplementations use them; see rai_parameters).
RAI_SIGMA = 0.6007

_LINEAR_NAMES = ("linear", "identity")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for an activation, from the spec table.

    Agrees with ``torch.nn.init.calculate_gain`` for every activation both know
    (``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``); adds ``prelu`` (at its initial
    slope), ``rrelu`` (with E[a^2] of its random slope), and ``elu``, ``gelu``, ``silu``
    (the gain that makes the output's second moment 1 for a standard normal input).
    Names only PyTorch knows (``linear``, ``conv2d``, ``selu``) are passed to it.

    Args:
        nonlinearity: activation name or alias.
        param: the slope for ``leaky_relu`` (default 0.01) and ``prelu`` (default 0.25),
            ``alpha`` for ``elu``; ignored by the others, as in PyTorch.

    Examples:
        >>> calculate_gain("relu") == math.sqrt(2)
        True
        >>> round(calculate_gain("prelu"), 4)
        1.372

    """
    try:
        spec = get_spec(nonlinearity)
    except ValueError:
        if nonlinearity.lower() in _LINEAR_NAMES:
            return 1.0
        try:
            return torch.nn.init.calculate_gain(nonlinearity, param)  # type: ignore[arg-type]
        except ValueError:
            get_spec(nonlinearity)  # raises the error that lists our names
            raise
    params: dict[str, Any] = {}
    if param is not None:
        if isinstance(param, bool) or not isinstance(param, int | float):
            raise ValueError(f"Expected `param` to be a number, but got {param!r}")
        key = spec.slope_param or ("alpha" if "alpha" in spec.defaults else None)
        if key is not None:
            params[key] = float(param)
    return spec.gain(**params)


def fan(tensor: torch.Tensor, mode: Literal["fan_in", "fan_out"] = "fan_in") -> int:
    """Fan-in (inputs per output unit) or fan-out of a Linear or convolution weight.

    Examples:
        >>> fan(torch.empty(16, 3, 5, 5)), fan(torch.empty(16, 3, 5, 5), "fan_out")
        (75, 400)

    """
    if tensor.dim() < 2:
        raise ValueError(
            f"Expected a weight with at least 2 dimensions to compute its fan, but got shape "
            f"{tuple(tensor.shape)}"
        )
    receptive_field = math.prod(tensor.shape[2:])
    if mode == "fan_in":
        return tensor.shape[1] * receptive_field
    if mode == "fan_out":
        return tensor.shape[0] * receptive_field
    raise ValueError(f"Expected `mode` to be 'fan_in' or 'fan_out', but got {mode!r}")


def _std(tensor: torch.Tensor, activation: str, mode: Any, params: dict[str, Any]) -> float:
    return get_spec(activation).gain(**params) / math.sqrt(fan(tensor, mode))


def kaiming_normal_(
    tensor: torch.Tensor,
    activation: str = "leaky_relu",
    *,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    generator: torch.Generator | None = None,
    **params: Any,
) -> torch.Tensor:
    """Fill ``tensor`` from N(0, gain^2 / fan) with the activation's gain, in place.

    Args:
        tensor: weight of a Linear (out, in) or convolution (out, in, *kernel).
        activation: name in the spec table. Default: ``"leaky_relu"``
        mode: ``"fan_in"`` keeps forward variance, ``"fan_out"`` backward. Default: ``"fan_in"``
        generator: random source. Default: ``None``
        **params: the activation's options, for example ``negative_slope=0.2``.

    Examples:
        >>> w = kaiming_normal_(torch.empty(3, 4), "leaky_relu", negative_slope=0.2)
        >>> w.shape
        torch.Size([3, 4])

    """
    std = _std(tensor, activation, mode, params)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def kaiming_uniform_(
    tensor: torch.Tensor,
    activation: str = "leaky_relu",
    *,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    generator: torch.Generator | None = None,
    **params: Any,
) -> torch.Tensor:
    """Fill ``tensor`` from U(-b, b), b = gain * sqrt(3 / fan), in place.

    Same arguments as :func:`kaiming_normal_`; the variance is the same.

    Examples:
        >>> w = kaiming_uniform_(torch.empty(3, 4), "relu")
        >>> bool(w.abs().max() <= math.sqrt(2) * math.sqrt(3 / 4))
        True

    """
    bound = math.sqrt(3.0) * _std(tensor, activation, mode, params)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def init_layer_(
    layer: torch.nn.Module,
    activation: str = "leaky_relu",
    *,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    generator: torch.Generator | None = None,
    **params: Any,
) -> torch.nn.Module:
    """Kaiming-normal weights for the activation that follows ``layer``; zero bias.

    Works for any layer with a ``weight`` of 2 or more dimensions (Linear, Conv1d/2d/3d).

    Examples:
        >>> layer = init_layer_(torch.nn.Linear(8, 4), "relu")
        >>> float(layer.bias.detach().abs().sum())
        0.0

    """
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise TypeError(
            f"Expected a layer with a weight of 2 or more dimensions (Linear, Conv), "
            f"but got {type(layer).__name__}"
        )
    kaiming_normal_(weight, activation, mode=mode, generator=generator, **params)
    bias = getattr(layer, "bias", None)
    if isinstance(bias, torch.Tensor):
        with torch.no_grad():
            bias.zero_()
    return layer


def rai_parameters(
    fan_out: int,
    fan_in: int,
    *,
    batch: tuple[int, ...] = (),
    bias: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Randomized asymmetric initialisation (RAI) of ``fan_out`` units' incoming parameters.

    Lu, Shin, Su and Karniadakis (2019, "Dying ReLU and Initialization: Theory and
    Numerical Examples") draw, for each unit, the vector ``V = [w, b]`` of its incoming
    weights and its bias as follows: every entry from the symmetric ``N(0, sigma^2 /
    fan_in)``, then one entry, chosen uniformly among the ``fan_in + 1``, replaced by a
    draw from the asymmetric ``P = Beta(2, 1)`` on (0, 1]. The one positive entry makes a
    unit unlikely to be negative on the whole input domain, which is how symmetric
    initialisations make deep narrow ReLU networks "born dead"; ``sigma`` = 0.6007
    (:data:`RAI_SIGMA`) with ``Beta(2, 1)`` is the paper's recommended setting from its
    second-moment analysis (read here from public reimplementations of the paper). Beta(2,
    1) has CDF ``x^2``, so it is drawn as ``sqrt(U)`` with ``U`` uniform.

    Args:
        fan_out: units.
        fan_in: inputs per unit.
        batch: leading dimensions (many networks at once, as the born-dead experiment draws).
        bias: whether the units have a bias; without one, the positive entry is one of
            the weights. Default: ``True``
        generator: random source. Default: ``None``
        dtype: of the result. Default: ``torch.float32``

    Returns:
        ``(*batch, fan_out, fan_in + bias)``: each unit's weights, then its bias.

    Examples:
        >>> v = rai_parameters(1000, 4, generator=torch.Generator().manual_seed(0))
        >>> v.shape, int((v > 0).sum(dim=1).min()) >= 1
        (torch.Size([1000, 5]), True)
    """
    if fan_out < 1 or fan_in < 1:
        raise ValueError(f"Expected fan_out and fan_in >= 1, but got {fan_out} and {fan_in}")
    width = fan_in + int(bias)
    shape = (*batch, fan_out, width)
    v = torch.randn(shape, generator=generator, dtype=dtype) * (RAI_SIGMA / math.sqrt(fan_in))
    chosen = torch.randint(width, (*batch, fan_out, 1), generator=generator)
    positive = torch.rand((*batch, fan_out, 1), generator=generator, dtype=dtype).sqrt()
    return v.scatter_(-1, chosen, positive)


def rai_(layer: torch.nn.Module, *, generator: torch.Generator | None = None) -> torch.nn.Module:
    """Initialise a Linear or Conv layer with RAI (:func:`rai_parameters`), in place.

    A unit is a row of a Linear's weight or an output channel of a convolution (its
    ``in_channels / groups x kernel`` weights and its bias).

    Examples:
        >>> layer = rai_(torch.nn.Linear(3, 2), generator=torch.Generator().manual_seed(0))
        >>> layer.weight.shape, layer.bias.shape
        (torch.Size([2, 3]), torch.Size([2]))
    """
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise TypeError(
            f"Expected a layer with a weight of 2 or more dimensions (Linear, Conv), "
            f"but got {type(layer).__name__}"
        )
    bias = getattr(layer, "bias", None)
    has_bias = isinstance(bias, torch.Tensor)
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    v = rai_parameters(fan_out, fan_in, bias=has_bias, generator=generator, dtype=weight.dtype).to(
        weight.device
    )
    with torch.no_grad():
        weight.copy_(v[:, :fan_in].reshape(weight.shape))
        if has_bias:
            bias.copy_(v[:, fan_in])
    return layer
