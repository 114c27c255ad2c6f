"""leaky.convert: swapping activations in nested models, re-initialising, and going back."""

import pytest
import torch
from torch import nn

import leaky
from leaky.convert import FunctionalActivationWarning, convert, find_functional_activations


class Block(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = shared
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 8), "relu": nn.ReLU(inplace=True)})

    def forward(self, x):
        return self.heads["relu"](self.heads["a"](self.act(self.fc(x))))


def _nested() -> nn.Module:
    torch.manual_seed(0)
    shared = nn.ReLU()
    return nn.Sequential(
        nn.Linear(4, 8),
        shared,
        nn.ModuleList([Block(shared), Block(nn.ReLU())]),
        nn.Conv1d(1, 3, 3),
        nn.ReLU(),
    )


def test_every_relu_is_swapped_and_shared_modules_stay_shared():
    model = _nested()
    changes = convert(model, "leaky_relu", negative_slope=0.1)
    remaining = [m for m in model.modules() if type(m) is nn.ReLU]
    assert remaining == []
    assert model[1] is model[2][0].act  # one object in two places stays one object
    shared_change = next(c for c in changes if "1" in c.names)
    assert shared_change.names == ("1", "2.0.act")
    assert len(changes) == 5
    assert model[2][0].heads["relu"].inplace  # inplace kept
    assert isinstance(model[4], leaky.nn.LeakyReLU) and model[4].negative_slope == 0.1


def _forward_backward(model: nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_()
    y = model(x)
    y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
    return y.detach(), x.grad, [p.grad.clone() for p in model.parameters()]


def test_slope_zero_leaves_outputs_and_gradients_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    )
    x = torch.randn(64, 5)
    before = _forward_backward(model, x)
    model.zero_grad()
    convert(model, "leaky_relu", negative_slope=0.0)
    after = _forward_backward(model, x)
    # Equal values everywhere. (Bits differ only in the sign of zero: LeakyReLU(x, 0) for
    # x < 0 is x * 0 = -0.0, where ReLU gives +0.0; -0.0 == 0.0 in every later computation.)
    for b, a in zip(
        [before[0], before[1], *before[2]], [after[0], after[1], *after[2]], strict=True
    ):
        assert torch.equal(a, b)


def test_prelu_gets_one_slope_per_channel_when_it_can_tell():
    model = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Conv1d(1, 3, 2), nn.ReLU())
    convert(model, "prelu")
    assert model[1].weight.shape == (7,) and model[3].weight.shape == (3,)
    assert float(model[1].weight[0].detach()) == 0.25
    lonely = nn.ModuleDict({"act": nn.ReLU()})
    convert(lonely, leaky.nn.PReLU)
    assert lonely["act"].weight.shape == (1,)


def test_reinit_uses_the_gain_of_the_new_activation_and_names_the_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 2048), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 2))
    changes = convert(model, "leaky_relu", negative_slope=0.5, reinit=True)
    assert changes[0].reinitialised == ("0",)
    assert "re-initialised 0" in str(changes[0])
    assert model[0].weight.var().item() == pytest.approx(2 / ((1 + 0.25) * 512), rel=0.03)
    assert torch.equal(model[0].bias, torch.zeros(2048))


def test_round_trip_to_torch_and_back_keeps_state_dicts_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 3),
        leaky.nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(3, 3),
        leaky.nn.PReLU(3, init=0.1, dtype=torch.float64),
        leaky.nn.RReLU(0.05, 0.4),
    )
    with torch.no_grad():
        model[3].weight.copy_(torch.tensor([0.1, 0.2, 0.3]))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    changes = convert(model, "torch")
    assert [type(m) for m in model] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.PReLU, nn.RReLU]
    assert len(changes) == 3 and model[1].inplace and model[1].negative_slope == 0.2
    assert model[3].weight.dtype == torch.float64
    assert (model[4].lower, model[4].upper) == (0.05, 0.4)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    convert(model, "leaky_relu", only=(nn.LeakyReLU,))
    convert(model, "prelu", only=(nn.PReLU,))
    convert(model, "rrelu", only=(nn.RReLU,))
    assert [type(m) for m in model] == [
        nn.Linear,
        leaky.nn.LeakyReLU,
        nn.Linear,
        leaky.nn.PReLU,
        leaky.nn.RReLU,
    ]
    assert model[1].negative_slope == 0.2 and (model[4].lower, model[4].upper) == (0.05, 0.4)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


class WithFunctional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return torch.nn.functional.relu(self.fc(x)).sigmoid()


def test_functional_call_sites_are_named_in_warnings():
    model = nn.Sequential(WithFunctional(), nn.ReLU())
    with pytest.warns(FunctionalActivationWarning) as caught:
        convert(model)
    messages = [str(w.message) for w in caught]
    assert any("0 (WithFunctional.forward, line" in m and "relu(...)" in m for m in messages)
    assert any("sigmoid" in m for m in messages)
    assert len(find_functional_activations(model)) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"to": "softmax"}, ValueError, "Valid names"),
        ({"to": nn.Linear}, ValueError, "spec table knows"),
        ({"only": nn.ReLU}, TypeError, "tuple"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        convert(nn.Sequential(nn.ReLU()), **kwargs)


def test_new_modules_take_dtype_and_mode_of_the_old_ones():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU()).double().eval()
    convert(model, "prelu")
    assert model[1].weight.dtype == torch.float64 and not model[1].training
    model(torch.randn(2, 3, dtype=torch.float64))
    convert(model, "rrelu", only=(leaky.nn.PReLU,))
    x = -torch.ones(1, 3, dtype=torch.float64)
    assert torch.equal(model(x), model(x))  # eval mode: no random slopes


def test_converting_to_torch_warns_about_what_has_no_equivalent():
    model = nn.Sequential(nn.Linear(3, 4, bias=False), leaky.nn.BiasLeakyReLU(4))
    with pytest.warns(UserWarning, match="no torch.nn equivalent"):
        assert convert(model, "torch") == []
