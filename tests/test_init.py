"""leaky.core.init against torch.nn.init, and the He et al. (2015) variance argument."""

import math

import pytest
import torch

from leaky import init
from leaky.core.reference import leaky_relu, second_moment_gain


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.0),
        ("leaky_relu", 0.2),
        ("leaky_relu", 1.0),
        ("sigmoid", None),
        ("tanh", None),
        ("linear", None),
        ("conv2d", None),
        ("selu", None),
    ],
)
def test_calculate_gain_agrees_with_torch(name, param):
    assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


def test_gains_pytorch_does_not_know():
    assert init.calculate_gain("prelu") == math.sqrt(2 / (1 + 0.25**2))
    assert init.calculate_gain("prelu", 0.1) == math.sqrt(2 / (1 + 0.1**2))
    # RReLU: E[a^2] for a ~ U(lower, upper), checked against a Monte Carlo estimate.
    a = torch.empty(1_000_000, dtype=torch.float64).uniform_(1 / 8, 1 / 3)
    assert init.calculate_gain("rrelu") == pytest.approx(
        math.sqrt(2 / (1 + (a * a).mean().item())), rel=1e-3
    )
    for name in ("elu", "gelu", "silu"):
        gain = init.calculate_gain(name)
        z = torch.randn(2_000_000, dtype=torch.float64)
        f = {"elu": torch.nn.functional.elu, "gelu": torch.nn.functional.gelu}.get(
            name, torch.nn.functional.silu
        )
        assert gain * gain * f(z).pow(2).mean().item() == pytest.approx(1.0, rel=1e-2)


def test_second_moment_gain_gives_the_kaiming_formula():
    for a in (0.0, 0.01, 0.2, 0.5):
        gain = second_moment_gain(lambda x, a=a: leaky_relu(x, a))
        assert gain == pytest.approx(math.sqrt(2 / (1 + a * a)), rel=1e-12)


def test_unknown_nonlinearity_lists_our_names():
    with pytest.raises(ValueError, match="Valid names: relu, leaky_relu"):
        init.calculate_gain("swishy")


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("slope", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(64, 32), (16, 8, 3, 3)])
def test_kaiming_is_bitwise_torchs_with_the_same_generator(mode, slope, shape):
    ours = init.kaiming_normal_(
        torch.empty(shape),
        "leaky_relu",
        mode=mode,
        negative_slope=slope,
        generator=torch.Generator().manual_seed(0),
    )
    theirs = torch.nn.init.kaiming_normal_(
        torch.empty(shape),
        a=slope,
        mode=mode,
        nonlinearity="leaky_relu",
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(ours, theirs)
    ours_u = init.kaiming_uniform_(
        torch.empty(shape),
        "leaky_relu",
        mode=mode,
        negative_slope=slope,
        generator=torch.Generator().manual_seed(1),
    )
    theirs_u = torch.nn.init.kaiming_uniform_(
        torch.empty(shape),
        a=slope,
        mode=mode,
        nonlinearity="leaky_relu",
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(ours_u, theirs_u)


def test_kaiming_variance_formula():
    w = init.kaiming_normal_(torch.empty(512, 2048), "leaky_relu", negative_slope=0.3)
    assert w.var().item() == pytest.approx(2 / ((1 + 0.09) * 2048), rel=0.02)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "prelu"])
def test_signal_second_moment_is_kept_through_depth(name):
    # The point of the gain: 30 layers deep the signal neither explodes nor vanishes.
    torch.manual_seed(0)
    from leaky.nn import get_activation

    layers = []
    for _ in range(30):
        layers += [init.init_layer_(torch.nn.Linear(512, 512), name), get_activation(name)]
    model = torch.nn.Sequential(*layers)
    x = torch.randn(1024, 512)
    with torch.no_grad():
        y = model(x)
    assert 0.3 < y.pow(2).mean().item() / x.pow(2).mean().item() < 3.0


def test_init_layer_rejects_layers_without_weight_matrix():
    with pytest.raises(TypeError, match="Linear, Conv"):
        init.init_layer_(torch.nn.ReLU())


def test_fan_of_a_vector_is_an_error():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fan(torch.empty(5))


def test_rai_replaces_one_entry_per_unit_by_a_beta_2_1_draw():
    # The construction of Lu et al. (2019): V = [w, b] from N(0, sigma^2 / fan_in), then
    # one entry per unit, uniformly placed, replaced by a Beta(2, 1) draw.
    fan_out, fan_in, seed = 20000, 3, 0
    v = init.rai_parameters(fan_out, fan_in, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)  # the same draws, in the documented order
    normal = torch.randn(fan_out, fan_in + 1, generator=g) * (init.RAI_SIGMA / math.sqrt(fan_in))
    chosen = torch.randint(fan_in + 1, (fan_out, 1), generator=g)
    replaced = v.gather(1, chosen).flatten()
    kept = torch.ones_like(v, dtype=torch.bool).scatter_(1, chosen, False)
    assert torch.equal(v[kept], normal[kept])  # every other entry is the normal draw
    assert int((v != normal).sum(dim=1).max()) == 1  # one entry per unit differs
    # The replaced entries: Beta(2, 1), CDF x^2 on (0, 1]; Kolmogorov-Smirnov distance.
    ordered = replaced.double().sort().values
    ecdf = torch.arange(1, fan_out + 1, dtype=torch.float64) / fan_out
    assert bool((ordered > 0).all() and (ordered <= 1).all())
    assert float((ecdf - ordered**2).abs().max()) < 1.63 / math.sqrt(fan_out)  # 1% level
    # Uniform over the fan_in + 1 places (weights and the bias).
    counts = torch.bincount(chosen.flatten(), minlength=fan_in + 1).double()
    chi2 = float(((counts - fan_out / (fan_in + 1)) ** 2 / (fan_out / (fan_in + 1))).sum())
    assert chi2 < 11.34  # chi-square, 3 degrees of freedom, 1% level
    # The symmetric part's variance, sigma^2 / fan_in.
    assert float(normal[kept].var()) == pytest.approx(init.RAI_SIGMA**2 / fan_in, rel=0.03)


def test_rai_fills_a_conv_layer_per_output_channel_and_refuses_other_modules():
    conv = init.rai_(torch.nn.Conv2d(2, 4, 3), generator=torch.Generator().manual_seed(1))
    params = torch.cat([conv.weight.detach().flatten(1), conv.bias.detach()[:, None]], dim=1)
    assert params.shape == (4, 2 * 9 + 1)
    assert bool((params > 0).any(dim=1).all())  # each channel has its positive entry
    no_bias = init.rai_(torch.nn.Linear(5, 3, bias=False))
    assert no_bias.weight.shape == (3, 5)
    with pytest.raises(TypeError, match="Expected a layer with a weight"):
        init.rai_(torch.nn.ReLU())
    with pytest.raises(ValueError, match="fan_out and fan_in >= 1"):
        init.rai_parameters(0, 3)
