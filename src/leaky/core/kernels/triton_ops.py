"""Triton kernels for leaky's CUDA path: bias + Leaky ReLU, the 1-bit mask, BatchNorm's backward.

The kernels serve ``bias_leaky_relu`` (forward and backward), ``leaky_relu(save="mask")``
and the backward of the fused BatchNorm + Leaky ReLU.

Each kernel does in one pass what PyTorch's path does in several: the bias, gain, activation
and clamp of ``bias_leaky_relu``; the comparison, packing and activation of the mask mode (and
unpacking with the scaling in its backward); and, for the BatchNorm's backward, the per-channel
sums and the input gradient straight from the output ``y``, without the two full-size
temporaries of the PyTorch path. Arithmetic is float32 for every storage type.

Inputs are made contiguous first (a copy for other layouts), so outputs are contiguous. The
per-channel sums are deterministic: every (channel, split) program writes its own partial sum
and PyTorch adds the partial sums in a fixed order.

Triton decides when a kernel is defined (at this module's import) whether it runs compiled or
in its CPU interpreter (``TRITON_INTERPRET=1``); :data:`INTERPRETED` records which.
"""

# ruff: noqa: N803  (Triton names compile-time constants in capitals)
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from triton import knobs

__all__ = [
    "INTERPRETED",
    "batch_norm_leaky_relu_backward",
    "bias_leaky_relu_backward",
    "bias_leaky_relu_forward",
    "leaky_relu_mask_backward",
    "leaky_relu_mask_forward",
]

INTERPRETED: bool = bool(knobs.runtime.interpret)
_BLOCK = 1024
_BYTES_BLOCK = 256  # bytes of mask per program: 8 x 256 elements


def _blocks(n: int, block: int) -> tuple[int]:
    return (triton.cdiv(n, block),)


