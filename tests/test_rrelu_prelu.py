"""rrelu and prelu against PyTorch, the reference, and gradcheck."""

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f

from leaky import functional as F
from leaky import reference

from _helpers import FLOAT_DTYPES, assert_bitwise_equal, edge_tensor


# --- rrelu --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_rrelu_eval_is_bitwise_pytorchs(dtype):
    x = torch.cat([edge_tensor(dtype), torch.randn(100).to(dtype)])
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = F.rrelu(a, 0.1, 0.3, training=False)
    y_ref = torch_f.rrelu(b, 0.1, 0.3, training=False)
    grad = torch.randn(x.shape).to(dtype)
    y.backward(grad)
    y_ref.backward(grad)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(a.grad, b.grad)


def test_rrelu_eval_matches_reference():
    x = torch.randn(200, dtype=torch.float64)
    np.testing.assert_allclose(F.rrelu(x, 0.1, 0.3).numpy(), reference.rrelu(x.numpy(), 0.1, 0.3))


def test_rrelu_training_slopes_in_range_and_gradient_uses_the_same_slopes():
    x = torch.randn(10_000, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    y = F.rrelu(x, 0.1, 0.3, training=True, generator=g)
    y.backward(torch.ones_like(y))
    negative = x.detach() <= 0
    slopes = x.grad[negative]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert slopes.std() > 0.03  # really random, not the mean slope
    assert torch.equal(x.grad[~negative], torch.ones(int((~negative).sum())))
    # Backward regenerated exactly the slopes forward used.
    assert_bitwise_equal(y.detach(), x.detach() * x.grad)


def test_rrelu_training_matches_reference_with_the_drawn_slopes():
    x = torch.randn(500, dtype=torch.float64, requires_grad=True)
    y = F.rrelu(x, 0.2, 0.4, training=True, generator=torch.Generator().manual_seed(3))
    y.sum().backward()
    slopes = x.grad.numpy()
    expected = reference.rrelu(x.detach().numpy(), 0.2, 0.4, slopes=slopes)
    np.testing.assert_allclose(y.detach().numpy(), expected)
    np.testing.assert_array_equal(
        slopes, reference.rrelu_derivative(x.detach().numpy(), 0.2, 0.4, slopes=slopes)
    )


def test_rrelu_training_repeats_with_the_global_seed():
    x = torch.randn(100)
    torch.manual_seed(7)
    first = F.rrelu(x, training=True)
    torch.manual_seed(7)
    second = F.rrelu(x, training=True)
    assert torch.equal(first, second)
    assert not torch.equal(first, F.rrelu(x, training=True))


def test_rrelu_training_distribution_matches_pytorchs():
    x = -torch.ones(200_000)
    ours = -F.rrelu(x, 0.1, 0.3, training=True)
    theirs = -torch_f.rrelu(x, 0.1, 0.3, training=True)
    assert abs(ours.mean() - theirs.mean()) < 2e-3
    assert abs(ours.std() - theirs.std()) < 2e-3


@pytest.mark.parametrize("lower", [0.1, -0.2])
def test_rrelu_training_gradcheck(lower):
    x = torch.randn(5, 6, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()

    def fn(t):
        return F.rrelu(t, lower, 0.3, training=True, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_rrelu_eval_gradcheck():
    x = torch.randn(5, 6, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: F.rrelu(t, 0.1, 0.3), (x,))
    assert torch.autograd.gradgradcheck(lambda t: F.rrelu(t, 0.1, 0.3), (x,))


def test_rrelu_inplace_training():
    x = torch.randn(64, requires_grad=True)
    mid = x * 1.0
    y = F.rrelu(mid, 0.1, 0.3, training=True, inplace=True, generator=torch.Generator())
    assert y is mid
    y.sum().backward()
    assert_bitwise_equal(y.detach(), x.detach() * x.grad)


def test_rrelu_lower_above_upper_is_value_error():
    with pytest.raises(ValueError, match="lower.*<= `upper`.*lower=0.5, upper=0.1"):
        F.rrelu(torch.zeros(3), 0.5, 0.1)


def test_rrelu_integer_input_is_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        F.rrelu(torch.zeros(3, dtype=torch.long), training=True)


# --- prelu --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "num_weights"),
    [((4, 3), 1), ((4, 3), 3), ((2, 3, 5), 3), ((2, 3, 4, 4), 3), ((7,), 1), ((0, 3), 3)],
)
def test_prelu_is_bitwise_pytorchs(dtype, shape, num_weights):
    x = torch.randn(shape).to(dtype)
    w = (torch.rand(num_weights) * 0.5).to(dtype)
    xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
    xb, wb = x.clone().requires_grad_(), w.clone().requires_grad_()
    y, y_ref = F.prelu(xa, wa), torch_f.prelu(xb, wb)
    grad = torch.randn(shape).to(dtype)
    y.backward(grad)
    y_ref.backward(grad)
    assert_bitwise_equal(y, y_ref)
    assert_bitwise_equal(xa.grad, xb.grad)
    assert_bitwise_equal(wa.grad, wb.grad)


def test_prelu_matches_reference():
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    y = F.prelu(x, w)
    w_b = w.detach().numpy().reshape(1, 3, 1)
    np.testing.assert_allclose(y.detach().numpy(), reference.prelu(x.detach().numpy(), w_b))
    y.sum().backward()
    d_x, d_w = reference.prelu_derivative(x.detach().numpy(), w_b)
    np.testing.assert_allclose(x.grad.numpy(), d_x)
    np.testing.assert_allclose(w.grad.numpy(), d_w.sum(axis=(0, 2)))


def test_prelu_gradcheck():
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()
    w = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(F.prelu, (x, w))
    assert torch.autograd.gradgradcheck(F.prelu, (x, w))


def test_prelu_wrong_weight_count_is_value_error():
    with pytest.raises(ValueError, match=r"1 element or one per channel \(input.shape\[1\] = 4\)"):
        F.prelu(torch.zeros(2, 4), torch.zeros(3))


def test_prelu_integer_input_is_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        F.prelu(torch.zeros(2, 4, dtype=torch.int32), torch.zeros(1))


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        lambda: torch.randn(7, 5).t(),
        lambda: torch.randn(6, 10)[:, ::2],
    ],
    ids=["channels_last", "transposed", "strided"],
)
def test_rrelu_training_gradient_matches_its_slopes_for_any_layout(make):
    x = make().requires_grad_()
    y = F.rrelu(x, 0.1, 0.3, training=True, generator=torch.Generator().manual_seed(0))
    y.sum().backward()  # sum's gradient is an expanded (stride-0) tensor
    assert_bitwise_equal(y.detach(), x.detach() * x.grad)
