"""leaky.convert: swapping activations in nested models, re-initialising, and going back."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leaky
from leaky.diagnosis.convert import (
    FunctionalActivationWarning,
    ProducerNotFoundWarning,
    convert,
    find_functional_activations,
    to_torch,
)

from _helpers import BasicBlock


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


# --- An explicit slope wins over the source's slope; Change lines name the classes' modules.


def test_an_explicit_slope_overrides_the_slope_of_a_leaky_relu_source():
    model = nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(0.2))
    changes = convert(model, "leaky_relu", negative_slope=0.1, only=(nn.LeakyReLU,))
    assert type(model[1]) is leaky.nn.LeakyReLU and model[1].negative_slope == 0.1
    assert [str(c) for c in changes] == [
        "1: torch.nn.LeakyReLU(negative_slope=0.2) -> leaky.nn.LeakyReLU(negative_slope=0.1)"
    ]
    convert(model, "leaky_relu", negative_slope=0.3, only=(nn.LeakyReLU,))  # leaky.nn too
    assert model[1].negative_slope == 0.3
    assert convert(model, "leaky_relu", only=(nn.LeakyReLU,)) == []  # no slope given: kept
    assert model[1].negative_slope == 0.3


def test_an_explicit_slope_overrides_a_prelu_sources_learned_slopes():
    model = nn.Sequential(nn.Linear(3, 2), nn.PReLU(2, init=0.3))
    convert(model, "prelu", negative_slope=0.05, only=(nn.PReLU,))
    assert type(model[1]) is leaky.nn.PReLU
    assert torch.equal(model[1].weight.detach(), torch.full((2,), 0.05))
    model = nn.Sequential(nn.Linear(3, 2), nn.PReLU(2, init=0.3))
    convert(model, "prelu", only=(nn.PReLU,))  # no slope given: the learned ones stay
    assert torch.equal(model[1].weight.detach(), torch.full((2,), 0.3))


def test_change_lines_name_the_place_and_the_qualified_classes():
    model = nn.Module()
    model.features = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.ReLU())
    changes = convert(model, "leaky_relu", negative_slope=0.1)
    assert (
        str(changes[0]) == "features.1: torch.nn.ReLU() -> leaky.nn.LeakyReLU(negative_slope=0.1)"
    )
    back = convert(model, "torch")
    assert str(back[1]) == (
        "features.3: leaky.nn.LeakyReLU(negative_slope=0.1)"
        " -> torch.nn.LeakyReLU(negative_slope=0.1)"
    )


# --- reinit finds the layer feeding each activation from the forward pass.


class SqueezeExcitation(nn.Module):
    """torchvision's block: registered avgpool, fc1, fc2, relu, scale_activation."""

    def __init__(self, channels: int = 8, squeeze: int = 4) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.relu = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.avgpool(x)
        scale = self.fc1(scale)
        scale = self.relu(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale) * x


class EncoderLayer(nn.Module):
    """A post-norm transformer encoder layer, registered in torch.nn's order."""

    def __init__(self, d_model: int = 16, nhead: int = 2, d_ff: int = 32) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(0.1)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(0.1)
        self.dropout2 = nn.Dropout(0.1)
        self.activation = nn.ReLU()

    def forward(self, x):
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, need_weights=False)[0]))
        ff = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.norm2(x + self.dropout2(ff))


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> list[str]:
    after = _weights(model)
    return sorted(k for k, v in before.items() if not torch.equal(v, after[k]))


def test_reinit_in_a_squeeze_excitation_block_takes_the_layer_the_forward_feeds_in():
    torch.manual_seed(0)
    block = SqueezeExcitation()
    before = _weights(block)
    changes = convert(block, "leaky_relu", reinit=True, example_input=torch.randn(2, 8, 5, 5))
    assert _changed(before, block) == ["fc1.bias", "fc1.weight"]
    assert [c.reinitialised for c in changes] == [("fc1",)]


def test_reinit_without_example_input_warns_instead_of_guessing_in_a_custom_block():
    torch.manual_seed(0)
    block = SqueezeExcitation()
    before = _weights(block)
    with pytest.warns(ProducerNotFoundWarning, match=r"`relu`.*example_input") as caught:
        changes = convert(block, "leaky_relu", reinit=True)
    assert len(caught) == 1 and "SqueezeExcitation" in str(caught[0].message)
    assert _changed(before, block) == []  # no silent guess (it used to re-initialise fc2)
    assert isinstance(block.relu, leaky.nn.LeakyReLU) and changes[0].reinitialised == ()


def test_reinit_of_a_module_called_twice_takes_the_layer_before_each_call():
    torch.manual_seed(0)
    model = nn.Sequential(BasicBlock(), BasicBlock()).train()
    before = _weights(model)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    changes = convert(model, "leaky_relu", reinit=True, example_input=torch.randn(2, 4, 6, 6))
    assert [c.reinitialised for c in changes] == [("0.conv1", "0.conv2"), ("1.conv1", "1.conv2")]
    assert _changed(before, model) == [
        "0.conv1.weight",
        "0.conv2.weight",
        "1.conv1.weight",
        "1.conv2.weight",
    ]
    # the traced forward pass left BatchNorm's running statistics as they were
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())


