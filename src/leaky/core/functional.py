"""Rectified activations as functions, with exact gradients and a memory-light backward.

The forward passes call PyTorch's own kernels, and every backward pass calls the very
kernel PyTorch's autograd uses (``aten.leaky_relu_backward``), so values and gradients
are bitwise the same as ``torch.nn.functional``. What changes is what autograd keeps
alive between forward and backward:

======================  =====================================  ==========================
op                      PyTorch keeps                          leaky keeps
======================  =====================================  ==========================
``leaky_relu``          the input x                            the output y (or 1 bit/x)
``rrelu`` (eval)        x and a full-size noise tensor         y
``rrelu`` (training)    x and a full-size noise tensor         y and a generator state
``bias_leaky_relu``     x + b and leaky(x + b) (eager ops)     y
======================  =====================================  ==========================

The output is free to keep: the next layer (a Linear or a convolution) keeps it anyway
for its own weight gradient, so the two references share one storage. This works
because for a slope >= 0 the sign of the output equals the sign of the input.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as torch_f

from leaky.core.batch_norm_leaky_relu import batch_norm_leaky_relu
from leaky.core.checks import check_number, check_tensor
from leaky.core.kernels import Impl, check_impl, load_triton_ops, use_triton
from leaky.core.spec import leaky_gain

__all__ = [
    "SAVE_MODES",
    "SaveMode",
    "batch_norm_leaky_relu",
    "bias_leaky_relu",
    "check_number",
    "leaky_relu",
    "pack_positive_mask",
    "packed_mask_bytes",
    "prelu",
    "relu",
    "rrelu",
    "sigmoid",
    "tanh",
    "unpack_positive_mask",
]

SaveMode = Literal["auto", "output", "mask", "input"]
SAVE_MODES: tuple[str, ...] = ("auto", "output", "mask", "input")

_aten = torch.ops.aten


# --------------------------------------------------------------------------- validation
def check_negative_slope(negative_slope: Any, inplace: bool = False) -> float:
    """Validate a Leaky ReLU slope: finite, and >= 0 when the op works in place.

    Examples:
        >>> check_negative_slope(0.2)
        0.2

    """
    slope = check_number(negative_slope, "negative_slope")
    if inplace and slope < 0:
        raise ValueError(
            f"Expected `negative_slope` to be a finite number >= 0 for in-place use, but got "
            f"{slope}: with a negative slope the input cannot be recovered from the output; "
            "use inplace=False"
        )
    return slope


def resolve_save(save: Any, negative_slope: float, inplace: bool) -> str:
    """Turn ``save="auto"`` into a concrete mode and reject impossible combinations.

    Examples:
        >>> resolve_save("auto", 0.01, False), resolve_save("auto", -0.5, False)
        ('output', 'input')

    """
    if save not in SAVE_MODES:
        raise ValueError(f"Expected `save` to be one of {', '.join(SAVE_MODES)}, but got {save!r}")
    if save == "auto":
        return "output" if negative_slope >= 0 else "input"
    if save == "output" and negative_slope < 0:
        raise ValueError(
            f"save='output' needs negative_slope >= 0 (the output's sign must equal the "
            f"input's), but got {negative_slope}; use save='mask' or save='input'"
        )
    if save == "input" and inplace:
        raise ValueError(
            "save='input' cannot be combined with inplace=True: the input is overwritten"
        )
    return save


def _needs_graph(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# --------------------------------------------------------------------------- 1-bit masks
# Layout: the flattened tensor (n elements, row-major) is cut into 8 planes of m = ceil(n / 8)
# elements (the last one zero-padded), and plane k goes to bit k of every byte: byte j holds
# elements j, m + j, 2m + j, ... 7m + j. Each plane is a contiguous slice, so packing is one
# vectorised comparison and one 8-term dot product per byte (a BLAS matrix-vector product
# with the weights 1, 2, ..., 128, exact in every float type: the sums are integers <= 255),
# and unpacking is one broadcast bitwise-and. Comparisons into a bool tensor, torch.where
# and masked_fill run scalar loops on the CPU (5-40x slower than a float pass, measured with
# torch 2.13), so neither direction makes a bool tensor; and no bool view is taken either,
# which Inductor (torch 2.13, AVX2) miscompiles.
_BIT_WEIGHTS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _bit_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (device, dtype)
    if key not in _BIT_WEIGHTS:
        _BIT_WEIGHTS[key] = torch.tensor([1 << k for k in range(8)], dtype=dtype, device=device)
    return _BIT_WEIGHTS[key]


def packed_mask_bytes(numel: int) -> int:
    """Bytes of a packed sign mask of ``numel`` elements: ``ceil(numel / 8)``.

    Examples:
        >>> packed_mask_bytes(5), packed_mask_bytes(16), packed_mask_bytes(0)
        (1, 2, 0)

    """
    return -(-numel // 8)


def _pack_planes(positive: torch.Tensor) -> torch.Tensor:
    # positive: 8 * m contiguous floats, 1.0 where x > 0 and 0.0 elsewhere (padding included).
    planes = positive.view(8, -1)
    weights = _bit_weights(positive.device, positive.dtype)
    return torch.matmul(weights, planes).to(torch.uint8)


def _positive_and_output(
    x: torch.Tensor, negative_slope: float, inplace: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaky ReLU of ``x`` and its packed sign mask; one comparison pass, no bool tensor."""
    n = x.numel()
    m = packed_mask_bytes(n)
    if not inplace and x.is_contiguous() and n == 8 * m:
        # The comparison's 0/1 floats go into the output's own buffer, which the activation
        # then overwrites: no allocation beyond the output and the m-byte mask.
        y = torch.empty_like(x)
        torch.gt(x, 0, out=y)
        packed = _pack_planes(y.view(-1))
        return _aten.leaky_relu.out(x, negative_slope, out=y), packed
    positive = torch.empty(8 * m, dtype=x.dtype, device=x.device)
    torch.gt(x, 0, out=positive[:n].view(x.shape))  # row-major whatever x's strides
    positive[n:].zero_()
    packed = _pack_planes(positive)
    if inplace:
        return torch_f.leaky_relu_(x, negative_slope), packed
    return torch_f.leaky_relu(x, negative_slope), packed


