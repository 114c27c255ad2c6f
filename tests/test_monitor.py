"""leaky.diagnosis.monitor: exact dead-unit counts, saturation, gradient flow, functional sites."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from torch import nn

import leaky
from leaky.core.spec import SPECS
from leaky.diagnosis.convert import convert
from leaky.diagnosis.monitor import Monitor, SiteStatistics, local_derivative

from _helpers import BasicBlock

DEAD = [1, 4]


def _model_with_dead_units(activation: nn.Module | None = None) -> nn.Sequential:
    """Units 1 and 4 of the first layer get pre-activation -1 for every input in [0, 1]^4."""
    torch.manual_seed(0)
    first = nn.Linear(4, 6)
    with torch.no_grad():
        first.weight.uniform_(0.1, 1.0)
        first.bias.fill_(0.5)  # every other unit is always active
        first.weight[DEAD] = 0.0
        first.bias[DEAD] = -1.0
    return nn.Sequential(
        first, activation or nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 1)
    )


def _run(model: nn.Module, batches: int = 5, monitor: Monitor | None = None, **kwargs):
    monitor = monitor or Monitor(model, **kwargs)
    with monitor:
        for i in range(batches):
            x = torch.rand(32, 4, generator=torch.Generator().manual_seed(i))
            model(x).pow(2).mean().backward()
    return monitor.report()


def test_exactly_the_forced_units_are_dead_and_never_active():
    report = _run(_model_with_dead_units())
    site = next(row for row in report.sites if row.name == "1")
    assert site.summary.dead_units == DEAD
    assert site.summary.never_active_units == DEAD
    assert site.summary.dead == 2 and site.summary.dead_fraction == pytest.approx(2 / 6)
    assert site.summary.samples == 5 * 32
    assert report.dead_units["1"] == DEAD


def test_a_part_called_without_its_parent_is_a_forward_pass_of_its_own():
    # A LightningModule's training_step calls self.net(x) and never the LightningModule:
    # each outermost call is one pass, and a site keeps its one name across passes.
    wrapper = nn.Module()
    wrapper.net = _model_with_dead_units()
    with Monitor(wrapper) as monitor:
        for i in range(5):
            x = torch.rand(32, 4, generator=torch.Generator().manual_seed(i))
            wrapper.net(x).pow(2).mean().backward()
    report = monitor.report()
    assert report.batches == monitor.passes == 5
    assert [row.name for row in report.sites] == ["net.1", "net.3"]
    assert report.dead_units["net.1"] == DEAD
    assert report.sites[0].summary.samples == 5 * 32


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.5])
def test_tau_dormant_units_match_a_hand_computation(tau):
    # Known outputs: a Leaky ReLU site fed fixed pre-activations, two batches.
    batches = [
        torch.tensor([[0.0, 1.0, -2.0, 0.01, 4.0], [0.0, 3.0, -2.0, -0.03, 4.0]]),
        torch.tensor([[0.0, 2.0, -6.0, 0.02, 4.0], [0.0, 2.0, 2.0, 0.0, 4.0]]),
    ]
    model = nn.Sequential(nn.Identity(), nn.LeakyReLU(0.5))
    with Monitor(model, every=1, dormant_tau=tau) as monitor:
        for x in batches:
            model(x)
    summary = monitor.report().sites[0].summary
    outputs = torch.cat([torch.nn.functional.leaky_relu(x, 0.5) for x in batches]).double()
    mean_abs = outputs.abs().mean(0)  # per unit: 0, 2, 1.5, 0.0075, 4
    score = mean_abs / mean_abs.mean()
    expected = [i for i in range(5) if score[i] <= tau]
    assert summary.dormant_units == expected
    assert summary.dormant_fraction == len(expected) / 5
    assert summary.dead is None  # a slope of 0.5 cannot die, yet units can be dormant
    assert expected == {0.0: [0], 0.1: [0, 3], 0.5: [0, 3]}[tau]
    assert monitor.report().dormant_units == ({"1": expected} if expected else {})


def test_the_near_zero_rate_is_the_share_of_outputs_within_its_bound():
    model = nn.Sequential(nn.Identity(), nn.LeakyReLU(0.1))
    x = torch.tensor([[0.0, 0.05, -0.05, 2.0], [-1.0, 0.001, 0.2, -0.5]])
    with Monitor(model, every=1, near_zero=0.01) as monitor:
        model(x)
    summary = monitor.report().sites[0].summary
    y = torch.nn.functional.leaky_relu(x, 0.1)  # |y| <= 0.01: 0.0, -0.005, 0.001
    assert summary.near_zero_fraction == int((y.abs() <= 0.01).sum()) / y.numel() == 3 / 8
    assert "near 0" in str(monitor.report()) and "|output| <= 0.01" in str(monitor.report())
    assert monitor.report().to_dict()["sites"][0]["near_zero_fraction"] == 3 / 8
    with pytest.raises(ValueError, match="near_zero to be a number >= 0"):
        Monitor(model, near_zero=-1.0)


def test_a_bad_dormant_tau_is_refused_when_the_monitor_is_made():
    with pytest.raises(ValueError, match="dormant_tau in \\[0, 1\\)"):
        Monitor(nn.ReLU(), dormant_tau=1.5)


def test_dormant_scores_are_read_on_the_moment_batches_only():
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    with Monitor(model, every=2) as monitor:
        model(torch.tensor([[1.0, 1.0]]))  # read
        model(torch.tensor([[0.0, 100.0]]))  # not read: unit 0 still scores 1
    assert monitor.report().sites[0].summary.dormant_units == []


def test_after_converting_to_leaky_relu_no_unit_is_dead():
    model = _model_with_dead_units()
    convert(model, "leaky_relu", negative_slope=0.01)
    report = _run(model)
    site = next(row for row in report.sites if row.name == "1")
    assert site.summary.dead is None and site.summary.dead_units == []
    assert site.summary.never_active_units == DEAD  # inactive, but gradient still flows
    assert "can't die" in str(report)


def test_leaky_relu_with_slope_zero_can_die():
    report = _run(_model_with_dead_units(leaky.nn.LeakyReLU(0.0)))
    assert report.sites[0].summary.dead_units == DEAD


def test_prelu_dies_only_where_its_slope_is_zero():
    prelu = leaky.nn.PReLU(6, init=0.25)
    with torch.no_grad():
        prelu.weight[1] = 0.0
    report = _run(_model_with_dead_units(prelu))
    assert report.sites[0].summary.dead_units == [1]


def test_windows_reset_and_memory_does_not_grow():
    model = _model_with_dead_units()
    monitor = Monitor(model)
    _run(model, batches=2, monitor=monitor)
    sizes = {n: [t.numel() for t in s.state().values()] for n, s in monitor.sites.items()}
    _run(model, batches=20, monitor=monitor)
    assert sizes == {n: [t.numel() for t in s.state().values()] for n, s in monitor.sites.items()}
    assert monitor.report().batches == 22
    monitor.reset()
    assert monitor.report().batches == 0
    _run(model, batches=1, monitor=monitor)
    assert monitor.report().sites[0].summary.samples == 32


def test_sigmoid_mlp_vanishes_and_leaky_relu_with_kaiming_does_not():
    def mlp(activation: str, kaiming: bool) -> nn.Sequential:
        torch.manual_seed(0)
        layers = []
        for _ in range(20):
            linear = nn.Linear(64, 64)
            if kaiming:
                leaky.core.init.init_layer_(linear, activation)
            layers += [linear, leaky.get_activation(activation)]
        return nn.Sequential(*layers, nn.Linear(64, 1))

    x = torch.randn(128, 64)
    reports = {}
    for name, model in [("sigmoid", mlp("sigmoid", False)), ("leaky", mlp("leaky_relu", True))]:
        with Monitor(model) as monitor:
            model(x).pow(2).mean().backward()
        reports[name] = monitor.report()
    assert reports["sigmoid"].verdict == "vanishing"
    assert reports["sigmoid"].gradient_ratio < 1e-6
    assert reports["leaky"].verdict == "healthy"
    assert 0.1 < reports["leaky"].gradient_ratio < 10


def test_saturation_of_a_sigmoid_site():
    site = SiteStatistics("sigmoid", saturation_margin=0.05)
    x = torch.tensor([[-10.0, 0.0], [10.0, 0.1], [-3.0, 2.9]])
    site.update(x, torch.sigmoid(x))
    summary = site.compute()
    # Outputs below 0.05 or above 0.95 (|x| > 2.94) are saturated: unit 0 in all three
    # samples, unit 1 in none.
    assert summary.saturated_fraction == pytest.approx(0.5)
    assert summary.saturated_units == 1


def test_conv_units_are_channels():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight[2] = 0.0
        conv.bias[2] = -1.0
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    with Monitor(model) as monitor:
        model(torch.rand(5, 1, 8, 8)).sum().backward()
    summary = monitor.report().sites[0].summary
    assert summary.units == 4 and summary.samples == 5 * 8 * 8
    assert 2 in summary.dead_units


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(4, 8), nn.Linear(8, 8), nn.ReLU()

    def forward(self, x):
        x = torch_f.relu(self.fc1(x))
        x = self.act(self.fc2(x))
        return torch.sigmoid(x).sum(dim=1) + x.tanh().sum(dim=1)


def test_functional_calls_are_found_and_named_and_modules_not_double_counted():
    model = nn.Sequential(_Functional())
    with Monitor(model) as monitor:
        model(torch.randn(16, 4)).sum().backward()
    report = monitor.report()
    names = {row.name: row for row in report.sites}
    assert set(names) == {"0.act", "0:relu#0", "0:sigmoid#0", "0:tanh#0"}
    assert names["0:relu#0"].functional and not names["0.act"].functional
    assert names["0:relu#0"].summary.units == 8
    assert names["0:relu#0"].summary.output_grad_norm is not None
    assert "(fn)" in str(report)


def test_without_functional_watching_the_report_says_so():
    model = nn.Sequential(_Functional())
    with Monitor(model, functional=False) as monitor:
        model(torch.randn(16, 4))
    report = monitor.report()
    assert [row.name for row in report.sites] == ["0.act"]
    assert "not watched" in str(report)


def test_gradient_norms_match_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    x = torch.randn(10, 3)
    with Monitor(model) as monitor:
        model(x).sum().backward()
    report = monitor.report()
    norms = {row.name: row.grad_norm for row in report.layers}
    assert norms["0"] == pytest.approx(model[0].weight.grad.norm().item(), rel=1e-6)
    assert norms["2"] == pytest.approx(model[2].weight.grad.norm().item(), rel=1e-6)
    h = model[1](model[0](x)).detach().requires_grad_()
    model[2](h).sum().backward()
    assert report.sites[0].summary.output_grad_norm == pytest.approx(h.grad.norm().item(), rel=1e-6)


def test_mean_std_histogram():
    site = SiteStatistics("relu", bins=4, hist_range=(-2.0, 2.0))
    y = torch.tensor([[-3.0, 0.5], [1.5, 5.0]])
    site.update(y, y)
    s = site.compute()
    assert s.mean == pytest.approx(1.0) and s.std == pytest.approx(float(np.std([-3, 0.5, 1.5, 5])))
    assert s.histogram == [1, 0, 0, 1, 1, 1]
    assert (s.minimum, s.maximum) == (-3.0, 5.0)


def _sampled_counts(batches, kind, bins, hist_range, max_elements, near_zero=0.01):
    # The histogram and near-zero count of every batch's sample, each counted on its own.
    from leaky.diagnosis.monitor.reductions import histogram_counts, sample_values

    histogram, near = torch.zeros(bins + 2, dtype=torch.int64), 0
    for y in batches:
        part = sample_values(y, max_elements)
        histogram += histogram_counts(part, bins, hist_range, 0)
        magnitude = part if kind == "relu" else part.abs()
        near += int((magnitude <= near_zero).sum())
    return histogram.tolist(), near


@pytest.mark.parametrize(
    ("kind", "max_elements", "shapes"),
    [
        ("relu", 64, [(32, 8)] * 40 + [(3, 8)]),  # 16 samples a buffer, many buffers, a short one
        ("tanh", 0, [(20, 8), (12000, 8), (20, 8)]),  # 96,000 values: more than a buffer holds
        ("leaky_relu", 16384, [(256, 512), (64, 512), (256, 512)]),  # sampled, then whole
    ],
)
def test_held_histogram_values_count_as_each_batch_on_its_own(kind, max_elements, shapes):
    # A batch's sampled values wait in a buffer and are counted later, together: whenever
    # the states are read the counts equal each batch's counted at once, NaN and inf included.
    gen = torch.Generator().manual_seed(0)
    site = SiteStatistics(kind, bins=8, hist_range=(-2.0, 2.0), hist_max_elements=max_elements)
    seen = []
    for i, shape in enumerate(shapes):
        y = torch.randn(shape, generator=gen) * 2
        y.view(-1)[::7] = 0.005  # near zero
        if i == 1:
            y.view(-1)[:3] = torch.tensor([math.nan, math.inf, -math.inf])
        y = torch.relu(y) if kind == "relu" else y
        site.update(y, y)
        seen.append(y)
        histogram, near = _sampled_counts(seen, kind, 8, (-2.0, 2.0), max_elements)
        if i in (0, 23) or i == len(shapes) - 1:  # reading the states counts what is held
            state = site.state()
            assert state["histogram"].tolist() == histogram
            assert int(state["near_zero_count"]) == near
    summary = site.compute()
    assert summary.histogram == histogram
    assert summary.near_zero_fraction == pytest.approx(near / int(site.state()["near_zero_read"]))


def test_held_histogram_values_follow_dtype_changes_merges_and_resets():
    a, b = SiteStatistics("tanh", bins=4), SiteStatistics("tanh", bins=4)
    y32 = torch.linspace(-3, 3, 40).view(8, 5)
    a.update(y32, y32)
    a.update(y32.double(), y32.double())  # a new dtype: what was held is counted first
    b.update(y32, y32)
    a.merge(b)  # the other site's held values count too
    expected, _ = _sampled_counts([y32, y32, y32], "tanh", 4, (-4.0, 4.0), 0)
    assert a.compute().histogram == expected
    b.update(y32, y32)
    b.reset()  # a new window: held values are dropped
    b.update(y32[:2], y32[:2])
    assert b.compute().histogram == _sampled_counts([y32[:2]], "tanh", 4, (-4.0, 4.0), 0)[0]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_local_derivatives_match_the_reference(spec):
    x = torch.linspace(-7, 7, 301, dtype=torch.float64) + 1e-3
    module = leaky.get_activation(spec.name).double().eval()
    y = module(x)
    ours = local_derivative(spec.name, x, y, module)
    np.testing.assert_allclose(ours.numpy(), spec.derivative(x.numpy()), rtol=1e-9, atol=1e-12)


def test_report_to_dict_str_and_plot(tmp_path):
    report = _run(_model_with_dead_units())
    data = report.to_dict()
    json.dumps(data)
    assert data["verdict"] == "dying"  # the model is built with dead units
    assert data["sites"][0]["dead_units"] == DEAD
    text = str(report)
    assert "never active" in text and "Gradient flow" in text
    path = report.plot(tmp_path / "monitor.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_monitor_detaches_its_hooks():
    model = _model_with_dead_units()
    monitor = Monitor(model).attach()
    monitor.detach()
    model(torch.rand(4, 4)).sum().backward()
    assert monitor.report().batches == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_an_exception_inside_forward_leaves_no_mode_active():
    class Broken(nn.Module):
        def forward(self, x):
            torch.relu(x)
            raise RuntimeError("boom")

    model = nn.Sequential(Broken())
    with Monitor(model), pytest.raises(RuntimeError, match="boom"):
        model(torch.randn(2, 3))
    assert torch.overrides._get_current_function_mode() is None


def test_not_a_module_is_a_type_error():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        Monitor(lambda x: x)


def test_nan_and_empty_batches_do_not_break_counts():
    site = SiteStatistics("relu")
    site.update(torch.full((3, 2), math.nan), torch.full((3, 2), math.nan))
    site.update(torch.zeros(0, 2), torch.zeros(0, 2))
    assert site.compute().never_active == 2


@pytest.mark.parametrize(
    "activation",
    [
        nn.ReLU(),
        nn.ReLU6(),
        nn.LeakyReLU(),
        nn.PReLU(),
        nn.RReLU(),
        nn.ELU(),
        nn.GELU(),
        nn.SiLU(),
        nn.Sigmoid(),
        nn.Tanh(),
        nn.Hardtanh(),
        nn.Hardsigmoid(),
        nn.Hardswish(),
        nn.Mish(),
        nn.Softplus(),
        leaky.nn.LeakyReLU(),
        leaky.nn.PReLU(),
        leaky.nn.RReLU(),
    ],
    ids=lambda m: f"{type(m).__module__.split('.')[0]}.{type(m).__name__}",
)
def test_every_supported_module_is_a_site(activation):
    model = nn.Sequential(nn.Linear(3, 5), activation, nn.Linear(5, 1))
    with Monitor(model) as monitor:
        model(torch.randn(8, 3)).sum().backward()
    rows = monitor.report().sites
    assert [row.name for row in rows] == ["1"]
    assert rows[0].summary.units == 5 and rows[0].summary.output_grad_norm is not None


def test_a_shared_module_at_two_widths_gets_two_sites():
    act = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 5), act, nn.Linear(5, 7), act, nn.Linear(7, 1))
    with Monitor(model) as monitor:
        model(torch.randn(8, 3)).sum().backward()
    assert sorted(row.summary.units for row in monitor.report().sites) == [5, 7]


def test_a_site_first_called_in_a_lean_pass_takes_the_units_of_its_layer():
    # From batch 3 on (a pass that runs only the counting hooks) the shared ReLU is also
    # called after a narrower Linear: a second site, whose units are the features of
    # (N, L, F) outputs, not dimension 1.
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wide, self.narrow, self.relu = nn.Linear(4, 6), nn.Linear(4, 3), nn.ReLU()
            self.both = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, narrow = self.relu(self.wide(x)).sum(-1), self.narrow(x)
            return y + (self.relu(narrow) if self.both else narrow).sum(-1)

    model = Shared()
    with Monitor(model, every=16) as monitor:
        for i in range(6):
            model.both = i >= 3
            model(torch.randn(8, 5, 4)).sum().backward()
    sites = {row.name: row.summary for row in monitor.report().sites}
    assert (sites["relu"].units, sites["relu#1"].units) == (6, 3)
    assert sites["relu#1"].unit_dim_from == "Linear" and sites["relu#1"].samples == 3 * 8 * 5


def test_one_module_called_twice_is_two_sites_and_hides_no_dead_unit():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act = nn.Linear(8, 16), nn.Linear(16, 16), nn.ReLU()
            with torch.no_grad():
                self.a.bias[:4] = -100.0

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))

    model = Twice()
    with Monitor(model) as monitor:
        for _ in range(2):
            model(torch.randn(32, 8)).sum().backward()
    report = monitor.report()
    assert report.dead_units.get("act") == [0, 1, 2, 3]
    assert {row.name for row in report.sites} == {"act", "act#1"}
    assert all(row.summary.samples == 64 for row in report.sites)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_moments_do_not_overflow(dtype):
    torch.manual_seed(0)
    x = (torch.rand(256, 1024) * 4).to(dtype)
    site = SiteStatistics("relu")
    site.update(x, torch.relu(x))
    s = site.compute()
    assert s.mean == pytest.approx(x.float().mean().item(), rel=1e-2)
    assert s.std == pytest.approx(x.float().std().item(), rel=1e-2)


def test_states_follow_the_device_of_the_activations():
    site = SiteStatistics("relu")
    site.update(torch.zeros(2, 3, device="meta"), torch.zeros(2, 3, device="meta"))
    assert site.units is None  # meta tensors carry no values: nothing counted, no crash
    y = torch.randn(4, 3)
    site.update(y, torch.relu(y))
    assert {t.device.type for t in site.state().values()} == {"cpu"}


def test_backward_after_detach_changes_nothing():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with Monitor(model) as monitor:
        loss = model(torch.randn(8, 3)).sum()
    loss.backward()
    report = monitor.report()
    assert report.sites[0].summary.output_grad_norm is None
    assert all(row.grad_norm is None for row in report.layers)


def test_an_empty_window_calls_no_unit_dead():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with Monitor(model) as monitor:
        model(torch.randn(0, 3))
    summary = monitor.report().sites[0].summary
    assert summary.samples == 0 and summary.dead is None and summary.never_active_units == []


def test_windows_merge_into_the_statistics_of_all_their_data():
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    whole, first, second = (SiteStatistics("relu") for _ in range(3))
    whole.update(x, torch.relu(x))
    first.update(x[:32], torch.relu(x[:32]))
    second.update(x[32:], torch.relu(x[32:]))
    first.merge(second)
    merged, expected = first.compute(), whole.compute()
    assert merged.histogram == expected.histogram and merged.samples == expected.samples
    assert merged.never_active_units == expected.never_active_units
    assert (merged.minimum, merged.maximum) == (expected.minimum, expected.maximum)
    assert merged.mean == pytest.approx(expected.mean)


# ---------------------------------------------------------------- non-finite values


def _three_layers() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))


def test_nan_weights_give_a_non_finite_verdict_naming_the_layer():
    model = _three_layers()
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    report = _run(model)
    assert report.verdict == "non-finite"
    assert report.verdict_site == "2"  # the weight comes before the Tanh that shows it
    assert "'2'" in report.verdict_sentence() and "Verdict: non-finite" in str(report)
    # Outputs' NaN and inf are read with the moments: the first of every 16 batches.
    assert (
        report.sites[1].summary.nonfinite_batches == 1
        and report.sites[0].summary.nonfinite_batches == 0
    )
    every_batch = _run(_three_layers(), every=1)
    assert every_batch.sites[1].summary.nonfinite_batches == 0
    model[2].weight.requires_grad_(False)
    read_all = _run(model, every=1)
    assert [row.summary.nonfinite_batches for row in read_all.sites] == [0, 5]


def test_nan_in_a_bias_is_named_at_the_first_activation_that_shows_it():
    model = _three_layers()
    with torch.no_grad():
        model[2].bias[3] = math.nan
    report = _run(model)
    assert (report.verdict, report.verdict_site) == ("non-finite", "3")


def test_nan_inputs_give_a_non_finite_verdict_naming_the_input():
    model = _three_layers()
    with Monitor(model) as monitor:
        x = torch.randn(16, 4)
        x[3, 1] = math.nan
        model(x).sum().backward()
    report = monitor.report()
    assert (report.verdict, report.verdict_site) == ("non-finite", "input")
    assert report.input_nonfinite == 1
    json.dumps(report.to_dict(), allow_nan=False)  # strict JSON: NaN statistics become null


def test_non_finite_gradients_alone_are_named_where_backward_meets_them():
    model = _three_layers()
    with Monitor(model) as monitor:
        (model(torch.randn(16, 4)).sum() * math.nan).backward()
    report = monitor.report()
    assert report.verdict == "non-finite"
    assert report.verdict_site == "4"  # the output layer, the first that backward reaches


def test_a_nan_gradient_ratio_is_never_healthy():
    from leaky.diagnosis.monitor import LayerRow, MonitorReport

    report = MonitorReport(
        sites=[], layers=[LayerRow("a", math.nan), LayerRow("b", 1.0)], batches=1
    )
    assert report.verdict == "non-finite"


# ---------------------------------------------------------------- saturation


def _sigmoid_mlp(top_bias: float | None, width: int = 200) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    fan_in = 40
    for _ in range(4):
        layers += [nn.Linear(fan_in, width), nn.Sigmoid()]
        fan_in = width
    if top_bias is not None:
        with torch.no_grad():
            layers[-2].bias.fill_(top_bias)
    return nn.Sequential(*layers, nn.Linear(width, 10))


def test_a_top_layer_driven_to_zero_is_named_saturated():
    # Glorot and Bengio (2010): the top sigmoid layer's outputs sink towards 0. At a mean
    # near 0.03 (pre-activations near -3.5) sigmoid' is still about 0.03, above the old
    # |f'| < 0.01 rule; its outputs lie within 5% of the bound 0 of the range.
    model = _sigmoid_mlp(top_bias=-3.5)
    report = _run_mnist_like(model)
    top = next(row for row in report.sites if row.name == "7")
    assert 0.01 < top.summary.mean < 0.06
    assert top.summary.saturated_fraction > 0.8
    assert top.summary.saturated_units > 150
    assert all(row.summary.saturated_fraction < 0.1 for row in report.sites if row.name != "7")
    assert (report.verdict, report.verdict_site) == ("saturated", "7")
    assert "saturated: '7' (sigmoid)" in str(report)


def test_a_sigmoid_network_at_its_start_is_not_saturated():
    report = _run_mnist_like(_sigmoid_mlp(top_bias=None))
    assert report.saturated_sites == [] and report.verdict != "saturated"


def _run_mnist_like(model: nn.Module, batches: int = 3) -> "leaky.diagnosis.monitor.MonitorReport":
    generator = torch.Generator().manual_seed(0)
    with Monitor(model) as monitor:
        for _ in range(batches):
            x = torch.randn(64, 40, generator=generator)
            y = torch.randint(0, 10, (64,), generator=generator)
            model.zero_grad()
            torch_f.cross_entropy(model(x), y).backward()
    return monitor.report()


def test_saturation_counts_are_exact_and_read_every_value():
    site = SiteStatistics("tanh", hist_max_elements=4)
    y = torch.tensor([[0.95, -0.95, 0.0], [0.899, 0.901, -1.0]] * 50)
    site.update(torch.atanh(y.clamp(-0.999, 0.999)), y)
    summary = site.compute()
    # |y| >= 0.9 is within 5% of tanh's range (width 2) from a bound: 4 of 6 per row pair,
    # and only unit 1 is saturated in more than half of its samples.
    assert summary.saturated_fraction == pytest.approx(4 / 6)
    assert summary.saturated_units == 1


def test_relu6_saturates_only_at_six():
    site = SiteStatistics("relu6")
    y = torch.tensor([[0.0, 6.0], [0.1, 5.9]])
    site.update(y, y)
    assert site.compute().saturated_fraction == pytest.approx(0.5)


def test_a_bad_saturation_margin_is_refused():
    with pytest.raises(ValueError, match="saturation_margin"):
        Monitor(nn.Linear(2, 2), saturation_margin=0.7)


@pytest.mark.slow
def test_glorot_bengio_sigmoid_mlp_on_mnist1d_saturates_its_top_layer():
    # The Glorot and Bengio (2010) setup at a size that trains in about a minute: four
    # sigmoid layers of 1000 units, PyTorch's default init, plain SGD on MNIST-1D. The top
    # layer's mean output falls from 0.5 to near 0 while the accuracy stays at chance;
    # the monitor names that layer.
    mnist1d = pytest.importorskip("mnist1d.data")
    data = mnist1d.make_dataset(mnist1d.get_dataset_args())
    x = torch.tensor(data["x"], dtype=torch.float32)
    y = torch.tensor(data["y"]).long()
    model = _sigmoid_mlp(top_bias=None, width=1000)
    with Monitor(model) as monitor:
        model(x[:256])
    before = monitor.report()
    assert 0.4 < before.sites[-1].summary.mean < 0.6 and before.verdict != "saturated"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    generator = torch.Generator().manual_seed(0)
    monitor = Monitor(model)
    for step in range(200):
        if step == 180:
            monitor.attach()  # the window: the last 20 steps
        rows = torch.randint(0, len(x), (32,), generator=generator)
        loss = torch_f.cross_entropy(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    monitor.detach()
    report = monitor.report()
    top = report.sites[-1]
    assert top.name == "7" and top.summary.mean < 0.05
    assert top.summary.saturated_fraction > 0.9
    assert (report.verdict, report.verdict_site) == ("saturated", "7")
    with torch.no_grad():
        accuracy = (model(x[:1000]).argmax(dim=1) == y[:1000]).float().mean().item()
    assert accuracy < 0.2  # at chance (10 classes)


# ---------------------------------------------------------------- forward order


class _Encoder(nn.Module):
    """A stock nn.TransformerEncoder between a Linear embedding and a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=24, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def _sequence_run(model: nn.Module, **options) -> "leaky.diagnosis.monitor.MonitorReport":
    with Monitor(model, **options) as monitor:
        model(torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0))).sum().backward()
    return monitor.report()


