"""leaky.nn modules: drop-in for torch.nn (names, defaults, repr, state_dict), and the factory."""

import math

import pytest
import torch

import leaky
from leaky.core.spec import SPECS
from leaky.nn import BiasLeakyReLU, LeakyReLU, PReLU, RReLU, get_activation

from _helpers import assert_bitwise_equal


def test_leaky_relu_module_matches_torch_module():
    ours, theirs = LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)
    assert isinstance(ours, torch.nn.LeakyReLU)
    assert repr(ours) == repr(theirs) == "LeakyReLU(negative_slope=0.2)"
    assert repr(LeakyReLU()) == repr(torch.nn.LeakyReLU())
    assert repr(LeakyReLU(0.1, inplace=True)) == repr(torch.nn.LeakyReLU(0.1, inplace=True))
    assert repr(LeakyReLU(save="mask")) == "LeakyReLU(negative_slope=0.01, save='mask')"
    x = torch.randn(8, 4)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(a), theirs(b)
    ya.sum().backward()
    yb.sum().backward()
    assert_bitwise_equal(ya, yb)
    assert_bitwise_equal(a.grad, b.grad)


def test_prelu_module_state_dict_round_trips_with_torch():
    ours = PReLU(3, init=0.1, dtype=torch.float64)
    assert ours.weight.dtype == torch.float64
    assert repr(ours) == repr(torch.nn.PReLU(3)) == "PReLU(num_parameters=3)"
    theirs = torch.nn.PReLU(3, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    assert torch.equal(theirs.weight, ours.weight)
    with torch.no_grad():
        theirs.weight.fill_(0.3)
    ours.load_state_dict(theirs.state_dict())
    assert torch.equal(ours.weight, theirs.weight)
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    assert_bitwise_equal(ours(x), theirs(x))


def test_prelu_module_device_keyword():
    assert PReLU(2, device="cpu").weight.device.type == "cpu"
    assert PReLU(2, device="meta").weight.is_meta


def test_prelu_wrong_channel_count_names_the_fix():
    with pytest.raises(ValueError, match="num_parameters=4"):
        PReLU(3)(torch.zeros(2, 4))


@pytest.mark.parametrize("n", [0, -1])
def test_prelu_bad_num_parameters(n):
    with pytest.raises(ValueError, match="num_parameters"):
        PReLU(n)


def test_rrelu_module_defaults_and_modes():
    ours = RReLU()
    assert isinstance(ours, torch.nn.RReLU)
    assert (ours.lower, ours.upper) == (torch.nn.RReLU().lower, torch.nn.RReLU().upper)
    assert repr(ours) == repr(torch.nn.RReLU())
    x = -torch.ones(1000)
    assert torch.equal(ours.eval()(x), torch.nn.RReLU().eval()(x))
    y = RReLU(generator=torch.Generator().manual_seed(0)).train()(x)
    assert y.unique().numel() > 100


def test_bias_leaky_relu_module():
    m = BiasLeakyReLU(4, clamp=2.0, dtype=torch.float64)
    assert list(m.state_dict()) == ["bias"]
    assert m.bias.dtype == torch.float64 and torch.equal(
        m.bias, torch.zeros(4, dtype=torch.float64)
    )
    assert repr(m) == f"BiasLeakyReLU(4, negative_slope=0.2, gain={math.sqrt(2)}, clamp=2.0)"
    assert repr(BiasLeakyReLU(4, bias=False)).endswith("bias=False)")
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    m(x).sum().backward()
    assert m.bias.grad.shape == (4,)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: LeakyReLU(float("nan")), ValueError, "finite"),
        (lambda: LeakyReLU(-0.1, inplace=True), ValueError, "in-place"),
        (lambda: LeakyReLU(-0.1, save="output"), ValueError, "save='mask'"),
        (lambda: LeakyReLU(save="nothing"), ValueError, "save"),
        (lambda: RReLU(0.4, 0.1), ValueError, "lower"),
        (lambda: RReLU(-0.1, 0.2, inplace=True), ValueError, "lower` >= 0 for in-place"),
        (lambda: BiasLeakyReLU(0), ValueError, "num_channels"),
        (lambda: BiasLeakyReLU(3, negative_slope=-1.0), ValueError, "negative_slope"),
        (lambda: BiasLeakyReLU(3, gain=-1.0), ValueError, "gain"),
        (lambda: PReLU(2, init=float("inf")), ValueError, "init"),
    ],
)
def test_errors_at_construction(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_get_activation_builds_every_row(spec):
    module = get_activation(spec.name)
    assert isinstance(module, spec.module_class())
    assert isinstance(module, spec.torch_modules)
    for alias in spec.aliases:
        assert type(get_activation(alias)) is type(module)
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    torch.testing.assert_close(
        module.double().eval()(x), torch.from_numpy(spec.forward(x.numpy())), rtol=1e-7, atol=1e-7
    )


def test_get_activation_passes_options():
    assert get_activation("leaky_relu", negative_slope=0.2).negative_slope == 0.2
    assert get_activation("prelu", num_parameters=16).weight.shape == (16,)
    assert get_activation(torch.nn.ReLU, inplace=True).inplace
    module = torch.nn.GELU()
    assert get_activation(module) is module
    wrapped = get_activation(torch.tanh)
    assert torch.equal(wrapped(torch.ones(2)), torch.tanh(torch.ones(2)))


def test_get_activation_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="relu, leaky_relu, prelu, rrelu, sigmoid, tanh"):
        get_activation("leakyrelu2")


def test_get_activation_unknown_option_lists_options():
    with pytest.raises(TypeError, match="slope.*options are: negative_slope, inplace, save"):
        get_activation("leaky_relu", slope=0.2)


def test_get_activation_rejects_other_types():
    with pytest.raises(TypeError, match="activation name"):
        get_activation(3)


def test_modules_in_a_model_train():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16, bias=False),
        BiasLeakyReLU(16),
        torch.nn.Linear(16, 16),
        LeakyReLU(0.1),
        torch.nn.Linear(16, 16),
        PReLU(16),
        torch.nn.Linear(16, 16),
        RReLU(),
        torch.nn.Linear(16, 1),
    )
    x = torch.randn(128, 4)
    target = (x[:, :1] * x[:, 1:2]).sign()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_top_level_exports():
    assert leaky.get_activation is get_activation
    assert leaky.get_spec("lrelu").name == "leaky_relu"
    assert leaky.__version__
