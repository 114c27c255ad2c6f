"""leaky's activations under activation checkpointing and CPU offloading.

``torch.utils.checkpoint`` (non-reentrant) runs the forward again during backward, and
``torch.autograd.graph.save_on_cpu`` moves what autograd keeps: both must give the same
gradients as a plain step, RReLU in training mode (random slopes) included.
"""

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import leaky.nn as lnn

ACTIVATIONS = {
    "leaky_relu": lambda: lnn.LeakyReLU(0.1),
    "leaky_relu_mask": lambda: lnn.LeakyReLU(0.1, save="mask"),
    "leaky_relu_negative_slope": lambda: lnn.LeakyReLU(-0.3),
    "prelu": lambda: lnn.PReLU(32),
    "rrelu": lambda: lnn.RReLU(),
    "bias_leaky_relu": lambda: lnn.BiasLeakyReLU(32),
}


def _block(activation: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), activation, nn.Linear(32, 32), nn.Tanh())


def _gradients(model: nn.Module, x: torch.Tensor, wrap) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same random slopes for RReLU in every way of running it
    wrap(model, x).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _plain(model, x):
    return model(x)


def _checkpointed(model, x):
    return checkpoint(model, x, use_reentrant=False)


def _offloaded(model, x):
    with torch.autograd.graph.save_on_cpu():
        return model(x)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("wrap", [_checkpointed, _offloaded], ids=["checkpoint", "save_on_cpu"])
def test_the_same_gradients_as_a_plain_step(name, wrap):
    model = _block(ACTIVATIONS[name]()).train()
    x = torch.randn(8, 16)
    expected = _gradients(model, x, _plain)
    got = _gradients(model, x, wrap)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("rrelu", [lnn.RReLU, nn.RReLU], ids=["leaky", "torch"])
def test_rrelu_slopes_are_drawn_again_identically_when_the_forward_is_rerun(rrelu):
    # The checkpoint reruns the forward with the random state it saved: leaky's RReLU
    # regenerates the same slopes from it, so its gradient is the one of the first forward.
    # torch's RReLU has been reported to differ here; on this CPU build it does not.
    model = _block(rrelu(0.1, 0.3)).train()
    x = torch.randn(64, 16)
    first = _gradients(model, x, _plain)
    again = _gradients(model, x, _checkpointed)
    torch.testing.assert_close(again["0.weight"], first["0.weight"], rtol=0, atol=0)
    other_seed = _gradients(model, x, lambda m, v: (torch.manual_seed(2), m(v))[1])
    assert not torch.equal(other_seed["0.weight"], first["0.weight"])  # slopes are random