def test_transformer_encoder_layers_are_in_forward_order_and_the_head_is_last():
    model = _Encoder()
    report = _sequence_run(model)
    block = [
        "self_attn",
        "self_attn.out_proj",  # registered after linear1/linear2, used before them
        "linear1",
        "linear2",
    ]
    expected = ["embed"]
    for i in range(2):
        expected += [f"encoder.layers.{i}.{name}" for name in block]
    assert [row.name for row in report.layers] == [*expected, "head"]
    norms = {row.name: row.grad_norm for row in report.layers}
    assert report.gradient_ratio == pytest.approx(norms["embed"] / norms["head"])
    assert norms["embed"] == pytest.approx(model.embed.weight.grad.norm().item(), rel=1e-6)
    assert [row.name for row in report.sites] == [
        "encoder.layers.0:relu#0",
        "encoder.layers.1:relu#0",
    ]


def test_a_hand_written_block_is_listed_in_the_order_it_runs():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # registered in an order unlike the order of calls
            self.mlp_out, self.mlp_in = nn.Linear(32, 16), nn.Linear(16, 32)
            self.out, self.qkv = nn.Linear(16, 16), nn.Linear(16, 48)
            self.act = nn.GELU()

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            attention = torch.softmax(q @ k.transpose(1, 2) / 4, dim=-1)
            x = x + self.out(attention @ v)
            return x + self.mlp_out(self.act(self.mlp_in(x)))

    model = nn.Sequential(Block(), Block(), nn.Linear(16, 2))
    report = _sequence_run(nn.Sequential(nn.Linear(6, 16), model))
    names = [row.name for row in report.layers]
    first = ["qkv", "out", "mlp_in", "mlp_out"]
    assert names == ["0", *[f"1.0.{n}" for n in first], *[f"1.1.{n}" for n in first], "1.2"]
    assert [row.order for row in report.layers] == sorted(row.order for row in report.layers)


