"""The Triton kernels against the PyTorch path and the float64 reference.

Without a GPU they run in Triton's CPU interpreter: the repository's conftest.py sets
``TRITON_INTERPRET=1`` before anything imports the kernels. The interpreter rounds float32 to
bfloat16 by truncation (a GPU rounds to nearest), so bfloat16 results are checked to one
bfloat16 step there, and bitwise where a GPU runs the kernels.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f

from leaky import functional as F
from leaky import reference
from leaky.core.kernels import IMPLS, check_impl, use_triton

from _helpers import EDGE_VALUES, assert_bitwise_equal

pytest.importorskip("triton", reason="the optional Triton package is not installed")
triton_ops = pytest.importorskip("leaky.core.kernels.triton_ops")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not triton_ops.INTERPRETED:
    pytest.skip(
        "no GPU, and the kernels were imported without TRITON_INTERPRET=1",
        allow_module_level=True,
    )

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SIZES = (1, 7, 1000, 4097)
TOLERANCE = {
    torch.float32: {"rtol": 1e-6, "atol": 1e-6},
    torch.float16: {"rtol": 2e-3, "atol": 1e-3},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2},
}


def _exact_or_one_step(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bitwise; for bfloat16 in the interpreter (truncating), within one bfloat16 step."""
    if actual.dtype == torch.bfloat16 and triton_ops.INTERPRETED:
        torch.testing.assert_close(actual, expected, rtol=2**-7, atol=0, equal_nan=True)
    else:
        assert_bitwise_equal(actual, expected)


def _inputs(shape, dtype, seed=0, layout="contiguous"):
    g = torch.Generator().manual_seed(seed)

    def draw(size):
        return torch.randn(size, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)

    if layout == "transposed":
        return draw(shape[::-1]).t()
    if layout == "strided":
        return draw((*shape[:-1], 2 * shape[-1]))[..., ::2]
    return draw(shape)


# --------------------------------------------------------------------------- impl selection
def test_impl_selection():
    assert IMPLS == ("auto", "torch", "triton")
    assert not use_triton("torch", torch.zeros(2, device=DEVICE))
    assert use_triton("triton", torch.zeros(2, device=DEVICE))
    # auto picks the kernels on CUDA only: the interpreter is for the tests
    assert use_triton("auto", torch.zeros(2, device=DEVICE)) == (DEVICE == "cuda")
    assert not use_triton("auto", torch.zeros(2, dtype=torch.float64, device=DEVICE))
    with pytest.raises(ValueError, match="auto, torch, triton"):
        check_impl("cuda")
    with pytest.raises(ValueError, match="auto, torch, triton"):
        F.leaky_relu(torch.zeros(2), impl="fast")
    with pytest.raises(TypeError, match="float32, float16 or bfloat16.*impl='auto'"):
        F.bias_leaky_relu(torch.zeros(2, 3, dtype=torch.float64), impl="triton")


# --------------------------------------------------------------------------- leaky_relu mask
def _leaky_both(x, slope, impl_a, impl_b, grad, inplace=False):
    results = []
    for impl in (impl_a, impl_b):
        leaf = x.detach().clone().requires_grad_()
        inp = leaf * 1.0 if inplace else leaf
        y = F.leaky_relu(inp, slope, inplace=inplace, save="mask", impl=impl)
        y.backward(grad)
        results.append((y.detach(), leaf.grad))
    return results


# Every size in float32; the half types at two sizes (the interpreter is slow).
MASK_CASES = [(torch.float32, size) for size in SIZES] + [
    (dtype, size) for dtype in (torch.float16, torch.bfloat16) for size in (7, 1000)
]


@pytest.mark.parametrize(("dtype", "size"), MASK_CASES)
@pytest.mark.parametrize("slope", [0.0, 0.2, -0.3])
def test_leaky_relu_mask_matches_torch_path(dtype, size, slope):
    x = _inputs((size,), dtype, seed=size)
    grad = _inputs((size,), dtype, seed=size + 1)
    (y, gx), (y_ref, gx_ref) = _leaky_both(x, slope, "triton", "torch", grad)
    _exact_or_one_step(y, y_ref)
    _exact_or_one_step(gx, gx_ref)
    packed = triton_ops.leaky_relu_mask_forward(x, slope, False)[1]
    assert torch.equal(packed, F.pack_positive_mask(x))  # one mask format for both paths


def test_leaky_relu_mask_edge_values_bitwise():
    x = torch.tensor(EDGE_VALUES * 3, dtype=torch.float32, device=DEVICE)
    grad = torch.linspace(-2, 3, x.numel(), device=DEVICE)
    (y, gx), _ = _leaky_both(x, 0.2, "triton", "torch", grad)
    x_ref = x.clone().requires_grad_()
    y_ref = torch_f.leaky_relu(x_ref, 0.2)
    y_ref.backward(grad)
    assert_bitwise_equal(y, y_ref.detach())
    assert_bitwise_equal(gx, x_ref.grad)


