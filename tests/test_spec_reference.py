"""The spec table and the float64 reference, checked against torch.nn.functional."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from leaky.core.spec import SPECS, activation_names, get_spec
from leaky.messages.style import ACTIVATION_COLORS

REQUIRED = ("relu", "leaky_relu", "prelu", "rrelu", "sigmoid", "tanh", "elu", "gelu", "silu")
CLIPPED = ("relu6", "hardtanh")
# Common in models found in the wild (MobileNetV3, SE blocks, Mish networks).
FOUND_IN_THE_WILD = ("hardsigmoid", "hardswish", "mish", "softplus")
# Compared with sigmoid and tanh by Glorot & Bengio (2010).
SATURATING_PEERS = ("softsign",)


def test_table_has_every_required_row_once():
    assert activation_names() == REQUIRED + CLIPPED + FOUND_IN_THE_WILD + SATURATING_PEERS


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
    assert [s.name for s in SPECS if s.can_die] == [
        "relu",
        "relu6",
        "hardtanh",
        "hardsigmoid",
        "hardswish",
    ]
    saturating = ["sigmoid", "tanh", "relu6", "hardtanh", "hardsigmoid", "softsign"]
    assert [s.name for s in SPECS if s.saturates] == saturating
    assert [s.name for s in SPECS if s.output_range is not None] == saturating


@pytest.mark.parametrize("spec", [s for s in SPECS if s.saturates], ids=lambda s: s.name)
def test_output_range_holds_the_outputs_and_is_reached_where_the_derivative_vanishes(spec):
    low, high = spec.output_range()
    x = np.linspace(-40, 40, 2001)
    y = spec.forward(x)
    assert low <= y.min() and y.max() <= high
    low_end, high_end = spec.saturating_ends
    # At a saturating end the output reaches the bound and the derivative vanishes: by
    # |x| = 40 for the exponential ones, only far out for softsign's 1 / x^2 tails.
    far = 1e10 if spec.name == "softsign" else 40.0
    if low_end:
        assert spec.forward(np.array([-far]))[0] == pytest.approx(low, abs=1e-9)
        assert spec.derivative(np.array([-far]))[0] == pytest.approx(0.0, abs=1e-9)
    if high_end:
        assert spec.forward(np.array([far]))[0] == pytest.approx(high, abs=1e-9)
        assert spec.derivative(np.array([far]))[0] == pytest.approx(0.0, abs=1e-9)


def test_hardtanh_output_range_follows_its_options():
    assert get_spec("hardtanh").output_range(min_val=-2.0, max_val=3.0) == (-2.0, 3.0)


@pytest.mark.parametrize("name", FOUND_IN_THE_WILD)
def test_new_rows_gain_is_the_second_moment_gain(name):
    from leaky.core.reference import second_moment_gain

    spec = get_spec(name)
    assert spec.gain() == pytest.approx(second_moment_gain(spec.forward), rel=1e-12)
    assert 1.0 < spec.gain() < 3.0


def test_defaults_of_the_new_rows_are_pytorchs():
    assert get_spec("softplus").defaults["beta"] == torch.nn.Softplus().beta
    assert get_spec("softplus").defaults["threshold"] == torch.nn.Softplus().threshold


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
    "hardsigmoid": torch.nn.functional.hardsigmoid,
    "hardswish": torch.nn.functional.hardswish,
    "mish": torch.nn.functional.mish,
    "softplus": torch.nn.functional.softplus,
    "softsign": torch.nn.functional.softsign,
}


@pytest.mark.parametrize("name", FOUND_IN_THE_WILD)
def test_new_rows_match_torch_at_their_kinks_and_thresholds(name):
    # The points where a piece ends (-3 and 3; softplus's threshold 20), and tails.
    values = [-800.0, -30.0, -3.0, -2.9999999, 0.0, 2.9999999, 3.0, 20.0, 20.0000001, 800.0]
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    y = TORCH_F[name](x)
    y.sum().backward()
    spec = get_spec(name)
    np.testing.assert_allclose(spec.forward(np.array(values)), y.detach().numpy(), rtol=1e-12)
    # rtol 1e-7: PyTorch's float64 Hardsigmoid backward multiplies by a float32 1/6.
    np.testing.assert_allclose(spec.derivative(np.array(values)), x.grad.numpy(), rtol=1e-7)


def test_softplus_options_match_torch():
    x = np.linspace(-5, 5, 101)
    expected = torch.nn.functional.softplus(torch.from_numpy(x), beta=2.0, threshold=3.0)
    np.testing.assert_allclose(
        get_spec("softplus").forward(x, beta=2.0, threshold=3.0), expected.numpy(), rtol=1e-12
    )


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
    x = np.linspace(-7, 7, 400) + 1e-3  # stay off the kinks at 0, +-1, +-3 and 6
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


# Options other than the defaults, so that each row's functions are seen to read them.
OTHER_OPTIONS = {
    "leaky_relu": {"negative_slope": 0.2},
    "prelu": {"init": 0.1},
    "rrelu": {"lower": 0.05, "upper": 0.5},
    "elu": {"alpha": 0.5},
    "hardtanh": {"min_val": -2.0, "max_val": 3.0},
    "softplus": {"beta": 2.0, "threshold": 3.0},
}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("options", ["defaults", "others"])
def test_torch_derivative_matches_the_reference_derivative(spec, options):
    params = OTHER_OPTIONS.get(spec.name, {}) if options == "others" else {}
    # 0, the kinks (+-1, +-2, +-3, 6), softplus's thresholds, tails, and a grid between.
    kinks = [0.0, -1.0, 1.0, -2.0, 2.0, -3.0, 3.0, 1.5, 6.0, 20.0, -30.0, 30.0]
    x = np.concatenate([kinks, np.linspace(-8, 8, 321)])
    y = spec.forward(x, **params)
    ours = spec.local_derivative(torch.from_numpy(x), torch.from_numpy(y), **params)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), spec.derivative(x, **params), rtol=1e-9, atol=1e-12)


def test_prelu_torch_derivative_reads_a_learned_weight():
    x = torch.tensor([[-1.0, -1.0], [2.0, -3.0]], dtype=torch.float64)
    weight = torch.tensor([[0.5, 0.0]], dtype=torch.float64)  # one slope per channel
    derivative = get_spec("prelu").local_derivative(x, x, weight=weight)
    assert derivative.tolist() == [[0.5, 0.0], [1.0, 0.0]]
