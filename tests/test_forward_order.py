"""leaky.diagnosis.forward_order: leaf modules in the order the forward pass calls them."""

import pytest
import torch
from torch import nn

from leaky.diagnosis.forward_order import trace_leaf_calls


class Residual(nn.Module):
    """Registers ``conv, relu, bn, drop, head``; calls ``relu`` twice and ``head`` first."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 1)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(2)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(3, 3)

    def forward(self, x, scale=1.0):
        x = self.head(x)
        y = self.relu(self.bn(self.conv(x)))
        return self.drop(self.relu(y + x)) * scale


def test_calls_come_in_forward_order_with_repeats_counted():
    calls = trace_leaf_calls(Residual(), torch.randn(4, 2, 3))
    assert [(c.name, c.count) for c in calls] == [
        ("head", 0),
        ("conv", 0),
        ("bn", 0),
        ("relu", 0),
        ("relu", 1),
        ("drop", 0),
    ]


def test_tracing_leaves_buffers_random_state_and_gradients_as_they_were():
    torch.manual_seed(0)
    model = Residual().train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 2, 3)
    rng = torch.get_rng_state()
    trace_leaf_calls(model, (x,))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in buffers.items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_keyword_arguments_and_the_transformer_fast_path():
    calls = trace_leaf_calls(Residual(), {"x": torch.randn(4, 2, 3), "scale": 2.0})
    assert len(calls) == 6
    # In eval mode without gradients torch's encoder layer would run one fused kernel and
    # call none of its submodules (torch skips that fast path while hooks are attached).
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation=nn.ReLU(), batch_first=True).eval()
    names = [c.name for c in trace_leaf_calls(layer, torch.randn(2, 3, 8))]
    assert names.index("linear1") < names.index("activation") < names.index("linear2")


def test_a_failing_forward_pass_is_a_value_error():
    with pytest.raises(ValueError, match="example_input.*RuntimeError"):
        trace_leaf_calls(nn.Linear(3, 2), torch.randn(2, 4))