@pytest.mark.parametrize("layout", ["transposed", "strided"])
@pytest.mark.parametrize("inplace", [False, True])
def test_leaky_relu_mask_non_contiguous(layout, inplace):
    x = _inputs((13, 9), torch.float32, layout=layout)
    assert not x.is_contiguous()
    grad = _inputs((13, 9), torch.float32, seed=3, layout=layout)
    (y, gx), (y_ref, gx_ref) = _leaky_both(x, 0.1, "triton", "torch", grad, inplace=inplace)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(gx, gx_ref)


def test_leaky_relu_mask_against_float64_reference():
    x = _inputs((1000,), torch.float32, seed=5)
    leaf = x.clone().requires_grad_()
    y = F.leaky_relu(leaf, 0.2, save="mask", impl="triton")
    y.sum().backward()
    x64 = x.double().cpu().numpy()
    np.testing.assert_allclose(y.detach().cpu().double(), reference.leaky_relu(x64, 0.2), 1e-6)
    np.testing.assert_allclose(
        leaf.grad.cpu().double(), reference.leaky_relu_derivative(x64, 0.2), rtol=1e-6
    )


def test_leaky_relu_mask_double_backward_falls_back_to_the_same_mask():
    x = _inputs((33,), torch.float32, seed=6).requires_grad_()
    (g1,) = torch.autograd.grad(
        F.leaky_relu(x, 0.2, save="mask", impl="triton").pow(2).sum(), x, create_graph=True
    )
    (h1,) = torch.autograd.grad(g1.sum(), x)
    (g2,) = torch.autograd.grad(torch_f.leaky_relu(x, 0.2).pow(2).sum(), x, create_graph=True)
    (h2,) = torch.autograd.grad(g2.sum(), x)
    assert_bitwise_equal(g1, g2)
    assert_bitwise_equal(h1, h2)


# --------------------------------------------------------------------------- bias_leaky_relu
def _bias_both(x, bias, slope, gain, clamp, dim, grad):
    results = []
    for impl in ("triton", "torch"):
        xa = x.detach().clone().requires_grad_()
        ba = bias.detach().clone().requires_grad_()
        y = F.bias_leaky_relu(xa, ba, slope, gain, clamp, dim, impl=impl)
        y.backward(grad)
        results.append((y.detach(), xa.grad, ba.grad))
    return results


BIAS_CASES = [
    # shape, dim, slope, gain, clamp
    ((7, 5), 1, 0.2, math.sqrt(2), None),
    ((1, 1), 1, 0.0, 1.0, None),
    ((4, 3, 5, 7), 1, 0.2, 1.0, 0.8),
    ((2, 3, 4, 6), 3, 0.05, 2.5, None),
    ((1000, 3), 0, 0.2, math.sqrt(2), 1.5),
    ((4097,), 0, 0.01, 0.5, None),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "dim", "slope", "gain", "clamp"), BIAS_CASES)
def test_bias_leaky_relu_matches_torch_path(dtype, shape, dim, slope, gain, clamp):
    x = _inputs(shape, dtype, seed=1)
    bias = _inputs((shape[dim],), dtype, seed=2)
    grad = _inputs(shape, dtype, seed=3)
    (y, gx, gb), (y_ref, gx_ref, gb_ref) = _bias_both(x, bias, slope, gain, clamp, dim, grad)
    tolerance = TOLERANCE[dtype]
    torch.testing.assert_close(y, y_ref, **tolerance)
    # Pre-activations within rounding of 0 (or of the clamp) may fall on either side of it.
    z = x.double() + bias.double().view([-1 if d == dim else 1 for d in range(x.dim())])
    settled = (z.abs() > 1e-2) & ((z * gain).abs() - (clamp or math.inf)).abs().gt(1e-2)
    torch.testing.assert_close(gx[settled], gx_ref[settled], **tolerance)
    if dtype == torch.float32:
        torch.testing.assert_close(gb, gb_ref, rtol=1e-5, atol=1e-5 * math.sqrt(x.numel()))
    expected = reference.bias_leaky_relu(
        x.double().cpu().numpy(), bias.double().cpu().numpy(), slope, gain, clamp, dim
    )
    np.testing.assert_allclose(y.double().cpu(), expected, rtol=tolerance["rtol"] * 8, atol=1e-2)


def test_bias_leaky_relu_float32_backward_is_bitwise_and_non_contiguous_inputs_work():
    x = _inputs((9, 6), torch.float32, seed=4, layout="transposed")
    bias = _inputs((6,), torch.float32, seed=5)
    grad = _inputs((9, 6), torch.float32, seed=6, layout="strided")
    (y, gx, gb), (y_ref, gx_ref, gb_ref) = _bias_both(x, bias, 0.2, math.sqrt(2), 0.7, 1, grad)
    assert y.is_contiguous() and not x.is_contiguous()
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    assert_bitwise_equal(gx, gx_ref)  # from the same y: the same two float32 products
    torch.testing.assert_close(gb, gb_ref)


