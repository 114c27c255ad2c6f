"""BatchNorm + Leaky ReLU modules that keep only their output for backward.

One class per dimensionality, like ``torch.nn.BatchNorm1d/2d/3d``: the names say what they
replace, each checks its input's rank the same way, and ``convert`` can map each BatchNorm
class to its counterpart. They share ``torch.nn``'s ``_NormBase`` (parameters, buffers,
``state_dict`` keys and loading rules are BatchNorm's), but are not ``_BatchNorm`` subclasses:
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` would otherwise replace them with a plain
SyncBatchNorm and silently drop the activation. They are not synchronised across processes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.modules.batchnorm import _NormBase

from leaky.core import functional as F

__all__ = [
    "FUSED_LEAKY_RELU",
    "BatchNormLeakyReLU1d",
    "BatchNormLeakyReLU2d",
    "BatchNormLeakyReLU3d",
]


class _BatchNormLeakyReLU(_NormBase):
    _ranks: tuple[int, ...] = ()
    _expected = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        negative_slope: float = 0.01,
        bias: bool = True,
    ) -> None:
        # `bias` exists in torch.nn's BatchNorm from torch 2.8 on; pass it only when asked.
        extra = {} if bias else {"bias": False}
        super().__init__(
            num_features,
            eps,
            momentum,
            affine,
            track_running_stats,
            device=device,
            dtype=dtype,
            **extra,
        )
        self.negative_slope = F.check_number(negative_slope, "negative_slope")

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in self._ranks:
            raise ValueError(f"expected {self._expected} input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalise, scale and shift per channel, then apply Leaky ReLU."""
        self._check_input_dim(input)
        # The running statistics follow torch.nn.BatchNorm's rules: momentum None means a
        # cumulative average over the batches seen so far.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return F.batch_norm_leaky_relu(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
            self.negative_slope,
        )

    def extra_repr(self) -> str:
        """BatchNorm's options, then the slope."""
        return f"{super().extra_repr()}, negative_slope={self.negative_slope}"


class BatchNormLeakyReLU1d(_BatchNormLeakyReLU):
    r"""``BatchNorm1d`` followed by ``LeakyReLU``, keeping only the output for backward.

    .. math::
        y = \text{LeakyReLU}\Big(\frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}}
            \gamma + \beta\Big)

    Same arguments, defaults, buffers and ``state_dict`` keys as :class:`torch.nn.BatchNorm1d`
    (a state_dict loads into it and back), plus ``negative_slope``. See
    :func:`leaky.core.functional.batch_norm_leaky_relu` for what backward keeps and when it falls
    back to PyTorch's composition.

    Args:
        num_features: channels C of an input (N, C) or (N, C, L).
        eps: added to the variance. Default: 1e-5
        momentum: weight of each batch in the running statistics; None for a cumulative
            average. Default: 0.1
        affine: learn ``gamma`` and ``beta``. Default: ``True``
        track_running_stats: keep running statistics for eval mode. Default: ``True``
        device: where parameters and buffers live. Default: ``None``
        dtype: their dtype. Default: ``None``
        negative_slope: Leaky ReLU's slope below zero (keyword only). Default: 0.01
        bias: learn ``beta`` when ``affine`` (keyword only; torch >= 2.8). Default: ``True``

    Shape:
        - Input: :math:`(N, C)` or :math:`(N, C, L)`. Output: same shape.

    Examples:
        >>> m = BatchNormLeakyReLU1d(3, negative_slope=0.2)
        >>> m.extra_repr()[-20:]
        ', negative_slope=0.2'
        >>> m(torch.randn(4, 3)).shape
        torch.Size([4, 3])

    """

    _ranks = (2, 3)
    _expected = "2D or 3D"


class BatchNormLeakyReLU2d(_BatchNormLeakyReLU):
    r"""``BatchNorm2d`` followed by ``LeakyReLU``, keeping only the output for backward.

    The block of a DCGAN discriminator or a Darknet/YOLO backbone after each convolution.
    Same arguments as :class:`BatchNormLeakyReLU1d`, for inputs :math:`(N, C, H, W)`.

    Examples:
        >>> m = BatchNormLeakyReLU2d(8, negative_slope=0.2)
        >>> m(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
        >>> sorted(m.state_dict()) == sorted(torch.nn.BatchNorm2d(8).state_dict())
        True

    """

    _ranks = (4,)
    _expected = "4D"


class BatchNormLeakyReLU3d(_BatchNormLeakyReLU):
    r"""``BatchNorm3d`` followed by ``LeakyReLU``, keeping only the output for backward.

    Same arguments as :class:`BatchNormLeakyReLU1d`, for inputs :math:`(N, C, D, H, W)`.

    Examples:
        >>> BatchNormLeakyReLU3d(2)(torch.randn(2, 2, 3, 3, 3)).shape
        torch.Size([2, 2, 3, 3, 3])

    """

    _ranks = (5,)
    _expected = "5D"


# Modules that end in a Leaky ReLU of their own (the monitor watches them as its sites).
FUSED_LEAKY_RELU = (BatchNormLeakyReLU1d, BatchNormLeakyReLU2d, BatchNormLeakyReLU3d)