def _resnet() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        BasicBlock(8),
        BasicBlock(8),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def test_a_module_called_twice_per_block_is_listed_in_forward_order():
    with Monitor(_resnet()) as monitor:
        monitor.model(torch.randn(2, 3, 6, 6)).sum().backward()
    report = monitor.report()
    assert [row.name for row in report.sites] == ["1.relu", "1.relu#1", "2.relu", "2.relu#1"]
    # Units are the channels: each ReLU's input came from a BatchNorm2d (the residual add
    # is in place), so dimension 1 holds them.
    assert {(row.summary.units, row.summary.unit_dim_from) for row in report.sites} == {
        (8, "BatchNorm2d")
    }
    assert report.layers[0].name == "0" and report.layers[-1].name == "5"


# ---------------------------------------------------------------- unit dimension


def test_sequence_features_are_the_units_after_a_linear_layer():
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 2))
    report = _sequence_run(model)  # inputs (N=4, L=5, F=6)
    summary = report.sites[0].summary
    assert (summary.units, summary.unit_dim, summary.unit_dim_from) == (10, 2, "Linear")
    assert summary.samples == 4 * 5
    assert "2 (Linear)" in str(report)


def test_unit_dim_can_be_given():
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 2))
    summary = _sequence_run(model, unit_dim=1).sites[0].summary
    assert (summary.units, summary.unit_dim, summary.unit_dim_from) == (5, 1, "given")