# --------------------------------------------------------------------------- bias_leaky_relu
@triton.jit
def _bias_leaky_relu_forward_kernel(
    x_ptr,
    bias_ptr,
    y_ptr,
    n,
    channels,
    inner,
    slope,
    gain,
    clamp,
    HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offsets < n
    # gain * leaky(x + b) == leaky(gain * x + gain * b) for gain > 0, as in the PyTorch path.
    z = tl.load(x_ptr + offsets, mask=valid, other=0.0).to(tl.float32) * gain
    if HAS_BIAS:
        b = tl.load(bias_ptr + (offsets // inner) % channels, mask=valid, other=0.0)
        z = z + b.to(tl.float32) * gain
    y = tl.where(z > 0, z, z * slope)
    if HAS_CLAMP:
        y = tl.maximum(y, -clamp, propagate_nan=tl.PropagateNan.ALL)
        y = tl.minimum(y, clamp, propagate_nan=tl.PropagateNan.ALL)
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _bias_leaky_relu_backward_kernel(
    grad_ptr,
    y_ptr,
    out_ptr,
    n,
    slope,
    gain,
    clamp,
    HAS_CLAMP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offsets < n
    g = tl.load(grad_ptr + offsets, mask=valid, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offsets, mask=valid, other=0.0).to(tl.float32)
    d = tl.where(y > 0, g, g * slope)  # sign(y) == sign(x + b) for slope >= 0, gain > 0
    if HAS_CLAMP:
        d = tl.where(tl.abs(y) >= clamp, 0.0, d)
    tl.store(out_ptr + offsets, (d * gain).to(out_ptr.dtype.element_ty), mask=valid)


def _bias_layout(shape: torch.Size, dim: int) -> tuple[int, int]:
    return shape[dim], math.prod(shape[dim + 1 :])


def _stored_clamp(clamp: float | None, dtype: torch.dtype) -> float:
    # The bound as the PyTorch path sees it: rounded to the tensor's dtype (0.9 is 0.8999 in
    # float16), so that an output clamped to it compares equal in the backward.
    return 0.0 if clamp is None else float(torch.tensor(clamp, dtype=dtype))


def bias_leaky_relu_forward(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    dim: int,
    slope: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    """``clamp(gain * leaky(x + bias))`` in one pass; contiguous output."""
    x = x.contiguous()
    y = torch.empty_like(x)
    n = x.numel()
    if n:
        channels, inner = _bias_layout(x.shape, dim) if bias is not None else (1, 1)
        _bias_leaky_relu_forward_kernel[_blocks(n, _BLOCK)](
            x,
            x if bias is None else bias.contiguous(),
            y,
            n,
            channels,
            inner,
            slope,
            gain,
            _stored_clamp(clamp, x.dtype),
            HAS_BIAS=bias is not None,
            HAS_CLAMP=clamp is not None,
            BLOCK=_BLOCK,
        )
    return y


def bias_leaky_relu_backward(
    grad: torch.Tensor, y: torch.Tensor, slope: float, gain: float, clamp: float | None
) -> torch.Tensor:
    """The input gradient of :func:`bias_leaky_relu_forward` from its output; contiguous."""
    grad, y = grad.contiguous(), y.contiguous()
    out = torch.empty_like(y)
    n = y.numel()
    if n:
        _bias_leaky_relu_backward_kernel[_blocks(n, _BLOCK)](
            grad,
            y,
            out,
            n,
            slope,
            gain,
            _stored_clamp(clamp, y.dtype),
            HAS_CLAMP=clamp is not None,
            BLOCK=_BLOCK,
        )
    return out


# --------------------------------------------------------------------------- leaky_relu mask
# The mask layout is leaky.core.functional's: byte j holds elements j, m + j, ..., 7m + j in bits
# 0..7 (m bytes, m = ceil(n / 8)), so the two paths' masks are interchangeable.
@triton.jit
def _leaky_relu_pack_kernel(x_ptr, y_ptr, packed_ptr, n, m, slope, BLOCK: tl.constexpr):
    j = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_bytes = j < m
    bits = tl.zeros([BLOCK], dtype=tl.int32)
    for k in tl.static_range(8):
        index = k * m + j
        valid = in_bytes & (index < n)
        x = tl.load(x_ptr + index, mask=valid, other=0.0).to(tl.float32)
        positive = x > 0
        y = tl.where(positive, x, x * slope)
        tl.store(y_ptr + index, y.to(y_ptr.dtype.element_ty), mask=valid)
        bits = bits | (positive.to(tl.int32) << k)
    tl.store(packed_ptr + j, bits.to(tl.uint8), mask=in_bytes)


@triton.jit
def _leaky_relu_unpack_backward_kernel(
    grad_ptr, packed_ptr, out_ptr, n, m, slope, BLOCK: tl.constexpr
):
    j = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_bytes = j < m
    bits = tl.load(packed_ptr + j, mask=in_bytes, other=0).to(tl.int32)
    for k in tl.static_range(8):
        index = k * m + j
        valid = in_bytes & (index < n)
        g = tl.load(grad_ptr + index, mask=valid, other=0.0).to(tl.float32)
        positive = ((bits >> k) & 1) != 0
        tl.store(
            out_ptr + index,
            tl.where(positive, g, g * slope).to(out_ptr.dtype.element_ty),
            mask=valid,
        )


def leaky_relu_mask_forward(
    x: torch.Tensor, slope: float, inplace: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaky ReLU of ``x`` and its packed sign mask, in one pass over the data."""
    source = x.contiguous()
    y = source if inplace else torch.empty_like(source)
    n = source.numel()
    m = -(-n // 8)
    packed = torch.empty(m, dtype=torch.uint8, device=x.device)
    if n:
        _leaky_relu_pack_kernel[_blocks(m, _BYTES_BLOCK)](
            source, y, packed, n, m, slope, BLOCK=_BYTES_BLOCK
        )
    if inplace and y is not x:  # x was not contiguous: write the result back into it
        x.copy_(y)
        y = x
    return y, packed


def leaky_relu_mask_backward(
    grad: torch.Tensor, packed: torch.Tensor, slope: float
) -> torch.Tensor:
    """The input gradient from the upstream gradient and the packed mask; contiguous."""
    grad = grad.contiguous()
    out = torch.empty_like(grad)
    n, m = grad.numel(), packed.numel()
    if n:
        _leaky_relu_unpack_backward_kernel[_blocks(m, _BYTES_BLOCK)](
            grad, packed, out, n, m, slope, BLOCK=_BYTES_BLOCK
        )
    return out


# --------------------------------------------------------------------------- BatchNorm backward
@triton.jit
def _normalized_from_output(y, beta, gamma, inv_slope):
    # Leaky ReLU undone (z = y / a below 0), then BatchNorm's affine map undone.
    z = tl.where(y > 0, y, y * inv_slope)
    return (z - beta) / gamma


@triton.jit
def _channel_affine(weight_ptr, bias_ptr, c, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr):
    gamma = 1.0
    beta = 0.0
    if HAS_WEIGHT:
        gamma = tl.load(weight_ptr + c).to(tl.float32)
    if HAS_BIAS:
        beta = tl.load(bias_ptr + c).to(tl.float32)
    return gamma, beta


@triton.jit
def _batch_norm_sums_kernel(
    grad_ptr,
    y_ptr,
    weight_ptr,
    bias_ptr,
    partial_ptr,
    channels,
    inner,
    count,
    per_split,
    splits,
    slope,
    inv_slope,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    c = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1).to(tl.int64)
    gamma, beta = _channel_affine(weight_ptr, bias_ptr, c, HAS_WEIGHT, HAS_BIAS)
    sum_dz = tl.zeros([BLOCK], dtype=tl.float32)
    sum_dz_xhat = tl.zeros([BLOCK], dtype=tl.float32)
    start = split * per_split
    for offset in range(0, per_split, BLOCK):
        e = start + offset + tl.arange(0, BLOCK)  # index among the channel's count elements
        valid = e < count
        address = (e // inner) * channels * inner + c * inner + e % inner
        g = tl.load(grad_ptr + address, mask=valid, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + address, mask=valid, other=0.0).to(tl.float32)
        dz = tl.where(y > 0, g, g * slope)
        x_hat = _normalized_from_output(y, beta, gamma, inv_slope)
        sum_dz += dz
        sum_dz_xhat += tl.where(valid, dz * x_hat, 0.0)
    tl.store(partial_ptr + c * splits + split, tl.sum(sum_dz, axis=0))
    tl.store(partial_ptr + (channels + c) * splits + split, tl.sum(sum_dz_xhat, axis=0))


@triton.jit
def _batch_norm_input_grad_kernel(
    grad_ptr,
    y_ptr,
    weight_ptr,
    bias_ptr,
    coef_ptr,
    out_ptr,
    n,
    channels,
    inner,
    slope,
    inv_slope,
    TRAINING: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offsets < n
    c = (offsets // inner) % channels
    g = tl.load(grad_ptr + offsets, mask=valid, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offsets, mask=valid, other=0.0).to(tl.float32)
    dz = tl.where(y > 0, g, g * slope)
    scale = tl.load(coef_ptr + c, mask=valid, other=0.0)
    if TRAINING:
        gamma = tl.full([BLOCK], 1.0, tl.float32)
        beta = tl.zeros([BLOCK], dtype=tl.float32)
        if HAS_WEIGHT:
            gamma = tl.load(weight_ptr + c, mask=valid, other=1.0).to(tl.float32)
        if HAS_BIAS:
            beta = tl.load(bias_ptr + c, mask=valid, other=0.0).to(tl.float32)
        x_hat = _normalized_from_output(y, beta, gamma, inv_slope)
        mean_dz = tl.load(coef_ptr + channels + c, mask=valid, other=0.0)
        mean_dz_xhat = tl.load(coef_ptr + 2 * channels + c, mask=valid, other=0.0)
        # dx = gamma / std * (dz - mean(dz) - x_hat * mean(dz * x_hat))
        dx = (dz - mean_dz - x_hat * mean_dz_xhat) * scale
    else:
        dx = dz * scale
    tl.store(out_ptr + offsets, dx.to(out_ptr.dtype.element_ty), mask=valid)


def batch_norm_leaky_relu_backward(
    grad: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    invstd: torch.Tensor,
    slope: float,
    training: bool,
    needs_input_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(grad_input, sum(dz * x_hat), sum(dz)) per channel, from the output ``y`` alone.

    The sums are float32; the caller casts them to the parameters' dtypes.
    """
    grad, y = grad.contiguous(), y.contiguous()
    channels = y.shape[1]
    inner = math.prod(y.shape[2:])
    count = y.numel() // channels
    weight_arg = y if weight is None else weight.contiguous()
    bias_arg = y if bias is None else bias.contiguous()
    # Enough (channel, split) programs to fill a GPU, each summing whole blocks.
    splits = max(1, min(triton.cdiv(count, _BLOCK), triton.cdiv(512, channels)))
    per_split = triton.cdiv(triton.cdiv(count, splits), _BLOCK) * _BLOCK
    splits = triton.cdiv(count, per_split)
    partial = torch.empty(2, channels, splits, dtype=torch.float32, device=y.device)
    _batch_norm_sums_kernel[(channels, splits)](
        grad,
        y,
        weight_arg,
        bias_arg,
        partial,
        channels,
        inner,
        count,
        per_split,
        splits,
        slope,
        1.0 / slope,
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        BLOCK=_BLOCK,
    )
    grad_bias, grad_weight = partial.sum(dim=2)
    if not needs_input_grad:
        return None, grad_weight, grad_bias
    scale = invstd.float() if weight is None else invstd.float() * weight.float()
    coef = torch.stack([scale, grad_bias / count, grad_weight / count]).contiguous()
    out = torch.empty_like(y)
    n = y.numel()
    _batch_norm_input_grad_kernel[_blocks(n, _BLOCK)](
        grad,
        y,
        weight_arg,
        bias_arg,
        coef,
        out,
        n,
        channels,
        inner,
        slope,
        1.0 / slope,
        TRAINING=training,
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        BLOCK=_BLOCK,
    )
    return out, grad_weight, grad_bias
