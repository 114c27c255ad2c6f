"""The playground's settings and training session, without any server."""

import json
import math
import threading

import pytest
import torch

from leaky.playground import TrainingSession, validate_params
from leaky.playground import session as session_module
from leaky.playground.params import (
    FIELDS,
    MAX_PARAMETERS,
    PlaygroundParams,
    parameter_count,
    read_text_values,
)

SMALL = {"depth": 2, "width": 8}


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"depth": "3"}, "depth", "type"),
        ({"depth": 2.5}, "depth", "type"),
        ({"width": True}, "width", "type"),
        ({"compare": 1}, "compare", "type"),
        ({"depth": 0}, "depth", "range"),
        ({"depth": 51}, "depth", "range"),
        ({"width": 257}, "width", "range"),
        ({"learning_rate": 2.0}, "learning_rate", "range"),
        ({"noise": float("nan")}, "noise", "range"),
        ({"activation": "swishy"}, "activation", "choice"),
        ({"dataset": "mnist"}, "dataset", "choice"),
        ({"colour": "red"}, "colour", "unknown"),
        ({"rrelu_lower": 0.5, "rrelu_upper": 0.2}, "rrelu_lower", "order"),
        ({"depth": 50, "width": 256}, "width", "too_large"),
    ],
)
def test_bad_settings_are_named_and_change_nothing(changes, field, code):
    base = PlaygroundParams(depth=3)
    params, errors = validate_params(changes, base)
    assert params is base
    assert errors[field].code == code
    assert f"`{field}`" in errors[field].message or code == "too_large"
    assert json.dumps(errors[field].to_dict(), allow_nan=True)


def test_every_range_of_the_issue_is_enforced():
    assert (FIELDS["depth"].low, FIELDS["depth"].high) == (1, 50)
    assert (FIELDS["width"].low, FIELDS["width"].high) == (2, 256)
    assert set(FIELDS["activation"].choices) >= {"relu", "leaky_relu", "prelu", "rrelu", "tanh"}
    params, errors = validate_params({"depth": 50, "width": 140, "learning_rate": 1e-5})
    assert not errors and parameter_count(params) <= MAX_PARAMETERS


def test_a_links_text_is_read_by_each_fields_kind_and_bad_text_is_named():
    texts = {
        "depth": "2.5",
        "noise": "1e999",
        "compare": "yes",
        "seed": "7",
        "learning_rate": "0.02",
    }
    values = read_text_values(texts)
    assert values == {
        "depth": 2.5,
        "noise": "1e999",
        "compare": "yes",
        "seed": 7,
        "learning_rate": 0.02,
    }
    _, errors = validate_params(values)
    assert {name: error.code for name, error in errors.items()} == {
        "depth": "type",
        "noise": "type",
        "compare": "type",
    }
    params, errors = validate_params(read_text_values({"seed": "7", "compare": "true"}))
    assert not errors and (params.seed, params.compare) == (7, True)


def test_a_model_too_large_is_refused_before_it_is_built(monkeypatch):
    session = TrainingSession(SMALL)

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(session_module, "mlp", no_build)
    errors = session.update({"depth": 40, "width": 256, "compare": True})
    assert (
        errors["width"].code == "too_large"
        and "lower the depth or width" in errors["width"].message
    )
    assert session.params.depth == 2


# ------------------------------------------------------------------ the session


def _loss(session):
    return session.snapshot()["networks"][0]["train_loss"]


def test_loss_falls_on_spirals_with_leaky_relu():
    session = TrainingSession({**SMALL, "learning_rate": 0.05})
    assert session.params.dataset == "spirals" and session.params.activation == "leaky_relu"
    before = _loss(session)
    session.train(50)
    after = _loss(session)
    assert after < 0.75 * before, (before, after)


def test_bias_shift_kills_relu_units_and_leaky_relu_keeps_every_one():
    shifted = TrainingSession({**SMALL, "compare": True, "bias_shift": 3.0})
    shifted.train(10)
    relu, leaky = shifted.snapshot()["networks"]
    assert (relu["activation"], leaky["activation"]) == ("relu", "leaky_relu")
    assert min(relu["dead"]) == 1.0 and relu["dead_units"][0] == list(range(8))
    assert leaky["dead"] == [0.0, 0.0] and leaky["dead_units"] == [[], []]
    # The Leaky ReLU units are just as inactive: they are not dead because gradient passes.
    assert leaky["never_active"] == [1.0, 1.0]
    assert leaky["gradients"]["norms"][0] > 0 and relu["gradients"]["norms"][0] == 0
    unshifted = TrainingSession({**SMALL, "compare": True}).snapshot()["networks"][0]
    assert max(unshifted["dead"]) < 0.5


def test_training_stops_between_steps_once_cancelled():
    session = TrainingSession(SMALL)
    cancel = threading.Event()
    assert session.train(3, cancel=cancel) == 3
    cancel.set()
    assert session.train(1000, cancel=cancel) == 0
    assert session.train_for(60.0, cancel=cancel) == 0
    assert session.step == 3