def _unpack_planes(packed: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # out: 8 * m contiguous elements; gets 2**k (> 0) where the bit is set and 0 elsewhere.
    weights = _bit_weights(packed.device, torch.uint8).view(8, 1)
    out.view(8, -1).copy_(torch.bitwise_and(packed.view(1, -1), weights))
    return out


def pack_positive_mask(x: torch.Tensor) -> torch.Tensor:
    """Pack ``x > 0`` into ceil(x.numel() / 8) bytes.

    Bit ``k`` of byte ``j`` holds element ``k * m + j`` of ``x.flatten()``, where ``m`` is
    the number of bytes: eight contiguous planes, one per bit, so that each direction is one
    vectorised pass over the data.

    Examples:
        >>> pack_positive_mask(torch.tensor([1.0, -1.0, 2.0, 0.0, 3.0])).tolist()
        [21]
        >>> pack_positive_mask(torch.tensor([1.0, -1.0] * 8)).tolist()  # evens in byte 0
        [255, 0]

    """
    n = x.numel()
    positive = torch.empty(8 * packed_mask_bytes(n), dtype=x.dtype, device=x.device)
    torch.gt(x, 0, out=positive[:n].view(x.shape))
    positive[n:].zero_()
    return _pack_planes(positive)


def unpack_positive_mask(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`pack_positive_mask`: a bool tensor of ``shape``.

    Examples:
        >>> unpack_positive_mask(torch.tensor([21], dtype=torch.uint8), torch.Size([5])).tolist()
        [True, False, True, False, True]

    """
    n = math.prod(shape)
    bits = torch.empty(8 * packed.numel(), dtype=torch.uint8, device=packed.device)
    return _unpack_planes(packed, bits)[:n].ne(0).view(shape)


def _positive_surrogate(packed: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    # > 0 where x > 0 and 0 elsewhere, in grad's dtype and shape, so that PyTorch's own
    # backward kernel can consume it in place of x and give bitwise the same gradient.
    # When grad is contiguous and fills whole bytes this buffer then receives the gradient.
    n = grad.numel()
    surrogate = torch.empty(8 * packed.numel(), dtype=grad.dtype, device=grad.device)
    return _unpack_planes(packed, surrogate)[:n].view(grad.shape)


def _mask_backward(grad: torch.Tensor, packed: torch.Tensor, negative_slope: float) -> torch.Tensor:
    surrogate = _positive_surrogate(packed, grad)
    # Not when the gradient itself is differentiated (create_graph): out= is not.
    if grad.is_contiguous() and grad.numel() == 8 * packed.numel() and not torch.is_grad_enabled():
        return _aten.leaky_relu_backward.grad_input(
            grad, surrogate, negative_slope, False, grad_input=surrogate
        )
    return _aten.leaky_relu_backward(grad, surrogate, negative_slope, False)


# --------------------------------------------------------------------------- leaky_relu
class _LeakyReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, negative_slope: float, inplace: bool, save: str, triton: bool
    ) -> torch.Tensor:
        mask = None
        if triton:  # save == "mask": compare, pack and activate in one kernel
            y, mask = load_triton_ops().leaky_relu_mask_forward(x, negative_slope, inplace)
        elif save == "mask":
            y, mask = _positive_and_output(x, negative_slope, inplace)
        elif inplace:
            y = torch_f.leaky_relu_(x, negative_slope)
        else:
            y = torch_f.leaky_relu(x, negative_slope)
        if inplace:
            ctx.mark_dirty(x)
        ctx.negative_slope = negative_slope
        ctx.save, ctx.triton = save, triton
        ctx.save_for_backward({"output": y, "input": x, "mask": mask}[save])
        return y

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None, None, None]:
        (saved,) = ctx.saved_tensors
        # The kernel's gradient is not differentiable; for create_graph=True the PyTorch
        # path reads the same mask.
        if ctx.triton and not torch.is_grad_enabled():
            grad_input = load_triton_ops().leaky_relu_mask_backward(grad, saved, ctx.negative_slope)
        elif ctx.save == "mask":
            grad_input = _mask_backward(grad, saved, ctx.negative_slope)
        else:
            grad_input = _aten.leaky_relu_backward(
                grad, saved, ctx.negative_slope, ctx.save == "output"
            )
        return grad_input, None, None, None, None


def leaky_relu(
    input: torch.Tensor,
    negative_slope: float = 0.01,
    inplace: bool = False,
    *,
    save: SaveMode = "auto",
    impl: Impl = "auto",
) -> torch.Tensor:
    r"""Apply Leaky ReLU elementwise, keeping the least that gives an exact gradient.

    .. math::
        \text{LeakyReLU}(x) = \max(0, x) + \text{negative\_slope} \cdot \min(0, x)

    or, case by case: ``x`` if ``x > 0``, else ``negative_slope * x``. The derivative is 1
    for ``x > 0`` and ``negative_slope`` otherwise (also at exactly 0, as in PyTorch).

    Forward and gradient are bitwise the same as ``torch.nn.functional.leaky_relu`` for
    every input, NaN, +-inf, -0.0 and subnormals included. Default 0.01 is PyTorch's and
    JAX's; Keras' ``LeakyReLU`` layer uses 0.3 and ``tf.nn.leaky_relu`` 0.2.

    Args:
        input: floating-point tensor of any shape.
        negative_slope: slope for ``x <= 0``; finite. Default: 0.01
        inplace: overwrite ``input`` with the result (needs ``negative_slope >= 0``).
            Default: ``False``
        save: what backward keeps. ``"output"``: only the output tensor, which the next
            layer usually keeps anyway (needs ``negative_slope >= 0``). ``"mask"``: a
            bit-packed sign mask of ceil(n/8) bytes, not the output. ``"input"``: the
            input, as PyTorch does. ``"auto"``: ``"output"`` for slopes >= 0, else
            ``"input"``. All give exactly the same gradients. Default: ``"auto"``
        impl: ``"auto"``, ``"torch"`` or ``"triton"`` (see :mod:`leaky.core.kernels`). Only
            ``save="mask"`` has a Triton kernel (compare, pack and activate in one pass;
            unpack and scale in one pass); the other modes run one PyTorch kernel per
            direction already. The kernel's output is contiguous. Default: ``"auto"``

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, same shape as the input.

    Examples:
        >>> x = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
        >>> y = leaky_relu(x, 0.1)
        >>> y
        tensor([-0.2000,  0.0000,  3.0000], grad_fn=<_LeakyReLUFunctionBackward>)
        >>> y.sum().backward()
        >>> x.grad
        tensor([0.1000, 0.1000, 1.0000])

    """
    check_tensor(input)
    slope = check_negative_slope(negative_slope, inplace)
    mode = resolve_save(save, slope, inplace)
    check_impl(impl)
    if not _needs_graph(input):
        return torch_f.leaky_relu_(input, slope) if inplace else torch_f.leaky_relu(input, slope)
    triton = mode == "mask" and use_triton(impl, input)
    return _LeakyReLUFunction.apply(input, slope, inplace, mode, triton)


# --------------------------------------------------------------------------- rrelu
def check_rrelu_bounds(lower: Any, upper: Any, inplace: bool = False) -> tuple[float, float]:
    """Validate RReLU's slope range: finite, ``lower <= upper``, ``lower >= 0`` in place.

    Examples:
        >>> check_rrelu_bounds(0.1, 0.3)
        (0.1, 0.3)
    """
    low = check_number(lower, "lower")
    high = check_number(upper, "upper")
    if low > high:
        raise ValueError(
            f"Expected `lower` <= `upper` for RReLU's slope range, but got lower={low}, "
            f"upper={high}; swap them"
        )
    if inplace and low < 0:
        raise ValueError(
            f"Expected `lower` >= 0 for in-place use, but got {low}: with a negative slope the "
            "input cannot be recovered from the output; use inplace=False"
        )
    return low, high


def _default_generator(device: torch.device) -> torch.Generator:
    if device.type == "cpu":
        return torch.default_generator
    return torch.Generator(device=device).manual_seed(
        int(torch.randint(2**62, (1,), generator=torch.default_generator))
    )


def _random_slopes(
    like: torch.Tensor, lower: float, upper: float, generator: torch.Generator
) -> torch.Tensor:
    # Always drawn into a contiguous tensor, so forward (shaped like x) and backward (shaped
    # like the gradient, whose strides may differ) put the same slope on the same element.
    slopes = torch.empty(like.shape, dtype=like.dtype, device=like.device)
    return slopes.uniform_(lower, upper, generator=generator)


def _rrelu_training_forward(
    x: torch.Tensor, lower: float, upper: float, inplace: bool, generator: torch.Generator
) -> torch.Tensor:
    slopes = _random_slopes(x, lower, upper, generator)
    slopes.masked_fill_(torch.gt(x, 0), 1.0)
    return x.mul_(slopes) if inplace else torch.mul(x, slopes)


class _RReLUTrainingFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        lower: float,
        upper: float,
        inplace: bool,
        generator: torch.Generator,
    ) -> torch.Tensor:
        # Keep the generator's state, not the slopes: backward draws them again.
        ctx.generator_state = generator.get_state()
        ctx.generator_device = generator.device
        ctx.lower, ctx.upper = lower, upper
        # sign(y) == sign(x) when every slope is >= 0; otherwise keep 1 bit per element.
        mask = pack_positive_mask(x) if lower < 0 else None
        y = _rrelu_training_forward(x, lower, upper, inplace, generator)
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(y if mask is None else mask)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        (saved,) = ctx.saved_tensors
        generator = torch.Generator(device=ctx.generator_device)
        generator.set_state(ctx.generator_state)
        slopes = _random_slopes(grad, ctx.lower, ctx.upper, generator)
        if saved.dtype == torch.uint8:
            positive = unpack_positive_mask(saved, grad.shape)
        else:
            positive = torch.gt(saved, 0)
        slopes.masked_fill_(positive, 1.0)
        return grad * slopes, None, None, None, None


def rrelu(
    input: torch.Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Randomized Leaky ReLU (Xu et al. 2015), keeping no noise tensor.

    .. math::
        \text{RReLU}(x) = x \text{ if } x > 0 \text{ else } a x,
        \quad a \sim \mathcal{U}(\text{lower}, \text{upper}) \text{ in training}

    In evaluation ``a = (lower + upper) / 2`` and this is :func:`leaky_relu` with that
    slope: bitwise PyTorch's values and gradients, without the full-size noise tensor
    PyTorch allocates and keeps even in evaluation. In training every element draws its
    own slope from ``generator`` (PyTorch's default generator when None, so
    ``torch.manual_seed`` makes runs repeat); backward keeps the output and the
    generator's state and draws the same slopes again, instead of keeping them.

    Args:
        input: floating-point tensor of any shape.
        lower: lower bound of the slope range. Default: 1/8
        upper: upper bound of the slope range. Default: 1/3
        training: draw random slopes (True) or use the mean slope. Default: ``False``
        inplace: overwrite ``input`` with the result (needs ``lower >= 0``). Default: ``False``
        generator: source of the random slopes in training. Default: ``None``

    Shape:
        - Input: :math:`(*)`. Output: :math:`(*)`, same shape.

    Examples:
        >>> rrelu(torch.tensor([-1.0, 2.0]), 0.1, 0.3)
        tensor([-0.2000,  2.0000])
        >>> g = torch.Generator().manual_seed(0)
        >>> y = rrelu(-torch.ones(1000), 0.1, 0.3, training=True, generator=g)
        >>> bool(((y <= -0.1) & (y >= -0.3)).all())
        True

    """
    check_tensor(input)
    low, high = check_rrelu_bounds(lower, upper, inplace)
    if not training:
        return leaky_relu(input, (low + high) / 2, inplace)
    if generator is None:
        generator = _default_generator(input.device)
    if not _needs_graph(input):
        return _rrelu_training_forward(input, low, high, inplace, generator)
    return _RReLUTrainingFunction.apply(input, low, high, inplace, generator)


# --------------------------------------------------------------------------- prelu
def check_prelu_weight(input: torch.Tensor, weight: Any) -> None:
    """Check that PReLU's ``weight`` has 1 element or one per channel of ``input``."""
    check_tensor(weight, "weight")
    channels = input.shape[1] if input.dim() >= 2 else 1
    if weight.numel() not in (1, channels):
        raise ValueError(
            f"Expected PReLU's `weight` to have 1 element or one per channel "
            f"(input.shape[1] = {channels}), but got {weight.numel()} elements; "
            f"use PReLU(num_parameters={channels}) or num_parameters=1"
        )


def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""PReLU: Leaky ReLU whose slope ``weight`` is learned (He et al. 2015).

    .. math::
        \text{PReLU}(x) = \max(0, x) + a \cdot \min(0, x)

    ``weight`` holds one slope shared by all channels or one per channel; the channel
    dimension is dim 1 (inputs with fewer than 2 dims have one channel). This is
    ``torch.nn.functional.prelu`` with clearer errors: the slope's gradient needs the
    input itself, so there is nothing lighter to keep.

    Args:
        input: floating-point tensor, channels in dim 1.
        weight: slopes, 1 or ``input.shape[1]`` elements.

    Shape:
        - Input: :math:`(N, C, *)` or :math:`(*)`. Output: same shape.

    Examples:
        >>> prelu(torch.tensor([[-1.0, 2.0]]), torch.tensor([0.25]))
        tensor([[-0.2500,  2.0000]])

    """
    check_tensor(input)
    check_prelu_weight(input, weight)
    if input.dim() == 0:
        raise ValueError("Expected `input` to have at least one dimension for PReLU, got a scalar")
    return torch_f.prelu(input, weight)


# --------------------------------------------------------------------------- bias_leaky_relu
def resolve_gain(gain: Any, negative_slope: float) -> float:
    """Turn ``gain`` (a number or ``"he"``) into a finite number > 0.

    Examples:
        >>> resolve_gain("he", 0.0) == math.sqrt(2)
        True

    """
    if gain == "he":
        return leaky_gain(negative_slope)
    value = check_number(gain, "gain")
    if value <= 0:
        raise ValueError(f"Expected `gain` to be > 0 (or 'he'), but got {value}")
    return value


def check_clamp(clamp: Any) -> float | None:
    if clamp is None:
        return None
    value = check_number(clamp, "clamp")
    if value <= 0:
        raise ValueError(f"Expected `clamp` to be > 0 or None, but got {value}")
    return value


def _check_bias(x: torch.Tensor, bias: torch.Tensor | None, dim: int) -> None:
    if bias is None:
        return
    check_tensor(bias, "bias")
    if bias.dtype != x.dtype:
        raise TypeError(
            f"Expected `bias` to have the input's dtype {x.dtype}, but got {bias.dtype}; "
            f"use bias.to({x.dtype})"
        )
    if bias.dim() != 1 or bias.shape[0] != x.shape[dim]:
        raise ValueError(
            f"Expected `bias` of shape ({x.shape[dim]},) to match input.shape[{dim}] for input "
            f"of shape {tuple(x.shape)}, but got bias of shape {tuple(bias.shape)}"
        )


def _bias_view(x: torch.Tensor, bias: torch.Tensor | None, dim: int) -> torch.Tensor | None:
    if bias is None:
        return None
    shape = [1] * x.dim()
    shape[dim] = -1
    return bias.view(shape)


def _bias_leaky_relu_forward(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    slope: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    # gain * leaky(x + b) == leaky(gain * x + gain * b) for gain > 0, so bias and gain go
    # into one pass that allocates the output, and the activation runs in place on it.
    # (addcmul rather than add(..., alpha=gain): torch.compile's Inductor drops `alpha` when
    # the other operand comes from a matmul, as in Linear -> bias_leaky_relu.)
    if bias is None:
        y = torch.mul(x, gain) if gain != 1.0 else x.clone()
    elif gain != 1.0:
        y = torch.addcmul(bias * gain, x, torch.full((), gain, dtype=x.dtype, device=x.device))
    else:
        y = torch.add(x, bias)
    torch_f.leaky_relu_(y, slope)
    if clamp is not None:
        y.clamp_(-clamp, clamp)
    return y


class _BiasLeakyReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        slope: float,
        gain: float,
        clamp: float | None,
        dim: int,
        triton: bool,
    ) -> torch.Tensor:
        if triton:
            y = load_triton_ops().bias_leaky_relu_forward(x, bias, dim, slope, gain, clamp)
        else:
            y = _bias_leaky_relu_forward(x, _bias_view(x, bias, dim), slope, gain, clamp)
        ctx.slope, ctx.gain, ctx.clamp, ctx.triton = slope, gain, clamp, triton
        ctx.reduce_dims = [d for d in range(x.dim()) if d != dim]
        ctx.save_for_backward(y)  # sign(y) == sign(x + b) for slope >= 0 and gain > 0
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (y,) = ctx.saved_tensors
        if ctx.triton and not torch.is_grad_enabled():  # the kernel is not differentiable
            grad_x = load_triton_ops().bias_leaky_relu_backward(
                grad, y, ctx.slope, ctx.gain, ctx.clamp
            )
            return _bias_leaky_relu_grads(ctx, grad_x)
        grad_x = _aten.leaky_relu_backward(grad, y, ctx.slope, True)
        if ctx.clamp is not None:
            # Clamped outputs pass no gradient; at exactly |y| == clamp neither (as in
            # StyleGAN2's bias_act), since y alone cannot tell x + b == clamp from > clamp.
            grad_x.masked_fill_(torch.abs(y) >= ctx.clamp, 0.0)
        if ctx.gain != 1.0:
            grad_x.mul_(ctx.gain)  # in place: grad_x is ours, and one allocation is enough
        return _bias_leaky_relu_grads(ctx, grad_x)


def _bias_leaky_relu_grads(ctx: Any, grad_x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    grad_bias = None
    if ctx.needs_input_grad[1]:
        grad_bias = grad_x.sum(dim=ctx.reduce_dims) if ctx.reduce_dims else grad_x
    return (grad_x if ctx.needs_input_grad[0] else None), grad_bias, None, None, None, None, None


def bias_leaky_relu(
    input: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    gain: float | Literal["he"] = math.sqrt(2.0),
    clamp: float | None = None,
    dim: int = 1,
    *,
    impl: Impl = "auto",
) -> torch.Tensor:
    r"""Bias add, Leaky ReLU, gain and optional clamp as one op with one output allocation.

    .. math::
        y = \operatorname{clamp}\big(\text{gain} \cdot
            \text{LeakyReLU}(x + b), -c, c\big)

    The default ``gain = sqrt(2)`` is StyleGAN2's fixed gain for its ``lrelu`` (slope
    0.2). The He gain that keeps the signal's variance for this slope is
    ``sqrt(2 / (1 + a^2))`` (1.387 for a = 0.2, what ``leaky.core.spec`` and
    ``leaky.core.init.calculate_gain`` give); pass ``gain="he"`` for it.

    Backward keeps only the output: for ``negative_slope >= 0`` and ``gain > 0`` the
    output's sign is the sign of ``x + b``. Outputs at or beyond the clamp pass no
    gradient (StyleGAN2's convention; ``torch.clamp`` passes it at exactly the bound).
    The result differs from the eager ``F.leaky_relu(x + b, a) * gain`` by rounding only
    (gain is applied before the activation, which is exact for gain > 0 in real numbers).

    Args:
        input: floating-point tensor.
        bias: 1-D tensor with ``input.shape[dim]`` elements, or None. Default: ``None``
        negative_slope: slope below zero, >= 0. Default: 0.2
        gain: number > 0 multiplying the output, or ``"he"``. Default: ``sqrt(2)``
        clamp: clamp the output to ``[-clamp, clamp]``; None for no clamp. Default: ``None``
        dim: dimension of ``input`` the bias runs along. Default: 1
        impl: ``"auto"``, ``"torch"`` or ``"triton"`` (see :mod:`leaky.core.kernels`): the Triton
            kernels do forward and backward in one pass each; their output is contiguous,
            and for float16/bfloat16 they round once, from float32. Default: ``"auto"``

    Shape:
        - Input: :math:`(*)` with ``input.shape[dim] == bias.numel()``. Output: same shape.

    Examples:
        >>> x = torch.tensor([[-1.0, 1.0]])
        >>> bias_leaky_relu(x, torch.tensor([0.5, 0.5]), gain=1.0)
        tensor([[-0.1000,  1.5000]])

    """
    check_tensor(input)
    slope = check_number(negative_slope, "negative_slope")
    if slope < 0:
        raise ValueError(
            f"Expected `negative_slope` >= 0 for bias_leaky_relu, but got {slope}; for a "
            "negative slope use leaky_relu(x + bias, negative_slope) * gain"
        )
    gain_value = resolve_gain(gain, slope)
    clamp_value = check_clamp(clamp)
    if bias is not None and not -input.dim() <= dim < input.dim():
        raise ValueError(
            f"Expected `dim` in [{-input.dim()}, {input.dim() - 1}] for input of shape "
            f"{tuple(input.shape)}, but got {dim}"
        )
    dim = dim % input.dim() if input.dim() else 0
    _check_bias(input, bias, dim)
    triton = use_triton(impl, input)
    if not _needs_graph(input, bias):
        if triton:
            return load_triton_ops().bias_leaky_relu_forward(
                input, bias, dim, slope, gain_value, clamp_value
            )
        bias_view = _bias_view(input, bias, dim)
        return _bias_leaky_relu_forward(input, bias_view, slope, gain_value, clamp_value)
    return _BiasLeakyReLUFunction.apply(input, bias, slope, gain_value, clamp_value, dim, triton)


# --------------------------------------------------------------------------- delegates
def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """ReLU, PyTorch's own (it already keeps only its output for backward).

    Examples:
        >>> relu(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])

    """
    check_tensor(input)
    return torch_f.relu(input, inplace=inplace)


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    """Sigmoid, PyTorch's own (it keeps only its output for backward).

    Examples:
        >>> sigmoid(torch.tensor([0.0]))
        tensor([0.5000])

    """
    check_tensor(input)
    return torch.sigmoid(input)


def tanh(input: torch.Tensor) -> torch.Tensor:
    """Tanh, PyTorch's own (it keeps only its output for backward).

    Examples:
        >>> tanh(torch.tensor([0.0]))
        tensor([0.])

    """
    check_tensor(input)
    return torch.tanh(input)
