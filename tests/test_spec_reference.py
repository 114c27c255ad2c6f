"""The spec table and the float64 reference, checked against torch.nn.functional."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from leaky.report.style import ACTIVATION_COLORS
from leaky.spec import SPECS, activation_names, get_spec

REQUIRED = ("relu", "leaky_relu", "prelu", "rrelu", "sigmoid", "tanh", "elu", "gelu", "silu")
CLIPPED = ("relu6", "hardtanh")


def test_table_has_every_required_row_once():
    assert activation_names() == REQUIRED + CLIPPED


def test_names_and_aliases_are_unique():
    names = [alias.lower() for spec in SPECS for alias in spec.names]
    assert len(names) == len(set(names))


def test_lookup_is_case_insensitive_and_errors_list_names():
    assert get_spec("LEAKY_RELU") is get_spec("lrelu")
    with pytest.raises(ValueError, match=", ".join(REQUIRED)):
        get_spec("softplus2")
    with pytest.raises(TypeError):
        get_spec(None)


def test_rows_are_frozen():
    with pytest.raises(AttributeError):
        get_spec("relu").can_die = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        get_spec("leaky_relu").defaults["negative_slope"] = 0.3  # type: ignore[index]


def test_defaults_are_pytorchs():
    assert get_spec("leaky_relu").defaults["negative_slope"] == torch.nn.LeakyReLU().negative_slope
    assert get_spec("prelu").defaults["init"] == torch.nn.PReLU().init
    assert get_spec("rrelu").defaults["lower"] == torch.nn.RReLU().lower
    assert get_spec("rrelu").defaults["upper"] == torch.nn.RReLU().upper
    assert get_spec("elu").defaults["alpha"] == torch.nn.ELU().alpha


def test_which_rows_can_die_and_which_saturate():
    assert [s.name for s in SPECS if s.can_die] == ["relu", "relu6", "hardtanh"]
    assert [s.name for s in SPECS if s.saturates] == ["sigmoid", "tanh", "relu6", "hardtanh"]


def test_every_row_has_a_colour():
    assert set(ACTIVATION_COLORS) == set(activation_names())
    assert len(set(ACTIVATION_COLORS.values())) == len(ACTIVATION_COLORS)


# The same functions through torch.nn.functional, the second oracle.
TORCH_F = {
    "relu": lambda x: torch.relu(x),
    "leaky_relu": lambda x: torch.nn.functional.leaky_relu(x, 0.01),
    "prelu": lambda x: torch.nn.functional.prelu(x, torch.tensor([0.25], dtype=x.dtype)),
    "rrelu": lambda x: torch.nn.functional.rrelu(x, 1 / 8, 1 / 3, training=False),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
    "relu6": torch.nn.functional.relu6,
    "hardtanh": torch.nn.functional.hardtanh,
}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@given(values=st.lists(st.floats(-30, 30, allow_subnormal=True), min_size=1, max_size=50))
def test_reference_forward_and_derivative_match_torch(spec, values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    y = TORCH_F[spec.name](x)
    y.sum().backward()
    np.testing.assert_allclose(
        spec.forward(np.array(values)), y.detach().numpy(), rtol=1e-12, atol=1e-300
    )
    np.testing.assert_allclose(
        spec.derivative(np.array(values)), x.grad.numpy(), rtol=1e-6, atol=1e-15
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_reference_derivative_is_the_slope_of_the_forward(spec):
    x = np.linspace(-7, 7, 400) + 1e-3  # stay off the kinks at 0, +-1 and 6
    h = 1e-6
    numeric = (spec.forward(x + h) - spec.forward(x - h)) / (2 * h)
    np.testing.assert_allclose(spec.derivative(x), numeric, rtol=1e-6, atol=1e-8)


def test_kink_conventions_follow_pytorch():
    assert get_spec("relu").derivative(np.array([0.0])).tolist() == [0.0]
    assert get_spec("leaky_relu").derivative(np.array([0.0]), negative_slope=0.2).tolist() == [0.2]


def test_negative_slope_of_each_rectifier():
    assert get_spec("relu").negative_slope() == 0.0
    assert get_spec("leaky_relu").negative_slope(negative_slope=0.3) == 0.3
    assert get_spec("prelu").negative_slope() == 0.25
    assert get_spec("rrelu").negative_slope() == pytest.approx((1 / 8 + 1 / 3) / 2)
    assert get_spec("tanh").negative_slope() is None