def test_functional_activations_after_a_linear_layer_use_its_features():
    report = _sequence_run(_Encoder())
    assert {(row.summary.units, row.summary.unit_dim_from) for row in report.sites} == {
        (24, "Linear")
    }


def test_without_a_known_producer_the_default_dimension_is_used_and_said():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x):
            return torch.relu(x * self.scale)

    report = _sequence_run(nn.Sequential(Scaled()))
    summary = report.sites[0].summary
    assert (summary.units, summary.unit_dim, summary.unit_dim_from) == (5, 1, "default")
    assert "1 (default)" in str(report)


def test_conv_units_are_channels_by_inference():
    model = nn.Sequential(nn.Conv1d(6, 7, 1), nn.Tanh())
    with Monitor(model) as monitor:
        model(torch.randn(3, 6, 9))
    summary = monitor.report().sites[0].summary
    assert (summary.units, summary.unit_dim_from) == (7, "Conv1d")


# ---------------------------------------------------------------- not monitored


class _SqueezeExcite(nn.Module):
    """MobileNetV3's SE block: pool, 1x1 conv, ReLU, 1x1 conv, Hardsigmoid, scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // 2, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // 2, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        scale = torch_f.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.relu(self.fc1(scale))))


def test_an_se_block_with_hardsigmoid_is_monitored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Hardswish(), _SqueezeExcite(8), nn.Flatten())
    with Monitor(model) as monitor:
        model(torch.randn(4, 3, 6, 6)).sum().backward()
    report = monitor.report()
    rows = {row.name: row for row in report.sites}
    assert list(rows) == ["1", "2.relu", "2.gate"]
    assert rows["2.gate"].kind == "hardsigmoid" and rows["2.gate"].summary.units == 8
    assert rows["2.gate"].summary.unit_dim_from == "Conv2d"
    assert rows["2.gate"].summary.saturated_fraction is not None
    assert rows["1"].kind == "hardswish" and report.not_monitored == []
    assert [row.name for row in report.layers] == ["0", "2.fc1", "2.fc2"]


def test_activations_without_a_spec_row_are_listed_as_not_monitored():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.selu = nn.Linear(4, 4), nn.SELU()

        def forward(self, x):
            return torch_f.logsigmoid(self.selu(self.fc(x)))

    model = nn.Sequential(Odd(), nn.Softmax(dim=1))
    with Monitor(model) as monitor:
        model(torch.randn(3, 4)).sum().backward()
    report = monitor.report()
    assert report.sites == []
    assert report.not_monitored == ["0.selu (SELU)", "1 (Softmax)", "0:log_sigmoid (fn)"]
    assert "Not monitored" in str(report) and "0.selu (SELU)" in str(report)
    assert report.to_dict()["not_monitored"] == report.not_monitored


# ---------------------------------------------------------------- the plot


def test_plot_axes_are_in_forward_order_and_gradients_have_their_own_axes(tmp_path):
    from leaky.diagnosis.monitor.plot import monitor_figure

    with Monitor(_resnet()) as monitor:
        monitor.model(torch.randn(2, 3, 6, 6)).sum().backward()
    report = monitor.report()
    units, weights, outputs = monitor_figure(report).axes
    site_labels = [f"{row.name} ({row.kind})" for row in report.sites]
    assert [t.get_text() for t in units.get_xticklabels()] == site_labels
    assert [t.get_text() for t in weights.get_xticklabels()] == [r.name for r in report.layers]
    assert [t.get_text() for t in outputs.get_xticklabels()] == site_labels
    (weight_line,) = weights.get_lines()
    assert list(weight_line.get_ydata()) == [row.grad_norm for row in report.layers]
    (output_line,) = outputs.get_lines()
    assert list(output_line.get_ydata()) == [r.summary.output_grad_norm for r in report.sites]
    path = report.plot(tmp_path / "monitor.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- every k-th batch


def test_counts_read_every_batch_while_moments_read_every_kth():
    # Unit 0 is active in batch 1 only, which every=3 does not read for the moments.
    stats, every_batch = SiteStatistics("relu", every=3), SiteStatistics("relu")
    batches = [torch.tensor([[-1.0, 1.0]]), torch.tensor([[2.0, 1.0]]), torch.tensor([[-1.0, 9.0]])]
    batches.append(torch.tensor([[-1.0, -5.0]]))
    read = [stats.update(y, torch.relu(y)) for y in batches]
    for y in batches:
        every_batch.update(y, torch.relu(y))
    assert read == [True, False, False, True]
    summary, expected = stats.compute(), every_batch.compute()
    assert summary.never_active_units == expected.never_active_units == []
    assert summary.dead_units == expected.dead_units == [] and summary.samples == 4
    assert (summary.minimum, summary.maximum) == (0.0, 1.0)  # read with the moments: 0 and 3
    assert sum(summary.histogram) == 4  # batches 0 and 3: two values each
    assert summary.mean == pytest.approx((0 + 1 + 0 + 0) / 4)
    stats.reset()
    assert stats.update(batches[1], torch.relu(batches[1]))  # a new window reads at once


def test_non_finite_outputs_are_counted_in_the_batches_that_read_the_extremes():
    # every=2 reads batches 0 and 2: the inf of batch 2, not the NaN of batch 1.
    values = (0.5, math.nan, math.inf, 0.1)
    for every, expected in ((2, 1), (1, 2)):
        stats = SiteStatistics("relu", every=every)
        for value in values:
            y = torch.full((2, 3), value)
            stats.update(y, torch.relu(y))
        assert stats.compute().nonfinite_batches == expected


def test_the_extremes_are_read_with_the_moments_and_at_the_first_values_of_a_window():
    batches = [torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 9.0]]), torch.tensor([[4.0, 5.0]])]
    for kind in ("relu", "leaky_relu", "tanh"):
        stats = SiteStatistics(kind, every=2)
        for y in batches:
            stats.update(y, y)
        assert (stats.compute().minimum, stats.compute().maximum) == (1.0, 5.0)  # batches 0, 2
    # A window whose moment batch was empty reads the extremes of its next batch.
    relu = SiteStatistics("relu", every=3)
    for y in (torch.empty(0, 2), torch.tensor([[1.5, 2.0]]), torch.tensor([[0.5, 3.0]])):
        relu.update(y, y)
    assert (relu.compute().minimum, relu.compute().maximum) == (1.5, 2.0)


def _mode_seen(model: nn.Module) -> list[bool]:
    # Whether a TorchFunctionMode (the monitor's call watcher) was active in each forward.
    seen: list[bool] = []
    model.register_forward_pre_hook(
        lambda mod, args: seen.append(torch._C._is_torch_function_mode_enabled())
    )
    return seen


class _FunctionalReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch_f.relu(self.linear(x))


@pytest.mark.parametrize("every", [1, 4])
def test_the_call_watcher_runs_every_16th_batch_unless_it_found_a_function(every):
    modules_only = _model_with_dead_units()
    seen = _mode_seen(modules_only[0])
    report = _run(modules_only, batches=20, every=every)
    assert [i for i, watched in enumerate(seen) if watched] == [0, 16]
    assert [row.name for row in report.layers] == ["0", "2", "4"]  # order still found
    functional = _FunctionalReLU()
    seen = _mode_seen(functional.linear)
    report = _run(functional, batches=20, every=every)
    assert seen == [True] * 20  # every batch: the function's counts are exact
    assert report.sites[0].functional and report.sites[0].summary.samples == 20 * 32


def _rarely_firing(shape: tuple[int, ...], unit_dim: int, seed: int) -> torch.Tensor:
    # Pre-activation offsets: units 0-7 from -5 (fires almost never) to -2 (fires on some
    # batches), the others +1 (fire at once). After the first batch at most a fifth of the
    # units are left to read.
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.ones(shape[unit_dim])
    offsets[:8] = torch.linspace(-5.0, -2.0, 8)
    view = [1] * len(shape)
    view[unit_dim] = -1
    return torch.randn(shape, generator=generator) + offsets.view(view)


@pytest.mark.parametrize(
    ("shape", "unit_dim", "layout"),
    [
        ((64, 40), -1, "contiguous"),
        ((8, 6, 40), -1, "contiguous"),
        ((4, 40, 3, 3), 1, "contiguous"),
        ((4, 40, 3, 3), 1, "channels_last"),
        ((40, 64), 1, "transposed"),  # a non-contiguous (64, 40) view
    ],
)
@pytest.mark.parametrize("kind", ["relu", "leaky_relu", "gelu", "relu6", "tanh"])
def test_units_not_yet_fired_are_read_on_every_batch_and_counts_stay_exact(
    shape, unit_dim, layout, kind
):
    # Between moment batches only the units that have not fired are read again: the counts
    # (never active, dead, saturated) equal reading every unit of every batch.
    module = next(row for row in SPECS if row.name == kind).torch_modules[0]()
    sparse, every_batch = (SiteStatistics(kind, unit_dim=unit_dim, every=e) for e in (16, 1))
    for i in range(20):
        x = _rarely_firing(shape, unit_dim if layout != "transposed" else 0, i)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        if layout == "transposed":
            x = x.t()
        y = module(x)
        sparse.update(x, y, module)
        every_batch.update(x, y, module)
    got, expected = sparse.compute(), every_batch.compute()
    assert got.never_active_units == expected.never_active_units
    assert got.dead_units == expected.dead_units
    assert got.saturated_units == expected.saturated_units
    assert got.samples == expected.samples
    if kind == "relu":  # some units fire only late in the window, some never
        assert 0 < len(got.never_active_units) < 8
        assert sparse.update(x, y, module) is False  # a batch between moment batches


def test_a_nan_in_a_unit_not_yet_fired_leaves_its_other_values_counted():
    # Units 0-7 fire in the first batch; 8 and 9 are read alone in the next, where a NaN
    # sits beside unit 8's first positive output.
    stats = SiteStatistics("relu", unit_dim=-1, every=16)
    first = torch.cat([torch.ones(2, 8), -torch.ones(2, 2)], dim=1)
    stats.update(first, first)
    second = torch.cat([torch.ones(2, 8), torch.tensor([[math.nan, math.nan], [2.0, -1.0]])], 1)
    stats.update(second, second)
    assert stats.compute().never_active_units == [9]
    assert stats.compute().nonfinite_batches == 0  # read with the extremes, on batch 0 only


def test_non_finite_inputs_are_counted_across_checks_and_windows():
    model = _three_layers()
    with Monitor(model) as monitor:
        for i in range(70):  # more than one check of pending inputs (64 at a time)
            x = torch.randn(4, 4)
            if i in (3, 66):
                x[0, 0] = math.nan if i == 3 else -math.inf
            model(x)
        assert monitor.report().input_nonfinite == 2
        monitor.reset()
        model(torch.full((4, 4), math.inf))
        model(torch.ones(4, 4))
    assert monitor.report().input_nonfinite == 1


def test_monitor_every_gives_the_same_counts_and_reads_gradients_on_its_batches():
    every_batch = _run(_model_with_dead_units(), batches=5, every=1)
    model = _model_with_dead_units()
    monitor = Monitor(model, every=2)
    norms = []
    with monitor:
        for i in range(5):
            x = torch.rand(32, 4, generator=torch.Generator().manual_seed(i))
            model(x).pow(2).mean().backward()
            if i % 2 == 0:
                norms.append(float(model[0].weight.grad.norm()))
            model.zero_grad()
    report = monitor.report()
    for row, expected in zip(report.sites, every_batch.sites, strict=True):
        assert row.summary.never_active_units == expected.summary.never_active_units
        assert row.summary.dead_units == expected.summary.dead_units
        assert row.summary.samples == expected.summary.samples == 5 * 32
        assert sum(row.summary.histogram) == 3 * 32 * row.summary.units  # batches 0, 2, 4
    assert report.layers[0].grad_norm == pytest.approx(math.sqrt(np.mean(np.square(norms))))


@pytest.mark.parametrize("every, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_a_bad_every_is_refused(every, error):
    with pytest.raises(error, match="`every`"):
        Monitor(nn.Linear(2, 2), every=every)


def test_a_host_count_must_be_summed():
    from leaky.diagnosis.monitor.metric import Metric

    with pytest.raises(ValueError, match="summed"):
        Metric().add_state("n", 0, "max")


# ---------------------------------------------------------------- the bench suite's models


def _active_counts(model: nn.Module, x: torch.Tensor, module: nn.Module, unit_dim: int):
    """Per call of `module`: which units had an output > 0 anywhere in the batch."""
    seen = []
    handle = module.register_forward_hook(
        lambda m, a, out: seen.append(
            (out > 0).transpose(0, unit_dim).reshape(out.shape[unit_dim], -1).any(1).clone()
        )
    )
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen


def test_resnet18_sites_count_channels_exactly():
    from leaky.lab.benchmark_models import build

    model, x, loss = build("resnet18", "relu", quick=True)
    with torch.no_grad():  # make some channels die, so the counts have something to find
        model[0].weight[:4] = 0.0
        model[1].bias[:4] = -1.0
    with Monitor(model, every=4) as monitor:
        for _ in range(2):
            loss(model(x)).backward()
    report = monitor.report()
    rows = {row.name: row.summary for row in report.sites}
    assert "3.act" in rows and "3.act#1" in rows  # one module called twice per block
    for name, summary in rows.items():
        assert summary.unit_dim == 1, name
    assert rows["2"].units == 16 and rows["9.act#1"].units == 128
    active = _active_counts(model, x, model[2], 1)[0]
    assert rows["2"].never_active_units == torch.nonzero(~active).flatten().tolist() == [0, 1, 2, 3]
    assert rows["2"].dead_units == [0, 1, 2, 3] and rows["2"].samples == 2 * 8 * 32 * 32


def test_transformer_block_units_are_the_mlp_features():
    from leaky.lab.benchmark_models import build

    model, x, loss = build("transformer", "relu", quick=True)
    with torch.no_grad():
        model.block.mlp[0].bias[[3, 7]] = -100.0  # two features never active
    with Monitor(model) as monitor:
        loss(model(x)).backward()
    report = monitor.report()
    (row,) = report.sites
    assert row.name == "block.mlp.1" and row.summary.unit_dim == 2
    assert row.summary.units == 4 * 64 and row.summary.samples == 8 * 32
    assert row.summary.unit_dim_from == "Linear"
    active = _active_counts(model, x, model.block.mlp[1], 2)[0]
    assert row.summary.never_active_units == torch.nonzero(~active).flatten().tolist() == [3, 7]
    assert [layer.name for layer in report.layers][-1] == "head"


def test_firing_counts_are_kept_only_when_asked_and_match_a_bool_count():
    model = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.1), nn.Linear(6, 1))
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(3))
    with Monitor(model, count_active=True) as counting:
        model(x).sum().backward()
    with torch.no_grad():
        expected = (model[1](model[0](x)) > 0).sum(0)
    assert counting.sites["1"].active.tolist() == expected.tolist()
    with Monitor(model) as plain:
        model(x).sum().backward()
    assert not hasattr(plain.sites["1"], "active")  # no count unless asked
    assert plain.report().sites[0].summary.never_active_units == [
        unit for unit, n in enumerate(expected.tolist()) if n == 0
    ]


def test_the_time_spent_on_statistics_is_counted_in_forward_and_backward():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1))
    monitor = Monitor(model, every=1)
    assert monitor.statistics_seconds == 0.0
    with monitor:
        out = model(torch.randn(8, 4))
        after_forward = monitor.statistics_seconds
        out.sum().backward()
    assert 0.0 < after_forward < monitor.statistics_seconds  # backward read gradients too
    spent = monitor.statistics_seconds
    model(torch.randn(8, 4)).sum().backward()  # detached: nothing more is counted
    assert monitor.statistics_seconds == spent


# ---------------------------------------------------------------- foreign modules (Hugging Face)
# transformers is not a dependency: these copy its class names and forward passes.


class NewGELUActivation(nn.Module):
    """transformers.activations.NewGELUActivation: GPT-2's tanh-approximate GELU."""

    def forward(self, input):
        inner = math.sqrt(2.0 / math.pi) * (input + 0.044715 * torch.pow(input, 3.0))
        return 0.5 * input * (1.0 + torch.tanh(inner))


