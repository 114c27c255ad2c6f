"""The fused bias + Leaky ReLU + gain (+ clamp) against the reference and eager PyTorch."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from hypothesis import given
from hypothesis import strategies as st

from leaky import functional as F
from leaky import reference
from leaky.core.spec import leaky_gain


def _eager(x, bias, slope, gain, clamp, dim):
    shape = [1] * x.dim()
    shape[dim] = -1
    z = x if bias is None else x + bias.view(shape)
    y = torch_f.leaky_relu(z, slope) * gain
    return y if clamp is None else y.clamp(-clamp, clamp)


CASES = [
    # shape, dim, bias?, slope, gain, clamp
    ((8, 5), 1, True, 0.2, math.sqrt(2), None),
    ((8, 5), 1, False, 0.2, math.sqrt(2), None),
    ((8, 5), 1, True, 0.0, 1.0, None),
    ((8, 5), -1, True, 0.1, 2.5, 0.8),
    ((2, 3, 4, 4), 1, True, 0.2, "he", 1.0),
    ((2, 3, 4, 6), 3, True, 0.2, 1.0, None),
    ((4, 3, 7), 2, True, 0.05, 0.5, None),
    ((3,), 0, True, 0.2, math.sqrt(2), None),
    ((0, 4), 1, True, 0.2, math.sqrt(2), None),
]


@pytest.mark.parametrize(("shape", "dim", "with_bias", "slope", "gain", "clamp"), CASES)
def test_matches_float64_reference(shape, dim, with_bias, slope, gain, clamp):
    x = torch.randn(shape, dtype=torch.float64)
    bias = torch.randn(shape[dim], dtype=torch.float64) if with_bias else None
    y = F.bias_leaky_relu(x, bias, slope, gain, clamp, dim)
    g = leaky_gain(slope) if gain == "he" else gain
    expected = reference.bias_leaky_relu(
        x.numpy(), None if bias is None else bias.numpy(), slope, g, clamp, dim
    )
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("shape", "dim", "with_bias", "slope", "gain", "clamp"), CASES)
def test_matches_eager_composition_forward_and_backward(shape, dim, with_bias, slope, gain, clamp):
    g = leaky_gain(slope) if gain == "he" else gain
    x = torch.randn(shape)
    bias = torch.randn(shape[dim]) if with_bias else None
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ba = None if bias is None else bias.clone().requires_grad_()
    bb = None if bias is None else bias.clone().requires_grad_()
    y = F.bias_leaky_relu(xa, ba, slope, gain, clamp, dim)
    y_ref = _eager(xb, bb, slope, g, clamp, dim)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    grad = torch.randn(shape)
    if y.numel():
        y.backward(grad)
        y_ref.backward(grad)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-6)
        if bias is not None:
            torch.testing.assert_close(ba.grad, bb.grad, rtol=1e-5, atol=1e-5)


@given(
    slope=st.floats(0.0, 1.0),
    gain=st.floats(0.1, 4.0),
    clamp=st.one_of(st.none(), st.floats(0.5, 5.0)),
)
def test_gradient_is_exact_for_any_slope_gain_clamp(slope, gain, clamp):
    # gain * LeakyReLU' * [not clamped], from the float64 reference of the forward.
    x = torch.randn(64, 4, dtype=torch.float64)
    bias = torch.randn(4, dtype=torch.float64)
    xa = x.clone().requires_grad_()
    y = F.bias_leaky_relu(xa, bias, slope, gain, clamp)
    y.sum().backward()
    z = (x + bias).numpy()
    expected = gain * reference.leaky_relu_derivative(z, slope)
    if clamp is not None:
        expected = np.where(np.abs(gain * reference.leaky_relu(z, slope)) < clamp, expected, 0.0)
    np.testing.assert_allclose(xa.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("clamp", [None, 1.5])
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck_and_gradgradcheck(clamp, with_bias):
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = (x, bias) if with_bias else (x,)

    def fn(t, b=None):
        return F.bias_leaky_relu(t, b, 0.2, 1.3, clamp)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_bias_gradient_only_when_asked():
    x = torch.randn(4, 3)
    bias = torch.randn(3, requires_grad=True)
    F.bias_leaky_relu(x, bias).sum().backward()
    assert bias.grad is not None and bias.grad.shape == (3,)


def test_channels_last_keeps_its_layout():
    x = torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last)
    y = F.bias_leaky_relu(x, torch.randn(3))
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_gain_he_is_the_spec_gain():
    x = torch.randn(10, 2)
    torch.testing.assert_close(
        F.bias_leaky_relu(x, None, 0.2, "he"), F.bias_leaky_relu(x, None, 0.2, 1.3867504905630728)
    )


def test_bias_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"shape \(4,\).*input.shape\[1\].*\(2, 4\).*\(3,\)"):
        F.bias_leaky_relu(torch.zeros(2, 4), torch.zeros(3))


def test_bias_dtype_mismatch_is_type_error():
    with pytest.raises(TypeError, match="bias.to"):
        F.bias_leaky_relu(torch.zeros(2, 4), torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"negative_slope": -0.1}, "negative_slope` >= 0"),
        ({"negative_slope": float("nan")}, "finite"),
        ({"gain": 0.0}, "gain` to be > 0"),
        ({"gain": "xavier"}, "gain"),
        ({"clamp": -1.0}, "clamp` to be > 0"),
        ({"dim": 5}, "dim` in"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        F.bias_leaky_relu(torch.zeros(2, 4), torch.zeros(4), **kwargs)


def test_integer_input_is_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        F.bias_leaky_relu(torch.zeros(2, 4, dtype=torch.int64))
