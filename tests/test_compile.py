"""torch.compile of a model built from leaky.nn gives eager's outputs and gradients."""

import pytest
import torch

from leaky.nn import BiasLeakyReLU, LeakyReLU, PReLU


@pytest.mark.slow
def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16, bias=False),
        BiasLeakyReLU(16),
        torch.nn.Linear(16, 16),
        LeakyReLU(0.1),
        torch.nn.Linear(16, 16),
        LeakyReLU(0.2, save="mask"),
        torch.nn.Linear(16, 16),
        PReLU(16),
        torch.nn.Linear(16, 1),
    )
    x = torch.randn(32, 8)
    eager_out = model(x)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    compiled = torch.compile(model)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager_out)
    for param, expected in zip(model.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(param.grad, expected)
