r"""BatchNorm followed by Leaky ReLU, as one op whose backward keeps only its output.

In ``Conv -> BatchNorm -> LeakyReLU`` PyTorch keeps two full-size tensors for backward: the
BatchNorm's input (the convolution's output) and the activation's input or output. For a
slope ``a > 0`` Leaky ReLU is invertible, and so is BatchNorm's affine map for a non-zero
weight, so the normalised input can be rebuilt from the block's output ``y`` alone:

.. math::
    z = \begin{cases} y & y > 0 \\ y / a & y \le 0 \end{cases}, \qquad
    \hat{x} = (z - \beta) / \gamma

and the gradient follows from ``y``, ``gamma``, ``beta`` and the per-channel ``1/std`` (In-Place
Activated BatchNorm, Rota Bulo et al., CVPR 2018). ``y`` is what the next layer keeps anyway, so
the block adds nothing of its own. ReLU (``a = 0``) cannot do this: its output forgets every
negative input.

When rebuilding ``x_hat`` would lose precision the call saves its input instead and uses
PyTorch's own composition (chosen per call, see :func:`batch_norm_leaky_relu`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as torch_f

from leaky.core.checks import check_number, check_tensor
from leaky.core.kernels import Impl, load_triton_ops, use_triton

__all__ = ["BN_SAVE_MODES", "batch_norm_leaky_relu", "output_path_is_exact"]

BN_SAVE_MODES: tuple[str, ...] = ("auto", "input")

# Largest |beta| / |gamma| for which x_hat = (z - beta) / gamma is rebuilt from the output.
# The rebuilt x_hat is off by about eps(dtype) * (|x_hat| + |beta / gamma|); these limits keep
# that below about 1e-4 (float32) and the output's own rounding (half types).
_MAX_BIAS_TO_WEIGHT = {torch.float16: 16.0, torch.bfloat16: 2.0}
_DEFAULT_MAX_BIAS_TO_WEIGHT = 1e3
_aten = torch.ops.aten


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _channel_view(t: torch.Tensor, dims: int) -> torch.Tensor:
    return t.view([1, -1] + [1] * (dims - 2))


def output_path_is_exact(
    weight: torch.Tensor | None, bias: torch.Tensor | None, negative_slope: float, dtype: Any
) -> bool:
    """Whether the BatchNorm input can be rebuilt from the output to within rounding.

    False for ``negative_slope <= 0`` (ReLU's output forgets negative inputs; a negative
    slope maps both signs to >= 0) and when some channel's ``|bias| > limit * |weight|``
    (``weight == 0`` included), with ``limit`` 1e3 for float32/float64, 16 for float16 and 2
    for bfloat16. Reads the weights on the host (one small synchronisation per call).

    Examples:
        >>> output_path_is_exact(torch.ones(2), torch.zeros(2), 0.01, torch.float32)
        True
        >>> output_path_is_exact(torch.tensor([1.0, 0.0]), None, 0.01, torch.float32)
        False
        >>> output_path_is_exact(None, None, 0.0, torch.float32)
        False

    """
    if negative_slope <= 0:
        return False
    if weight is None:
        return True
    limit = _MAX_BIAS_TO_WEIGHT.get(dtype, _DEFAULT_MAX_BIAS_TO_WEIGHT)
    magnitude = weight.detach().abs()
    unsafe = magnitude == 0
    if bias is not None:
        unsafe = unsafe | (bias.detach().abs() > limit * magnitude)
    return not bool(unsafe.any())


class _BatchNormLeakyReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        running_mean: torch.Tensor | None,
        running_var: torch.Tensor | None,
        training: bool,
        momentum: float,
        eps: float,
        negative_slope: float,
        triton: bool,
    ) -> torch.Tensor:
        # native_batch_norm is the kernel F.batch_norm runs on the CPU, so the forward (and
        # the running statistics' update) are bitwise PyTorch's.
        y, _, invstd = torch.native_batch_norm(
            x, weight, bias, running_mean, running_var, training, momentum, eps
        )
        torch_f.leaky_relu_(y, negative_slope)
        if not training:
            assert running_var is not None  # eval without running statistics is training
            invstd = torch.rsqrt(running_var.to(_accumulate_dtype(x.dtype)) + eps)
        ctx.training, ctx.negative_slope, ctx.triton = training, negative_slope, triton
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        ctx.save_for_backward(y, weight, bias, invstd)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: 1/std depends on the input we dropped
            raise RuntimeError(
                "batch_norm_leaky_relu keeps only its output, so its gradient cannot be "
                "differentiated again (create_graph=True); use save='input' (or "
                "BatchNorm + LeakyReLU modules) for double backward, e.g. a gradient penalty"
            )
        y, weight, bias, invstd = ctx.saved_tensors
        if ctx.triton:
            grad_x, grad_weight, grad_bias = load_triton_ops().batch_norm_leaky_relu_backward(
                grad,
                y,
                weight,
                bias,
                invstd,
                ctx.negative_slope,
                ctx.training,
                ctx.needs_input_grad[0],
            )
            return _gradients(ctx, grad_x, weight, grad_weight, bias, grad_bias)
        if y.dtype in (torch.float32, torch.float64):
            grad_x, grad_weight, grad_bias = _backward_one_temporary(
                ctx, grad, y, weight, bias, invstd
            )
            return _gradients(ctx, grad_x, weight, grad_weight, bias, grad_bias)
        dims = y.dim()
        acc = _accumulate_dtype(y.dtype)
        # Half types: two full-size temporaries, as many as PyTorch's pair allocates (the
        # activation's gradient and BatchNorm's): dL/dz, and x_hat, which becomes dL/dx.
        # dL/dz is PyTorch's own Leaky ReLU backward kernel fed the output (sign(y) == sign(z)).
        grad_z = _aten.leaky_relu_backward(grad, y, ctx.negative_slope, True).to(acc)
        # z = y for y > 0 and y / a otherwise: the same kernel, with slope 1/a, applied to y.
        y_acc = y.to(acc)
        x_hat = _aten.leaky_relu_backward(y_acc, y_acc, 1.0 / ctx.negative_slope, True)
        if ctx.has_bias:
            x_hat.sub_(_channel_view(bias.to(acc), dims))
        if ctx.has_weight:
            x_hat.div_(_channel_view(weight.to(acc), dims))
        # sum(dz * x_hat) and sum(dz) per channel without a full-size product: BatchNorm's own
        # backward reduction, given mean 0 and 1/std 1.
        channels = y.shape[1]
        zeros = torch.zeros(channels, dtype=acc, device=y.device)
        _, grad_weight, grad_bias = _aten.native_batch_norm_backward(
            grad_z, x_hat, None, None, None, zeros, zeros + 1, True, 0.0, [False, True, True]
        )
        grad_x = None
        if ctx.needs_input_grad[0]:
            scale = invstd if not ctx.has_weight else invstd * weight.to(acc)
            if ctx.training:
                count = y.numel() // channels
                # dx = gamma / std * (dz - mean(dz) - x_hat * mean(dz * x_hat))
                grad_x = x_hat.mul_(_channel_view(grad_weight / -count, dims))
                grad_x.add_(grad_z).sub_(_channel_view(grad_bias / count, dims))
                grad_x.mul_(_channel_view(scale, dims))
            else:
                grad_x = grad_z.mul_(_channel_view(scale, dims))
            grad_x = grad_x.to(y.dtype)
        return _gradients(ctx, grad_x, weight, grad_weight, bias, grad_bias)


# Values per slice of the batch when z = y / a is rebuilt for dL/dx: small next to the
# block's tensors, large enough that the slices' Python costs nothing.
_SLICE_ELEMENTS = 1 << 20


def _backward_one_temporary(
    ctx: Any,
    grad: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    invstd: torch.Tensor,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    # One full-size tensor of its own: dL/dz, which becomes dL/dx in place. With
    # z = y (y > 0) or y / a, dL/dz = dL/dy (y > 0) or a dL/dy, so dL/dz * z = dL/dy * y:
    #   sum(dL/dz * x_hat) = (sum(dL/dy * y) - beta * sum(dL/dz)) / gamma
    #   dL/dx = s * dL/dz + c0 + c1 * z, per channel s = gamma / std and
    #   c1 = -s * sum(dL/dz * x_hat) / (gamma * count), c0 = -s * sum(dL/dz) / count - c1 * beta
    # and z is rebuilt a slice of the batch at a time.
    dims, channels, slope = y.dim(), y.shape[1], ctx.negative_slope
    grad_z = _aten.leaky_relu_backward(grad, y, slope, True)
    # sum(dL/dy * y) and sum(dL/dz) per channel, without a full-size product: BatchNorm's
    # own backward reduction, given mean 0 and 1/std 1.
    zeros = torch.zeros(channels, dtype=y.dtype, device=y.device)
    _, grad_y_dot_y, _ = _aten.native_batch_norm_backward(
        grad, y, None, None, None, zeros, zeros + 1, True, 0.0, [False, True, False]
    )
    grad_bias = grad_z.sum([d for d in range(dims) if d != 1])
    dot = grad_y_dot_y - bias * grad_bias if ctx.has_bias else grad_y_dot_y
    grad_weight = dot / weight if ctx.has_weight else dot
    if not ctx.needs_input_grad[0]:
        return None, grad_weight, grad_bias
    scale = invstd * weight if ctx.has_weight else invstd
    grad_x = grad_z.mul_(_channel_view(scale, dims))
    if not ctx.training:
        return grad_x, grad_weight, grad_bias
    count = y.numel() // channels
    c1 = -scale * grad_weight / count
    if ctx.has_weight:
        c1 = c1 / weight
    c0 = -scale * grad_bias / count
    if ctx.has_bias:
        c0 = c0 - c1 * bias
    grad_x.add_(_channel_view(c0, dims))
    c1 = _channel_view(c1, dims)
    rows = max(1, _SLICE_ELEMENTS // max(1, y[0].numel())) if y.shape[0] else 1
    for start in range(0, y.shape[0], rows):
        part = y[start : start + rows]
        z = _aten.leaky_relu_backward(part, part, 1.0 / slope, True)
        grad_x[start : start + rows].addcmul_(z, c1)
    return grad_x, grad_weight, grad_bias


def _gradients(
    ctx: Any,
    grad_x: torch.Tensor | None,
    weight: torch.Tensor | None,
    grad_weight: torch.Tensor,
    bias: torch.Tensor | None,
    grad_bias: torch.Tensor,
) -> tuple[torch.Tensor | None, ...]:
    return (
        grad_x,
        grad_weight.to(weight.dtype) if ctx.needs_input_grad[1] else None,
        grad_bias.to(bias.dtype) if ctx.needs_input_grad[2] else None,
        *([None] * 7),
    )


def _check_statistics(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    training: bool,
) -> None:
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            "Expected both `running_mean` and `running_var`, or neither, but got only one"
        )
    if not training and running_mean is None:
        raise ValueError(
            "Expected `running_mean` and `running_var` in eval mode (training=False); pass "
            "them, or training=True to normalise with the batch's own statistics"
        )
    if input.dim() < 2:
        raise ValueError(
            f"Expected an input of shape (N, C, *) with at least 2 dimensions, but got shape "
            f"{tuple(input.shape)}"
        )
    # torch.native_batch_norm does not check these: a mismatch would read out of bounds.
    channels = input.shape[1]
    for name, tensor in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if tensor is not None and tensor.numel() != channels:
            raise ValueError(
                f"Expected `{name}` to have {channels} elements, one per channel of the input "
                f"of shape {tuple(input.shape)}, but got {tensor.numel()}; the BatchNorm was "
                "built for another number of channels"
            )


def batch_norm_leaky_relu(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    negative_slope: float = 0.01,
    save: Literal["auto", "input"] = "auto",
    *,
    impl: Impl = "auto",
) -> torch.Tensor:
    r"""``F.leaky_relu(F.batch_norm(...), negative_slope)`` keeping only the output for backward.

    The forward, and the update of ``running_mean`` / ``running_var``, call PyTorch's own
    kernel (``torch.native_batch_norm``, what ``F.batch_norm`` runs on the CPU), so values
    and statistics are bitwise those of the composition on the CPU. On CUDA, where
    ``F.batch_norm`` may pick cuDNN, they agree to rounding.

    Backward rebuilds the normalised input from the output (see the module docstring) and
    gives the composition's gradients to rounding: within about 1e-5 relative in float32
    (exact in float64 ``gradcheck``), and for float16 / bfloat16 inputs computed in float32
    from the half-precision output. What is kept between forward and backward is the
    output (which the next layer keeps anyway) plus 2-3 numbers per channel, instead of the
    BatchNorm's input and the activation's.

    Per call, ``save="auto"`` falls back to the plain composition, which keeps the input,
    when the output cannot give the input back exactly: ``negative_slope <= 0``, or a
    channel with ``|bias| > limit * |weight|`` (a zero weight included; see
    :func:`output_path_is_exact`), or an empty input. ``save="input"`` always does, and is
    what double backward (``create_graph=True``) needs: the output path's backward is
    differentiable once, since ``1/std`` depends on the input it no longer has.

    Args:
        input: floating-point tensor of shape ``(N, C, *)``.
        running_mean: per-channel running mean (updated in place when training), or None.
        running_var: per-channel running variance (updated in place when training), or None.
        weight: per-channel scale ``gamma``, or None. Default: ``None``
        bias: per-channel shift ``beta``, or None. Default: ``None``
        training: normalise with the batch's statistics and update the running ones.
            Default: ``False``
        momentum: weight of the batch's statistics in the running ones. Default: 0.1
        eps: added to the variance. Default: 1e-5
        negative_slope: Leaky ReLU's slope below zero. Default: 0.01
        save: ``"auto"`` or ``"input"`` (always the composition). Default: ``"auto"``
        impl: ``"auto"``, ``"torch"`` or ``"triton"`` (see :mod:`leaky.core.kernels`): where the
            output path is taken, a Triton backward computes the per-channel sums and the
            input gradient from ``y`` in two passes, without full-size temporaries.
            Default: ``"auto"``

    Shape:
        - Input: :math:`(N, C, *)`. Output: same shape.

    Examples:
        >>> x = torch.tensor([[1.0], [-1.0]])
        >>> batch_norm_leaky_relu(x, None, None, training=True, negative_slope=0.1)
        tensor([[ 1.0000],
                [-0.1000]])

    """
    check_tensor(input)
    slope = check_number(negative_slope, "negative_slope")
    momentum = check_number(momentum, "momentum")
    eps = check_number(eps, "eps")
    if eps <= 0:
        raise ValueError(f"Expected `eps` > 0, but got {eps}")
    if save not in BN_SAVE_MODES:
        raise ValueError(f"Expected `save` to be one of auto, input, but got {save!r}")
    _check_statistics(input, running_mean, running_var, weight, bias, training)
    triton = use_triton(impl, input)
    if training:
        torch_f._verify_batch_size(input.size())  # PyTorch's "more than 1 value per channel"
    grad_needed = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (input, weight, bias)
    )
    if (
        not grad_needed
        or save == "input"
        or input.numel() == 0
        or not output_path_is_exact(weight, bias, slope, input.dtype)
    ):
        normalized = torch_f.batch_norm(
            input, running_mean, running_var, weight, bias, training, momentum, eps
        )
        if grad_needed and slope < 0:  # in-place Leaky ReLU cannot run backward below 0
            return torch_f.leaky_relu(normalized, slope)
        # In place, as the least-memory PyTorch pair does: BatchNorm's backward needs its
        # input, not ``normalized``, and the activation keeps its output.
        return torch_f.leaky_relu_(normalized, slope)
    return _BatchNormLeakyReLUFunction.apply(
        input, weight, bias, running_mean, running_var, training, momentum, eps, slope, triton
    )
