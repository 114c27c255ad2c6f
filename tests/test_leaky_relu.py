"""leaky.core.functional.leaky_relu against torch.nn.functional (bitwise) and the reference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from hypothesis import given
from hypothesis import strategies as st

from leaky import functional as F
from leaky import reference

from _helpers import FLOAT_DTYPES, assert_bitwise_equal, edge_tensor, float_tensors, slopes

SAVES = ("output", "mask", "input", "auto")


def _both(x: torch.Tensor, slope: float, save: str, grad: torch.Tensor | None = None):
    """(ours, torch's) outputs and input gradients for the same upstream gradient."""
    x_ours = x.detach().clone().requires_grad_()
    x_torch = x.detach().clone().requires_grad_()
    y_ours = F.leaky_relu(x_ours, slope, save=save)
    y_torch = torch_f.leaky_relu(x_torch, slope)
    if grad is None:
        grad = torch.linspace(-2, 3, y_ours.numel(), dtype=torch.float64).to(x.dtype)
        grad = grad.reshape(y_ours.shape)
    if y_ours.numel():
        y_ours.backward(grad)
        y_torch.backward(grad)
    else:
        x_ours.grad = torch.zeros_like(x_ours)
        x_torch.grad = torch.zeros_like(x_torch)
    return y_ours, y_torch, x_ours.grad, x_torch.grad


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("save", SAVES)
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 1.0, 3.0])
def test_edge_values_bitwise(dtype, save, slope):
    x = edge_tensor(dtype)
    y, y_ref, g, g_ref = _both(x, slope, save)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(g, g_ref)


def test_gradient_at_exactly_zero_is_the_slope():
    for save in SAVES:
        x = torch.tensor([0.0, -0.0], requires_grad=True)
        F.leaky_relu(x, 0.2, save=save).sum().backward()
        assert x.grad.tolist() == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("save", SAVES)
@given(data=st.data(), slope=slopes)
def test_random_and_edge_inputs_bitwise(dtype, save, data, slope):
    x = data.draw(float_tensors(dtype))
    y, y_ref, g, g_ref = _both(x, slope, save)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(g, g_ref)


@pytest.mark.parametrize("save", ["mask", "input", "auto"])
@given(data=st.data(), slope=st.floats(min_value=-5.0, max_value=-1e-6))
def test_negative_slopes_bitwise(save, data, slope):
    x = data.draw(float_tensors(torch.float32))
    y, y_ref, g, g_ref = _both(x, slope, save)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(g, g_ref)


@given(data=st.data(), slope=slopes)
def test_against_float64_reference(data, slope):
    x = data.draw(float_tensors(torch.float64))
    x = torch.nan_to_num(x, nan=0.5, posinf=1e300, neginf=-1e300).requires_grad_()
    y = F.leaky_relu(x, slope)
    np.testing.assert_allclose(y.detach().numpy(), reference.leaky_relu(x.detach().numpy(), slope))
    if y.numel():
        y.sum().backward()
        np.testing.assert_array_equal(
            x.grad.numpy(), reference.leaky_relu_derivative(x.detach().numpy(), slope)
        )


@pytest.mark.parametrize("save", SAVES)
@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(6, 10)[:, ::3],  # strided
        lambda: torch.randn(7, 5).t(),  # transposed
        lambda: torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        lambda: torch.randn(4, 1).expand(4, 6),  # stride 0
        lambda: torch.randn(0, 3),  # empty
        lambda: torch.randn(()),  # scalar
    ],
    ids=["strided", "transposed", "channels_last", "expanded", "empty", "scalar"],
)
def test_layouts(save, make):
    x = make()
    y, y_ref, g, g_ref = _both(x, 0.1, save, grad=torch.randn(x.shape))
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(g, g_ref)
    assert y.stride() == y_ref.stride()


