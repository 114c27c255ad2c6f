"""``recycle``: ReDo's repair on Linear, Conv, Conv-BN networks; refusals that name the layer."""

import math

import pytest
import torch
from torch import nn

from leaky.diagnosis.monitor import Monitor
from leaky.diagnosis.repair import RecycleError, recycle
from leaky.nn import LeakyReLU

DEAD = [1, 4]


def _mlp() -> nn.Sequential:
    """Units 1 and 4 of the first ReLU never fire on inputs in [0, 1]^4."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.0), nn.Linear(6, 3))
    with torch.no_grad():
        model[0].weight.uniform_(0.1, 1.0)
        model[0].bias.fill_(0.5)
        model[0].weight[DEAD] = -1.0
        model[0].bias[DEAD] = -1.0
    return model


def _inputs(n: int = 64) -> torch.Tensor:
    return torch.rand(n, 4, generator=torch.Generator().manual_seed(3))


def test_a_monitors_dead_units_are_recycled_and_the_function_is_unchanged():
    model = _mlp()
    x = _inputs()
    with Monitor(model) as monitor:
        model(x)
    dead = monitor.report().dead_units
    assert dead == {"1": DEAD}
    before = model(x)
    old = model[0].weight.detach().clone()
    [done] = recycle(model, dead, x, generator=torch.Generator().manual_seed(0))
    assert (done.site, done.units, done.incoming, done.outgoing) == ("1", (1, 4), "0", "3")
    assert done.batch_norm is None and done.outgoing_columns == (1, 4)
    # Living units untouched; the dead ones drawn again with ReLU's gain over sqrt(fan_in).
    living = [0, 2, 3, 5]
    assert torch.equal(model[0].weight[living], old[living])
    assert not torch.equal(model[0].weight[DEAD], old[DEAD])
    assert model[0].bias[DEAD].tolist() == [0.0, 0.0]
    assert torch.all(model[3].weight[:, DEAD] == 0)
    # The network computes the same function: the units were dead, and now read 0 weight.
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    # ...and they fire again, so they can learn.
    with Monitor(model) as again:
        model(x)
    assert again.report().dead_units == {}


def test_new_incoming_weights_have_the_activations_own_gain():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(400, 300), LeakyReLU(0.2), nn.Linear(300, 2))
    units = list(range(300))
    recycle(model, {"1": units}, torch.randn(2, 400), generator=torch.Generator().manual_seed(1))
    expected = math.sqrt(2 / (1 + 0.2**2)) / math.sqrt(400)
    assert float(model[0].weight.detach().std()) == pytest.approx(expected, rel=0.02)


def test_adams_moments_are_reset_where_the_weights_changed():
    model = _mlp()
    x = _inputs()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        with torch.no_grad():  # gradients at the dead units too, so their moments are not 0
            for p in model.parameters():
                p.grad += 0.1
        optimizer.step()
    first, out = model[0], model[3]
    kept = {k: v.clone() for k, v in optimizer.state[out.weight].items()}
    [done] = recycle(model, {"1": DEAD}, x, optimizer=optimizer)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.all(optimizer.state[first.weight][key][DEAD] == 0)
        assert torch.all(optimizer.state[first.weight][key][[0, 2, 3, 5]] != 0)
        assert torch.all(optimizer.state[first.bias][key][DEAD] == 0)
        assert torch.all(optimizer.state[out.weight][key][:, DEAD] == 0)
        assert torch.equal(optimizer.state[out.weight][key][:, 0], kept[key][:, 0])
    assert "0.weight:exp_avg" in done.optimizer_states
    assert "3.weight:exp_avg_sq" in done.optimizer_states


class ConvNet(nn.Module):
    def __init__(self, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if norm else nn.Identity()
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(3 * 2 * 2, 2)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.head(torch.flatten(self.act2(self.conv2(x)), 1))


@pytest.mark.parametrize("norm", [False, True], ids=["conv", "conv-bn"])
def test_conv_channels_are_recycled_and_outputs_are_unchanged(norm):
    torch.manual_seed(0)
    model = ConvNet(norm).eval()
    x = torch.randn(8, 1, 4, 4)
    with torch.no_grad():
        if norm:
            model.bn.running_mean[2] = 3.0
            model.bn.weight[2] = 2.0
        model.conv.bias[2] = -100.0  # channel 2 never fires
    before = model(x)
    [done] = recycle(model, {"relu": [2]}, x)
    assert (done.incoming, done.outgoing) == ("conv", "conv2")
    assert done.batch_norm == ("bn" if norm else None)
    assert torch.all(model.conv2.weight[:, 2] == 0)
    if norm:
        assert float(model.bn.weight[2]) == 1.0 and float(model.bn.running_mean[2]) == 0.0
        assert float(model.bn.running_var[2]) == 1.0 and float(model.bn.bias[2]) == 0.0
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)


def test_a_flatten_before_the_outgoing_layer_zeroes_each_channels_columns():
    torch.manual_seed(0)
    model = ConvNet(norm=False)
    x = torch.randn(2, 1, 4, 4)
    [done] = recycle(model, {"act2": [1]}, x)
    # Channel 1 of a 2x2 map: columns 4..7 of the head.
    assert done.outgoing == "head" and done.outgoing_columns == (4, 5, 6, 7)
    assert torch.all(model.head.weight[:, 4:8] == 0) and torch.all(model.head.weight[:, :4] != 0)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.relu, self.fc2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)
        self.out_relu = nn.ReLU()
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        h = self.fc2(self.relu(self.fc1(x)))
        return self.head(self.out_relu(h + x))


def test_a_residual_addition_is_refused_naming_it_and_nothing_changes():
    torch.manual_seed(0)
    model = Residual()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 4)
    with pytest.raises(
        RecycleError, match=r"'out_relu'.*from 'add \(a torch call in the top-level forward\)'"
    ):
        recycle(model, {"relu": [0], "out_relu": [1]}, x)
    # Every site is checked before any changes: 'relu' (which could be recycled) is untouched.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    [done] = recycle(model, {"relu": [0]}, x)
    assert (done.incoming, done.outgoing) == ("fc1", "fc2")


def test_a_layer_output_read_twice_is_refused():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.relu, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(8, 1)

        def forward(self, x):
            h = self.fc(x)
            return self.out(torch.cat([self.relu(h), h], dim=1))

    with pytest.raises(RecycleError, match=r"output of 'fc' is also read by 'cat"):
        recycle(Shared(), {"relu": [0]}, torch.randn(2, 4))


def test_an_attention_block_after_the_activation_is_refused():
    class ToAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.relu = nn.Linear(8, 8), nn.ReLU()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            h = self.relu(self.fc(x))
            return self.attn(h, h, h)[0]

    with pytest.raises(RecycleError, match=r"'relu'.*goes to 'transpose \(a torch call in attn\)'"):
        recycle(ToAttention(), {"relu": [0]}, torch.randn(2, 3, 8))


def test_an_in_place_relu_between_two_layers_is_recycled():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    [done] = recycle(model, {"1": [0]}, torch.randn(3, 4))
    assert (done.incoming, done.outgoing) == ("0", "2")


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ({"9": [0]}, "has no module of that name"),
        ({"0": [0]}, "to be an activation module, but it is a Linear"),
        ({"1": [7]}, r"units \[7\].*6 units"),
        ({"3": [0]}, r"read by nothing \(a model output\)"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(units, message):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2), nn.ReLU())
    with pytest.raises(RecycleError, match=message):
        recycle(model, units, torch.randn(3, 4))


def test_a_module_called_twice_is_refused():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 1))
    with pytest.raises(RecycleError, match="ran 2 times"):
        recycle(model, {"1": [0]}, torch.randn(2, 4))


def test_nothing_to_recycle_changes_nothing():
    assert recycle(_mlp(), {"1": []}, _inputs()) == []
