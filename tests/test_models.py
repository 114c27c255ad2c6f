"""leaky.lab.models: shapes, activations from the spec table, activation-aware initialisation."""

import math

import pytest
import torch
from torch import nn

import leaky
from leaky.lab import models


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "sigmoid", "tanh", "gelu"])
def test_builders_shapes_and_activation(activation):
    cls = leaky.get_spec(activation).module_class()
    cases = [
        (models.mlp(10, 3, depth=3, width=16, activation=activation), torch.randn(5, 10), (5, 3)),
        (
            models.cnn1d(1, 40, 10, depth=3, channels=8, activation=activation),
            torch.randn(5, 1, 40),
            (5, 10),
        ),
        (
            models.cnn2d(1, (8, 8), 10, depth=2, channels=8, activation=activation),
            torch.randn(5, 1, 8, 8),
            (5, 10),
        ),
        (
            models.char_mlp(30, 8, depth=2, width=32, activation=activation),
            torch.randint(0, 30, (5, 8)),
            (5, 30),
        ),
    ]
    for model, x, shape in cases:
        assert model(x).shape == shape
        assert sum(isinstance(m, cls) for m in model.modules()) >= 2


def test_prelu_gets_one_slope_per_unit():
    model = models.mlp(4, 2, depth=2, width=6, activation="prelu")
    assert [m.weight.shape for m in model if isinstance(m, nn.PReLU)] == [(6,), (6,)]


def test_activation_options_reach_the_modules():
    model = models.mlp(4, 2, depth=2, width=6, activation="leaky_relu", negative_slope=0.3)
    assert all(m.negative_slope == 0.3 for m in model if isinstance(m, nn.LeakyReLU))


@pytest.mark.parametrize(
    ("activation", "slope"), [("relu", 0.0), ("leaky_relu", 0.2), ("tanh", None)]
)
def test_kaiming_uses_the_activation_gain_and_output_gain_one(activation, slope):
    options = {} if slope is None or activation != "leaky_relu" else {"negative_slope": slope}
    model = models.mlp(1024, 512, depth=2, width=1024, activation=activation, **options)
    hidden, output = model[3], model[5]
    gain = leaky.core.init.calculate_gain(activation, slope)
    assert hidden.weight.var().item() == pytest.approx(gain**2 / 1024, rel=0.03)
    assert output.weight.var().item() == pytest.approx(1 / 1024, rel=0.03)
    assert torch.equal(hidden.bias, torch.zeros_like(hidden.bias))


def test_xavier_and_torch_inits():
    xavier = models.mlp(512, 512, depth=1, width=2048, activation="relu", init="xavier")
    assert xavier[1].weight.var().item() == pytest.approx(2 / (512 + 2048), rel=0.03)
    torch.manual_seed(0)
    default = models.mlp(8, 2, depth=1, width=4, init="torch")
    torch.manual_seed(0)
    reference = nn.Linear(8, 4)
    assert torch.equal(default[1].weight, reference.weight)


def test_same_generator_same_weights():
    a = models.mlp(4, 2, depth=2, width=8, generator=torch.Generator().manual_seed(3))
    b = models.mlp(4, 2, depth=2, width=8, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: models.mlp(4, 2, depth=0, width=8), "depth"),
        (lambda: models.mlp(4, 2, depth=2, width=8, init="orthogonal"), "init"),
        (lambda: models.mlp(4, 2, depth=2, width=8, activation="swish2"), "Valid names"),
        (lambda: models.cnn1d(1, 4, 10, depth=8), "pools"),
        (lambda: models.cnn2d(1, (8, 8), 10, depth=4), "pools"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_deep_kaiming_leaky_network_keeps_its_signal():
    model = models.mlp(256, 10, depth=30, width=256, activation="leaky_relu", negative_slope=0.1)
    x = torch.randn(512, 256)
    h = x
    with torch.no_grad():
        for layer in list(model)[:-1]:
            h = layer(h)
    assert 0.3 < h.pow(2).mean().item() < 3.0
    assert not math.isnan(model(x).sum().item())