@pytest.mark.parametrize(
    ("save", "slope"),
    [
        ("output", 0.0),
        ("output", 0.1),
        ("mask", 0.0),
        ("mask", 0.1),
        ("mask", -0.3),
        ("input", 0.1),
        ("input", -0.3),
    ],
)
def test_gradcheck_and_gradgradcheck(save, slope):
    x = torch.randn(4, 7, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()  # keep away from the kink at 0

    def fn(t):
        return F.leaky_relu(t, slope, save=save)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_double_backward_matches_torch():
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    for save in ("output", "mask", "input"):
        (g1,) = torch.autograd.grad(
            F.leaky_relu(x, 0.2, save=save).pow(2).sum(), x, create_graph=True
        )
        (h1,) = torch.autograd.grad(g1.sum(), x)
        (g2,) = torch.autograd.grad(torch_f.leaky_relu(x, 0.2).pow(2).sum(), x, create_graph=True)
        (h2,) = torch.autograd.grad(g2.sum(), x)
        assert_bitwise_equal(g1, g2)
        assert_bitwise_equal(h1, h2)


@pytest.mark.parametrize("save", ["auto", "output", "mask"])
def test_inplace_matches_torch(save):
    base = torch.randn(5, 6)
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    a_mid, b_mid = a * 2, b * 2  # in place on a non-leaf
    y = F.leaky_relu(a_mid, 0.1, inplace=True, save=save)
    y_ref = torch_f.leaky_relu(b_mid, 0.1, inplace=True)
    assert y is a_mid
    grad = torch.randn(5, 6)
    y.backward(grad)
    y_ref.backward(grad)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(a.grad, b.grad)


def test_inplace_on_leaf_that_requires_grad_raises_pytorchs_error():
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.leaky_relu(x, 0.1, inplace=True)


def test_inplace_without_grad_modifies_input():
    x = torch.tensor([-1.0, 2.0])
    y = F.leaky_relu(x, 0.5, inplace=True)
    assert y is x
    assert x.tolist() == [-0.5, 2.0]


def test_modifying_saved_output_in_place_is_caught():
    x = torch.randn(4, requires_grad=True)
    y = F.leaky_relu(x, 0.1)
    y.mul_(2)  # the output is what backward needs
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_no_graph_when_nothing_requires_grad():
    y = F.leaky_relu(torch.randn(3), 0.1)
    assert y.grad_fn is None
    with torch.no_grad():
        assert F.leaky_relu(torch.randn(3, requires_grad=True)).grad_fn is None


@given(data=st.data())
def test_mask_pack_roundtrip(data):
    x = data.draw(float_tensors(torch.float32, max_dims=3))
    packed = F.pack_positive_mask(x)
    assert packed.dtype == torch.uint8
    assert packed.numel() == -(-x.numel() // 8)
    assert torch.equal(F.unpack_positive_mask(packed, x.shape), x > 0)


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_and_bool_tensors_are_type_errors(dtype):
    with pytest.raises(TypeError, match="floating-point tensor.*float()"):
        F.leaky_relu(torch.zeros(3, dtype=dtype))


def test_non_tensor_is_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        F.leaky_relu([1.0, 2.0])


@pytest.mark.parametrize("slope", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_slope_is_value_error(slope):
    with pytest.raises(ValueError, match="finite number"):
        F.leaky_relu(torch.zeros(3), slope)


@pytest.mark.parametrize("slope", [True, "0.1", None])
def test_non_number_slope_is_type_error(slope):
    with pytest.raises(TypeError, match="negative_slope"):
        F.leaky_relu(torch.zeros(3), slope)


def test_negative_slope_in_place_is_value_error():
    with pytest.raises(ValueError, match=r">= 0 for in-place use, but got -0.1"):
        F.leaky_relu(torch.zeros(3), -0.1, inplace=True)


def test_save_output_with_negative_slope_is_value_error():
    with pytest.raises(ValueError, match="save='mask' or save='input'"):
        F.leaky_relu(torch.zeros(3, requires_grad=True), -0.1, save="output")


def test_unknown_save_mode_is_value_error():
    with pytest.raises(ValueError, match="auto, output, mask, input"):
        F.leaky_relu(torch.zeros(3), save="bits")


def test_save_input_in_place_is_value_error():
    with pytest.raises(ValueError, match="inplace"):
        F.leaky_relu(torch.zeros(3), 0.1, inplace=True, save="input")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(4, 16), (3, 5), (2, 3, 4, 8)])
def test_mask_mode_gradients_bitwise_equal_to_output_mode(dtype, shape):
    # (4, 16): contiguous whole bytes, where the forward packs from the output's own buffer
    # and the backward writes the gradient over its unpacked mask; (3, 5): a padded last byte.
    x = torch.randn(shape, dtype=torch.float64).to(dtype)
    grad = torch.randn(shape, dtype=torch.float64).to(dtype)
    results = []
    for save in ("mask", "output"):
        leaf = x.clone().requires_grad_()
        y = F.leaky_relu(leaf, 0.2, save=save)
        y.backward(grad)
        results.append((y.detach(), leaf.grad))
    assert_bitwise_equal(results[0][0], results[1][0])
    assert_bitwise_equal(results[0][1], results[1][1])


def test_mask_layout_is_eight_planes_of_bits():
    x = torch.tensor([1.0] * 3 + [-1.0] * 13)  # 16 elements: 2 bytes, plane k = x[2k : 2k + 2]
    assert F.pack_positive_mask(x).tolist() == [0b11, 0b01]
    assert F.packed_mask_bytes(17) == 3