def _linears(model):
    return [m for m in model if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("init", ["kaiming", "xavier", "torch"])
def test_compare_mode_starts_from_identical_weights_except_the_activation(init):
    session = TrainingSession({**SMALL, "compare": True, "init": init, "bias_shift": 0.5})
    relu, leaky = session.networks
    assert [type(m).__name__ for m in relu.model] == [
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert [type(m).__name__ for m in leaky.model][2::2] == ["LeakyReLU", "LeakyReLU"]
    for a, b in zip(_linears(relu.model), _linears(leaky.model), strict=True):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    unshifted = TrainingSession({**SMALL, "compare": True, "init": init}).networks[0]
    for a, b in zip(_linears(relu.model)[:-1], _linears(unshifted.model)[:-1], strict=True):
        assert torch.allclose(a.bias, b.bias - 0.5)  # every hidden pre-activation pushed down


def test_same_seed_same_numbers_and_another_seed_other_numbers():
    runs = []
    for seed in (0, 0, 1):
        session = TrainingSession({**SMALL, "seed": seed, "activation": "rrelu"})
        session.train(5)
        runs.append(_loss(session))
    assert runs[0] == runs[1] != runs[2]


def test_live_settings_continue_and_the_others_start_again():
    session = TrainingSession(SMALL)
    session.train(3)
    assert session.update({"learning_rate": 0.1, "optimizer": "sgd"}) == {}
    assert session.step == 3
    assert session.networks[0].optimizer.param_groups[0]["lr"] == 0.1
    assert session.update({"depth": 3}) == {}
    assert session.step == 0 and len(session.snapshot()["networks"][0]["dead"]) == 3


def test_views_of_the_1d_function_and_of_a_diverged_network_are_strict_json():
    session = TrainingSession({**SMALL, "dataset": "fn1d", "compare": True})
    session.train(2)
    view = session.snapshot()
    assert view["data"]["classes"] is None
    assert len(view["networks"][1]["prediction"]["y"]) == len(
        view["networks"][1]["prediction"]["x"]
    )
    with torch.no_grad():
        _linears(session.networks[0].model)[0].weight.fill_(math.nan)
    view = session.snapshot()
    assert view["networks"][0]["train_loss"] is None
    json.dumps(view, allow_nan=False)


def test_units_fire_at_measured_rates_and_the_activation_curve_is_the_reference():
    view = TrainingSession({**SMALL, "activation": "leaky_relu", "negative_slope": 0.2}).snapshot()
    network = view["networks"][0]
    assert len(network["firing"]) == 2 and all(len(rates) == 8 for rates in network["firing"])
    assert all(0.0 <= rate <= 1.0 for rates in network["firing"] for rate in rates)
    curve = network["curve"]
    assert curve["f"][0] == pytest.approx(-4 * 0.2) and curve["df"][0] == pytest.approx(0.2)


def test_recycling_brings_dead_units_back_without_starting_again():
    # A ReLU network pushed into the dead zone stays dead; recycling every 50 steps (ReDo:
    # new incoming weights, zero outgoing ones) revives its units and lets it learn.
    setup = {"activation": "relu", "bias_shift": 1.5, "learning_rate": 0.05, "depth": 4}
    plain, repaired = TrainingSession(setup), TrainingSession({**setup, "recycle_every": 50})
    plain.train(200)
    repaired.train(150)
    assert repaired.update({"recycle_every": 50}) == {} and repaired.step == 150  # live
    repaired.train(50)
    dead = plain.snapshot()["networks"][0]
    revived = repaired.snapshot()["networks"][0]
    assert min(dead["dead"][1:]) == 1.0 and dead["recycled"] == 0
    assert revived["recycled"] > 0 and max(revived["dead"]) < min(dead["dead"][1:])
    assert revived["train_loss"] < 0.5 * dead["train_loss"]
    # The README's figures for this setup (seeded: the same on every run).
    assert dead["train_loss"] == pytest.approx(0.694, abs=1e-3)
    assert revived["train_loss"] == pytest.approx(0.039, abs=1e-3)
    errors = repaired.update({"recycle_every": -1})
    assert errors["recycle_every"].code == "range"


def test_prelu_starts_at_its_initial_slope_and_the_view_follows_it_learning():
    # PReLU's initial slope shares its name (`init`) with the builder's weight scheme: the
    # session sets it after building, for the main and the compared network alike.
    session = TrainingSession({**SMALL, "activation": "prelu", "prelu_init": 0.1, "compare": True})
    relu, prelu = session.snapshot()["networks"]
    assert relu["slopes"] is None and relu["history"]["slope"] == [None]
    assert prelu["slopes"] == [[pytest.approx(0.1)] * 8] * 2
    session.train(20)
    relu, prelu = session.snapshot()["networks"]
    assert prelu["history"]["step"] == [0, 20]
    assert prelu["history"]["slope"][0] == [pytest.approx(0.1)] * 2
    assert prelu["history"]["slope"][1] != prelu["history"]["slope"][0]
    assert [sum(s) / len(s) for s in prelu["slopes"]] == prelu["history"]["slope"][1]
    assert relu["ms_per_step"] > 0 and prelu["ms_per_step"] > 0