class SquashActivation(nn.Module):
    """An activation module neither the spec table nor the monitor's name list knows."""

    def forward(self, x):
        return torch.tanh(x) * 2.0


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: a Linear whose weight is stored transposed."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = (*x.size()[:-1], self.nf)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class _GPT2MLP(nn.Module):
    """transformers' GPT2MLP: Conv1D, NewGELUActivation, Conv1D, dropout."""

    def __init__(self, intermediate_size: int, embed_dim: int) -> None:
        super().__init__()
        self.c_fc = Conv1D(intermediate_size, embed_dim)
        self.c_proj = Conv1D(embed_dim, intermediate_size)
        self.act = NewGELUActivation()
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states):
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden_states))))


def _wide_gelu_mlp(activation) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 64), activation(), nn.Linear(64, 64), activation(), nn.Linear(64, 1)
    )
    with torch.no_grad():
        model[0].weight.mul_(8)
        model[2].weight.mul_(8)
    return model


def _five_batches(model: nn.Module) -> "leaky.diagnosis.monitor.MonitorReport":
    with Monitor(model, every=1) as monitor:
        for i in range(5):
            x = torch.randn(128, 16, generator=torch.Generator().manual_seed(i))
            model(x).pow(2).mean().backward()
    return monitor.report()


def test_hugging_face_gelu_is_a_gelu_site_not_a_saturated_tanh():
    report = _five_batches(_wide_gelu_mlp(NewGELUActivation))
    reference = _five_batches(_wide_gelu_mlp(lambda: nn.GELU(approximate="tanh")))
    assert reference.verdict != "saturated"
    assert report.verdict == reference.verdict and report.saturated_sites == []
    assert [(row.name, row.kind, row.functional) for row in report.sites] == [
        ("1", "gelu", False),
        ("3", "gelu", False),
    ]
    assert report.not_monitored == []
    for row, ref in zip(report.sites, reference.sites, strict=True):
        assert row.summary.never_active_units == ref.summary.never_active_units
        assert row.summary.dead_units == ref.summary.dead_units
        assert row.summary.mean == pytest.approx(ref.summary.mean, rel=1e-3)
    assert "tanh" not in str(report)


