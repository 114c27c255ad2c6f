"""leaky.monitor: exact dead-unit counts, saturation, gradient flow, functional sites."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from torch import nn

import leaky
from leaky.convert import convert
from leaky.monitor import Monitor, SiteStatistics, local_derivative
from leaky.spec import SPECS

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
                leaky.init.init_layer_(linear, activation)
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
    site = SiteStatistics("sigmoid", saturation_threshold=0.01)
    x = torch.tensor([[-10.0, 0.0], [10.0, 0.1]])
    site.update(x, torch.sigmoid(x))
    summary = site.compute()
    # sigmoid'(+-10) = 4.5e-5 < 0.01: unit 0 saturated in both samples, unit 1 in none.
    assert summary.saturated_fraction == pytest.approx(0.5)


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
    assert data["verdict"] in {"vanishing", "exploding", "healthy"}
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
