"""Activation modules: thin shells over :mod:`leaky.core.functional`, drop-in for ``torch.nn``.

Each subclasses its ``torch.nn`` namesake where one exists, so ``isinstance`` checks,
argument names, defaults and ``state_dict`` keys are PyTorch's: a ``state_dict`` saved
from one loads into the other.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from leaky.core import functional as F
from leaky.core.functional import SaveMode

__all__ = ["BiasLeakyReLU", "LeakyReLU", "PReLU", "RReLU"]


class LeakyReLU(torch.nn.LeakyReLU):
    r"""Leaky ReLU that keeps only its output (or a 1-bit mask) for backward.

    .. math::
        \text{LeakyReLU}(x) = \max(0, x) + \text{negative\_slope} \cdot \min(0, x)

    Values and gradients are bitwise those of :class:`torch.nn.LeakyReLU`; see
    :func:`leaky.core.functional.leaky_relu` for what ``save`` keeps.

    Args:
        negative_slope: slope for ``x <= 0``; finite (and >= 0 in place). Default: 0.01
        inplace: overwrite the input. Default: ``False``
        save: ``"auto"``, ``"output"``, ``"mask"`` or ``"input"``. Default: ``"auto"``

    Shape:
        - Input: :math:`(*)`. Output: :math:`(*)`, same shape.

    Examples:
        >>> m = LeakyReLU(0.2)
        >>> m
        LeakyReLU(negative_slope=0.2)
        >>> m(torch.tensor([-1.0, 1.0]))
        tensor([-0.2000,  1.0000])

    """

    __constants__ = ["inplace", "negative_slope", "save"]  # noqa: RUF012 (torch.nn convention)
    save: str

    def __init__(
        self, negative_slope: float = 0.01, inplace: bool = False, *, save: SaveMode = "auto"
    ) -> None:
        slope = F.check_negative_slope(negative_slope, inplace)
        F.resolve_save(save, slope, inplace)
        super().__init__(slope, inplace)
        self.save = save

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Apply Leaky ReLU."""
        return F.leaky_relu(input, self.negative_slope, self.inplace, save=self.save)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        """Show the slope, and the options that differ from their defaults."""
        text = f"negative_slope={self.negative_slope}"
        text += ", inplace=True" if self.inplace else ""
        return text + (f", save={self.save!r}" if self.save != "auto" else "")


class PReLU(torch.nn.PReLU):
    r"""PReLU: Leaky ReLU with a learned slope per channel (or one shared slope).

    .. math::
        \text{PReLU}(x) = \max(0, x) + a \cdot \min(0, x)

    Args:
        num_parameters: 1 (one shared slope) or the number of channels (dim 1). Default: 1
        init: initial slope. Default: 0.25
        device: where the slope lives. Default: ``None``
        dtype: the slope's dtype. Default: ``None``

    Shape:
        - Input: :math:`(N, C, *)` or :math:`(*)`. Output: same shape.

    Examples:
        >>> m = PReLU(3, init=0.1)
        >>> m
        PReLU(num_parameters=3)
        >>> list(m.state_dict())
        ['weight']

    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, int):
            raise TypeError(
                f"Expected `num_parameters` to be an int, but got {type(num_parameters).__name__}"
            )
        if num_parameters < 1:
            raise ValueError(f"Expected `num_parameters` >= 1, but got {num_parameters}")
        F.check_number(init, "init")
        super().__init__(num_parameters, init, device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Apply PReLU with the learned slopes."""
        return F.prelu(input, self.weight)


class RReLU(torch.nn.RReLU):
    r"""Randomized Leaky ReLU that keeps no noise tensor.

    A random slope per element in training, the mean slope ``(lower + upper) / 2`` in
    evaluation. See :func:`leaky.core.functional.rrelu`.

    Args:
        lower: lower bound of the slope range. Default: 1/8
        upper: upper bound of the slope range. Default: 1/3
        inplace: overwrite the input. Default: ``False``
        generator: random source for the slopes in training; PyTorch's default
            generator when None. Default: ``None``

    Shape:
        - Input: :math:`(*)`. Output: :math:`(*)`, same shape.

    Examples:
        >>> m = RReLU(0.1, 0.3).eval()
        >>> m(torch.tensor([-1.0, 1.0]))
        tensor([-0.2000,  1.0000])

    """

    def __init__(
        self,
        lower: float = 1.0 / 8,
        upper: float = 1.0 / 3,
        inplace: bool = False,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        low, high = F.check_rrelu_bounds(lower, upper, inplace)
        super().__init__(low, high, inplace)
        self.generator = generator

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Apply RReLU (random slopes in training mode)."""
        return F.rrelu(
            input, self.lower, self.upper, self.training, self.inplace, generator=self.generator
        )


class BiasLeakyReLU(torch.nn.Module):
    r"""Learned bias, Leaky ReLU, gain and optional clamp, fused (StyleGAN2's ``bias_act``).

    .. math::
        y = \operatorname{clamp}(\text{gain} \cdot \text{LeakyReLU}(x + b), -c, c)

    Use it after a layer built with ``bias=False``. The bias starts at zero.

    Args:
        num_channels: size of ``input.shape[dim]``, one bias per channel.
        negative_slope: slope below zero, >= 0. Default: 0.2
        gain: number > 0, or ``"he"`` for ``sqrt(2 / (1 + a^2))``. Default: ``sqrt(2)``
            (StyleGAN2's)
        clamp: clamp the output to ``[-clamp, clamp]``. Default: ``None``
        dim: dimension of the input the bias runs along. Default: 1
        bias: learn a bias (False: activation and gain only). Default: ``True``
        device: where the bias lives. Default: ``None``
        dtype: the bias's dtype. Default: ``None``

    Shape:
        - Input: :math:`(N, C, *)` with ``C == num_channels`` (for ``dim=1``). Output: same.

    Examples:
        >>> m = BiasLeakyReLU(4, gain="he")
        >>> m
        BiasLeakyReLU(4, negative_slope=0.2, gain=1.3867504905630728)
        >>> m(torch.zeros(2, 4)).shape
        torch.Size([2, 4])

    """

    def __init__(
        self,
        num_channels: int,
        negative_slope: float = 0.2,
        gain: float | Literal["he"] = math.sqrt(2.0),
        clamp: float | None = None,
        dim: int = 1,
        *,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"Expected `num_channels` to be an int >= 1, but got {num_channels!r}")
        slope = F.check_number(negative_slope, "negative_slope")
        if slope < 0:
            raise ValueError(f"Expected `negative_slope` >= 0, but got {slope}")
        self.num_channels = num_channels
        self.negative_slope = slope
        self.gain = F.resolve_gain(gain, slope)
        self.clamp = F.check_clamp(clamp)
        self.dim = dim
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.bias = torch.nn.Parameter(torch.zeros(num_channels, **factory)) if bias else None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Add the bias, apply Leaky ReLU, the gain and the clamp."""
        return F.bias_leaky_relu(
            input, self.bias, self.negative_slope, self.gain, self.clamp, self.dim
        )

    def extra_repr(self) -> str:
        """Show the channels, slope and gain, and options that differ from defaults."""
        text = f"{self.num_channels}, negative_slope={self.negative_slope}, gain={self.gain}"
        text += f", clamp={self.clamp}" if self.clamp is not None else ""
        text += f", dim={self.dim}" if self.dim != 1 else ""
        return text + (", bias=False" if self.bias is None else "")