def test_calls_inside_an_unknown_activation_module_are_not_sites_of_their_own():
    model = nn.Sequential(nn.Linear(4, 8), SquashActivation(), nn.Linear(8, 1))
    with Monitor(model) as monitor:
        model(torch.randn(3, 4)).sum().backward()
    report = monitor.report()
    assert report.sites == []  # not the torch.tanh inside it
    assert report.not_monitored == ["1 (SquashActivation)"]
    assert "1 (SquashActivation)" in str(report)


def test_units_after_a_hugging_face_conv1d_are_its_features():
    model = nn.Sequential(Conv1D(10, 6), nn.ReLU(), _GPT2MLP(24, 10))
    report = _sequence_run(model)  # inputs (N=4, L=5, F=6)
    rows = {row.name: row.summary for row in report.sites}
    assert list(rows) == ["1", "2.act"]
    assert (rows["1"].units, rows["1"].unit_dim, rows["1"].unit_dim_from) == (10, 2, "Conv1D")
    assert (rows["2.act"].units, rows["2.act"].unit_dim_from) == (24, "Conv1D")
    assert rows["2.act"].samples == 4 * 5
    assert "2 (Conv1D)" in str(report)
    assert [row.name for row in report.layers] == ["0", "2.c_fc", "2.c_proj"]