def test_reinit_in_a_transformer_encoder_layer_takes_linear1_not_linear2():
    torch.manual_seed(0)
    layer = EncoderLayer().train()
    before = _weights(layer)
    changes = convert(layer, "leaky_relu", reinit=True, example_input=torch.randn(2, 5, 16))
    assert changes[0].reinitialised == ("linear1",)
    assert _changed(before, layer) == ["linear1.bias", "linear1.weight"]


def test_reinit_in_a_plain_sequential_needs_no_example_input(recwarn):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(), nn.ReLU())
    assert convert(model, reinit=True)[0].reinitialised == ("0",)
    assert not [w for w in recwarn if issubclass(w.category, ProducerNotFoundWarning)]


def test_reinit_in_a_sequential_warns_when_an_activation_is_not_fed_by_a_weight_layer():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.ReLU(), nn.Linear(8, 2))
    with pytest.warns(ProducerNotFoundWarning, match=r"`2`.*Tanh"):
        changes = convert(model, reinit=True)
    assert changes[0].reinitialised == ()


def test_an_example_input_the_model_rejects_is_a_value_error_and_changes_nothing():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
    with pytest.raises(ValueError, match="example_input"):
        convert(model, reinit=True, example_input=torch.randn(2, 5))
    assert type(model[1]) is nn.ReLU


def test_an_activation_the_forward_never_calls_is_named_in_a_warning():
    model = SqueezeExcitation()
    model.spare = nn.ReLU()
    with pytest.warns(ProducerNotFoundWarning, match="`spare`.*not called"):
        changes = convert(model, reinit=True, example_input=torch.randn(1, 8, 2, 2))
    assert [c.reinitialised for c in changes] == [("fc1",), ()]


# --- Only functional activations are reported, not calls of activation modules.


class FunctionalBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.relu(self.fc(x))  # the one functional call


def test_calling_an_activation_module_attribute_is_not_a_functional_call(recwarn):
    model = nn.Sequential(BasicBlock(), BasicBlock())
    changes = convert(model)
    assert len(changes) == 2
    assert find_functional_activations(model) == []
    assert not [w for w in recwarn if issubclass(w.category, FunctionalActivationWarning)]


def test_a_functional_call_warns_once_at_its_file_and_line():
    model = nn.Sequential(FunctionalBlock(), FunctionalBlock())
    with pytest.warns(FunctionalActivationWarning) as caught:
        convert(model)
    assert len(caught) == 1
    line = next(
        i
        for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
        if "the one functional" in text
    )
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)
    assert "0, 1 (FunctionalBlock.forward, line" in str(caught[0].message)
    assert "F.relu(...)" in str(caught[0].message)


class StoredFunction(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = torch.sigmoid
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.act(self.fc(x)).relu()


def test_functions_stored_on_the_module_and_tensor_methods_still_count():
    found = find_functional_activations(nn.Sequential(StoredFunction()))
    assert len(found) == 2
    assert any("self.act(...)" in f for f in found) and any(".relu(...)" in f for f in found)


# --- to_torch: leaky.nn back to torch.nn, same weights, same places.


def _leaky_classes(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules() if type(m).__module__.startswith("leaky.")]


def test_convert_then_to_torch_gives_torch_modules_with_the_same_weights_and_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 6), nn.PReLU(6), nn.Linear(6, 3)
    ).eval()
    with torch.no_grad():
        model[3].weight.uniform_(0.0, 0.5)  # learned slopes, not the default 0.25
    original = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(16, 4)
    expected = model(x)
    convert(model, "leaky_relu", only=(nn.LeakyReLU,))
    convert(model, "prelu", only=(nn.PReLU,))
    assert [type(m) for m in model][1::2] == [leaky.nn.LeakyReLU, leaky.nn.PReLU]
    changes = to_torch(model)
    assert [type(m) for m in model] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.PReLU, nn.Linear]
    assert [c.names for c in changes] == [("1",), ("3",)]
    assert model.state_dict().keys() == original.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in original.items())
    assert not model[3].training  # eval mode kept
    assert torch.equal(model(x), expected)


def test_to_torch_replaces_a_module_used_twice_by_one_module():
    shared = leaky.nn.LeakyReLU(0.1)
    model = nn.Sequential(nn.Linear(3, 3), shared, nn.Linear(3, 3), shared)
    (change,) = to_torch(model)
    assert change.names == ("1", "3")
    assert type(model[1]) is nn.LeakyReLU and model[1] is model[3]
    assert str(change) == (
        "1, 3: leaky.nn.LeakyReLU(negative_slope=0.1) -> torch.nn.LeakyReLU(negative_slope=0.1)"
    )


def test_to_torch_walks_nested_containers_like_convert_to_torch():
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = _nested()
        convert(model, "prelu", negative_slope=0.1)
        return model

    model, same = build(), build()
    assert leaky.nn.PReLU in _leaky_classes(model)
    changes = to_torch(model)
    assert _leaky_classes(model) == []
    assert model[1] is model[2][0].act  # still one object in two places
    assert type(model[2][1].heads["relu"]) is nn.PReLU
    assert [str(c) for c in changes] == [str(c) for c in convert(same, "torch")]
    assert len(changes) == 5
    with pytest.raises(TypeError, match="torch.nn.Module"):
        to_torch([nn.ReLU()])