def test_bias_leaky_relu_without_bias_and_without_graph():
    x = _inputs((5, 4), torch.float32)
    y = F.bias_leaky_relu(x, None, 0.2, impl="triton")
    torch.testing.assert_close(y, F.bias_leaky_relu(x, None, 0.2, impl="torch"))


def test_bias_leaky_relu_clamp_keeps_nan_and_infinities():
    x = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0], device=DEVICE)
    for clamp in (None, 1.0):
        y = F.bias_leaky_relu(x, None, 0.2, 1.0, clamp, impl="triton")
        torch.testing.assert_close(y, F.bias_leaky_relu(x, None, 0.2, 1.0, clamp), equal_nan=True)


# --------------------------------------------------------------------------- BatchNorm backward
def _bn_both(x, weight, bias, training, slope, grad):
    results = []
    for impl in ("triton", "torch"):
        xa = x.detach().clone().requires_grad_()
        wa = None if weight is None else weight.detach().clone().requires_grad_()
        ba = None if bias is None else bias.detach().clone().requires_grad_()
        channels = x.shape[1]
        mean = torch.linspace(-0.5, 0.5, channels, device=DEVICE)
        var = torch.linspace(0.5, 2.0, channels, device=DEVICE)
        y = F.batch_norm_leaky_relu(
            xa, mean, var, wa, ba, training, negative_slope=slope, impl=impl
        )
        y.backward(grad)
        results.append(
            (y.detach(), xa.grad, None if wa is None else wa.grad, None if ba is None else ba.grad)
        )
    return results


@pytest.mark.parametrize(
    ("shape", "affine", "training", "slope", "dtype"),
    [
        ((6, 4, 5, 3), True, True, 0.1, torch.float32),
        ((7, 3), True, True, 0.2, torch.float32),
        ((2, 5, 41, 50), True, True, 0.01, torch.float32),  # 2 splits per channel
        ((6, 4, 5, 3), False, True, 0.1, torch.float32),
        ((6, 4, 5, 3), True, False, 0.1, torch.float32),
        ((8, 4, 7), True, True, 0.2, torch.float16),
        ((8, 4, 7), True, True, 0.2, torch.bfloat16),
    ],
)
def test_batch_norm_leaky_relu_backward_matches_torch_path(shape, affine, training, slope, dtype):
    x = _inputs(shape, dtype, seed=7)
    channels = shape[1]
    weight = torch.linspace(0.5, 1.5, channels, device=DEVICE) if affine else None
    bias = torch.linspace(-0.3, 0.3, channels, device=DEVICE) if affine else None
    grad = _inputs(shape, dtype, seed=8)
    triton_result, torch_result = _bn_both(x, weight, bias, training, slope, grad)
    close = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else TOLERANCE[dtype]
    for ours, theirs in zip(triton_result, torch_result, strict=True):
        if theirs is None:
            assert ours is None
        else:
            scale = max(1.0, float(theirs.abs().max()))
            torch.testing.assert_close(ours, theirs, rtol=close["rtol"], atol=close["atol"] * scale)


def test_batch_norm_leaky_relu_backward_against_float64_composition():
    x = _inputs((5, 3, 4, 6), torch.float32, seed=9, layout="strided")
    weight = torch.tensor([0.7, 1.3, -0.9], device=DEVICE)
    bias = torch.tensor([0.1, -0.2, 0.3], device=DEVICE)
    grad = _inputs((5, 3, 4, 6), torch.float32, seed=10)
    xa, wa, ba = (t.clone().requires_grad_() for t in (x, weight, bias))
    y = F.batch_norm_leaky_relu(xa, None, None, wa, ba, True, negative_slope=0.2, impl="triton")
    y.backward(grad)
    x64, w64, b64 = (t.double().requires_grad_() for t in (x, weight, bias))
    y64 = torch_f.leaky_relu(torch_f.batch_norm(x64, None, None, w64, b64, True), 0.2)
    y64.backward(grad.double())
    for ours, exact in ((xa.grad, x64.grad), (wa.grad, w64.grad), (ba.grad, b64.grad)):
        torch.testing.assert_close(ours.double(), exact, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- the CUDA bench rows
@pytest.mark.slow
def test_kernels_bench_checks_and_times_each_kernel_against_the_torch_path(monkeypatch):
    from leaky.bench.kernels import _triton_rows

    # What `leaky bench kernels --device cuda` adds, run here on the interpreter's device.
    monkeypatch.setattr("leaky.core.kernels.use_triton", lambda impl, tensor: True)
    g = torch.Generator().manual_seed(0)
    x, grad = (torch.randn(4, 256, generator=g).to(DEVICE) for _ in range(2))
    bias = torch.randn(256, generator=g).to(DEVICE)
    rows = _triton_rows(x, grad, bias, 0.01, math.sqrt(2), 1, DEVICE)
    assert [row.candidate for row in rows] == ["triton"] * 3
    assert [row.checked for row in rows] == ["allclose 1e-5", "bitwise", "allclose 1e-4"]
    assert all(len(row.comparison.ratios) == 1 for row in rows)