def test_a_square_matrix_applied_to_the_last_dimension_gives_its_features():
    class Mixer(nn.Module):  # (N, L, F) @ (F, F): the features stay last
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 6))

        def forward(self, x):
            return x @ self.weight

    summary = _sequence_run(nn.Sequential(Mixer(), nn.ReLU())).sites[0].summary
    assert (summary.units, summary.unit_dim, summary.unit_dim_from) == (6, 2, "Mixer")


def test_the_report_says_how_to_set_a_unit_dim_it_could_not_infer():
    report = _sequence_run(nn.Sequential(nn.ReLU(), nn.Linear(6, 2)))  # ReLU of the input
    assert report.sites[0].summary.unit_dim_from == "default"
    assert "unit_dim=" in str(report)
    assert "unit_dim=" not in str(_sequence_run(nn.Sequential(nn.Linear(6, 4), nn.ReLU())))


# ---------------------------------------------------------------- recurrent layers


class _RecurrentClassifier(nn.Module):
    def __init__(self, recurrent: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.rnn = recurrent
        self.relu = nn.ReLU()
        self.head = nn.Linear(recurrent.hidden_size * (1 + recurrent.bidirectional), 3)

    def forward(self, tokens):
        out, _ = self.rnn(self.embed(tokens))
        return self.head(self.relu(out[:, -1]))


def test_a_two_layer_lstm_has_its_weights_in_the_gradient_norms_and_its_gates_listed():
    torch.manual_seed(0)
    model = _RecurrentClassifier(nn.LSTM(8, 12, num_layers=2, batch_first=True))
    tokens = torch.randint(0, 20, (4, 7), generator=torch.Generator().manual_seed(0))
    with Monitor(model, every=1) as monitor:
        model(tokens).sum().backward()
    report = monitor.report()
    norms = {row.name: row.grad_norm for row in report.layers}
    assert list(norms) == [
        "embed",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.weight_ih_l1",
        "rnn.weight_hh_l1",
        "head",
    ]
    for name in ("weight_ih_l0", "weight_hh_l1"):
        expected = getattr(model.rnn, name).grad.norm().item()
        assert norms[f"rnn.{name}"] == pytest.approx(expected, rel=1e-5)
    assert [row.name for row in report.sites] == ["relu"]
    assert len(report.not_monitored) == 1 and report.not_monitored[0].startswith("rnn (LSTM")
    text = str(report)
    assert "rnn.weight_hh_l1" in text and "rnn (LSTM" in text and "gate" in text


@pytest.mark.parametrize(
    ("recurrent", "gates"),
    [
        (nn.GRU(8, 5, bidirectional=True, batch_first=True), "rnn (GRU: sigmoid reset"),
        (nn.RNN(8, 5, nonlinearity="relu", batch_first=True), "rnn (RNN: relu"),
    ],
)
def test_grus_and_rnns_are_layers_and_their_gates_are_not_monitored(recurrent, gates):
    model = _RecurrentClassifier(recurrent)
    with Monitor(model) as monitor:
        model(torch.randint(0, 20, (3, 4))).sum().backward()
    report = monitor.report()
    layers = [row.name for row in report.layers]
    assert "rnn.weight_ih_l0" in layers and "rnn.weight_hh_l0" in layers
    assert ("rnn.weight_hh_l0_reverse" in layers) == recurrent.bidirectional
    assert all(row.grad_norm is not None for row in report.layers)
    assert report.not_monitored[0].startswith(gates)


# ---------------------------------------------------------------- percentages in the text


def test_a_small_non_zero_share_is_never_printed_as_zero_percent():
    torch.manual_seed(0)
    first = nn.Linear(4, 1000)
    with torch.no_grad():
        first.weight[:5] = 0.0
        first.bias[:5] = -1.0
        first.bias[5:] = 10.0  # every other unit always active
    report = _run(nn.Sequential(first, nn.ReLU(), nn.Linear(1000, 1)))
    assert report.sites[0].summary.dead == 5
    text = str(report)
    assert "5 (0.5%)" in text and "(0%)" not in text
    first = nn.Linear(4, 4000)
    with torch.no_grad():
        first.bias.fill_(10.0)
        first.weight[0] = 0.0
        first.bias[0] = -1.0
    report = _run(nn.Sequential(first, nn.ReLU(), nn.Linear(4000, 1)), saturation_margin=0.001)
    text = str(report)
    assert "1 (<0.1%)" in text and "(0%)" not in text and "0.0%" not in text
    assert "within 0.1% of the range" in text


def test_dead_units_above_the_threshold_are_the_verdict_dying():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 40), nn.ReLU(), nn.Linear(40, 1))
    with torch.no_grad():
        model[0].bias[:6] = -100.0  # 6 of 40 units (15%) can never fire
    with Monitor(model) as monitor:
        for _ in range(4):
            model(torch.randn(32, 8)).pow(2).mean().backward()
    report = monitor.report()
    assert report.dying_sites == ["1"] and report.verdict == "dying"
    assert report.verdict_site == "1"
    assert report.verdict_sentence().startswith("dying: 15% of the units at '1' (relu) are dead")
    assert report.to_dict()["verdict"] == "dying"
    with Monitor(model, dying_above=0.2) as monitor:
        model(torch.randn(32, 8)).pow(2).mean().backward()
    assert monitor.report().verdict == "healthy"
    with pytest.raises(ValueError, match="dying_above"):
        Monitor(model, dying_above=0)


class _TiedLM(nn.Module):
    """An embedding whose weight the output layer shares (GPT-2's tied lm_head)."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(30, 16)
        self.block = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
        self.lm_head = nn.Linear(16, 30, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        return self.lm_head(self.block(self.wte(ids)))


def test_a_tied_output_layer_is_last_and_the_ratio_names_its_layers():
    torch.manual_seed(0)
    model = _TiedLM()
    with Monitor(model) as monitor:
        for _ in range(2):
            ids = torch.randint(0, 30, (4, 7))
            nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    report = monitor.report()
    assert [row.name for row in report.layers] == ["wte", "block.0", "block.2", "lm_head"]
    assert report.gradient_ratio_layers == ("wte", "lm_head")
    assert "Gradient flow: first/last layer = " in str(report)
    assert "('wte' / 'lm_head')" in str(report)


def test_a_step_watch_names_a_site_it_cannot_recycle_once_and_goes_on():
    from leaky.integrations.step_watch import RecycleWarning, StepWatch

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.relu, self.head = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)
            with torch.no_grad():
                self.fc.bias[:2] = -50.0  # dead, but after a residual addition

        def forward(self, x):
            return self.head(self.relu(self.fc(x) + x))

    torch.manual_seed(0)
    model = Residual()
    watch = StepWatch(model, log_every=1, recycle_every=1)
    watch.start()
    x = torch.rand(8, 4)
    with pytest.warns(RecycleWarning, match=r"'relu'.*add \(a torch call in the top-level"):
        model(x).sum().backward()
        metrics = watch.after_optimizer_step(0)
    assert metrics["leaky/recycled_units"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecycleWarning)  # named once only
        model(x).sum().backward()
        watch.after_optimizer_step(1)
    assert watch.history.refused == ["relu"]
