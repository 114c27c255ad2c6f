"""TensorBoard: monitor statistics and stored runs, read back from the event files."""

import math
import sys

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("tensorboard", reason="TensorBoard logging needs the tensorboard extra")

from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)
from torch.utils.tensorboard import SummaryWriter

from leaky.app.cli import cli
from leaky.diagnosis.monitor import Monitor
from leaky.lab.findings import resolve_config, run_experiment
from leaky.lab.store import RunRecord, Store
from leaky.lab.tensorboard_runs import log_run, log_runs, run_name


def _events(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def _float32(pairs: list[tuple[int, float]]) -> list:
    # Event files hold float32 values.
    return [(step, pytest.approx(value, rel=1e-6)) for step, value in pairs]


def _identity_relu() -> torch.nn.Module:
    # Unit i is active exactly when x[:, i] > 0, so the inputs decide the statistics.
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
    return model


def _step(model: torch.nn.Module, x: torch.Tensor) -> None:
    model.zero_grad()
    model(x).sum().backward()


def test_monitor_log_writes_every_statistic_with_its_value(tmp_path):
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4), torch.nn.Sigmoid()
    )
    with torch.no_grad():
        model[0].bias[:2] = -100.0  # two ReLU units that never fire
    with Monitor(model, every=1) as monitor:  # the histogram reads every batch too
        for _ in range(3):
            _step(model, torch.randn(16, 3))
    report = monitor.report()
    with SummaryWriter(tmp_path) as writer:
        monitor.log(writer, step=7)
    events = _events(tmp_path)
    relu, sigmoid = report.sites
    expected = {
        "monitor/1/dead_fraction": 0.5,
        "monitor/1/never_active_fraction": 0.5,
        "monitor/1/output_grad_norm": relu.summary.output_grad_norm,
        "monitor/3/never_active_fraction": 0.0,
        "monitor/3/saturated_fraction": sigmoid.summary.saturated_fraction,
        "monitor/0/grad_norm": report.layers[0].grad_norm,
        "monitor/2/grad_norm": report.layers[1].grad_norm,
        "monitor/gradient_ratio": report.gradient_ratio,
    }
    for tag, value in expected.items():
        ((step, logged),) = _scalars(events, tag)
        assert step == 7 and logged == pytest.approx(value, rel=1e-6), tag
    assert _scalars(events, "monitor/3/dead_fraction") == [(7, sigmoid.summary.dead_fraction)]
    # ReLU has no saturating bound: left out, not written as 0.
    assert relu.summary.saturated_fraction is None
    assert "monitor/1/saturated_fraction" not in events.Tags()["scalars"]
    assert set(events.Tags()["histograms"]) == {"monitor/1/activations", "monitor/3/activations"}
    (histogram,) = events.Histograms("monitor/1/activations")
    value = histogram.histogram_value
    assert histogram.step == 7 and value.num == 3 * 16 * 4 == sum(value.bucket)
    assert list(value.bucket) == relu.summary.histogram
    assert value.min == pytest.approx(-4.0) and value.max >= relu.summary.maximum


def test_monitor_logs_every_n_passes_each_point_its_own_window(tmp_path):
    model = _identity_relu()
    positive, negative = torch.ones(4, 2), -torch.ones(4, 2)
    writer = SummaryWriter(tmp_path)
    with Monitor(model, log_to=writer, log_every=2) as monitor:
        for x in (positive, positive, negative, negative, positive):
            _step(model, x)
    writer.close()
    never = _scalars(_events(tmp_path), "monitor/1/never_active_fraction")
    # Passes 1-2 active, 3-4 not (a cumulative window would still say 0), 5 on leaving.
    assert never == [(2, 0.0), (4, 1.0), (5, 0.0)]
    assert monitor.batches == 1  # report() after leaving covers the last window


def test_monitor_rejects_a_writer_that_is_not_one():
    with pytest.raises(TypeError, match="SummaryWriter"):
        Monitor(torch.nn.ReLU(), log_to="runs/")
    with pytest.raises(ValueError, match="log_every"):
        Monitor(torch.nn.ReLU(), log_to=None, log_every=0)


def _record(run_id: str = "0123456789abcdef") -> RunRecord:
    return RunRecord(
        run_id,
        "vanishing",
        {"activation": "sigmoid", "depth": 10},
        3,
        {},
        "finished",
        1.0,
        metrics=[(0, "loss", 2.5), (50, "loss", 1.5), (100, "loss", None)],
        layers=[
            (0, "0", "grad_norm", 1e-4),
            (0, "9", "grad_norm", 0.2),
            (50, "0", "grad_norm", 2e-4),
        ],
        results={"test_accuracy": 0.75, "stalled": True, "note": "text", "ratio": math.nan},
    )


def test_a_stored_run_becomes_one_tensorboard_run(tmp_path):
    record = _record()
    folder = log_run(tmp_path, record)
    assert folder == tmp_path / "vanishing" / "activation=sigmoid,depth=10-seed3-01234567"
    assert folder == tmp_path / run_name(record)
    events = _events(folder)
    assert _scalars(events, "loss") == [(0, 2.5), (50, 1.5)]  # a missing value is left out
    assert _scalars(events, "layers/0/grad_norm") == _float32([(0, 1e-4), (50, 2e-4)])
    assert _scalars(events, "layers/9/grad_norm") == _float32([(0, 0.2)])
    # Numbers only (not flags, text or NaN), at the run's last step.
    assert set(events.Tags()["scalars"]) == {
        "loss",
        "layers/0/grad_norm",
        "layers/9/grad_norm",
        "results/test_accuracy",
    }
    assert _scalars(events, "results/test_accuracy") == [(100, 0.75)]
    assert [p.name for p in tmp_path.iterdir()] == ["vanishing"], "no staging folder left"


def test_a_run_already_logged_is_skipped(tmp_path):
    first = log_runs(tmp_path, [_record(), _record("fedcba9876543210")])
    assert len(first) == 2
    assert log_runs(tmp_path, [_record()]) == []
    assert len(list(first[0].iterdir())) == 1  # one event file, not two


def test_the_runner_hands_each_stored_run_to_on_saved(tmp_path):
    config = resolve_config(
        "born-dead",
        overrides={"depths": [2], "widths": [2], "trials": 100, "activations": ["relu"]},
    )
    seen = []
    with Store(tmp_path / "s.db") as store:
        sweep = run_experiment("born-dead", config, store, progress=False, on_saved=seen.append)
        stored = {run.run_id: run for run in store.runs("born-dead")}
    assert sweep.ran == len(seen) == len(stored) >= 1
    assert all(record.results == stored[record.run_id].results for record in seen)


def test_leaky_run_logs_each_run_under_its_name(tmp_path):
    logs, store = tmp_path / "tb", tmp_path / "s.db"
    args = [
        "run",
        "dying",
        *("--set", "activations=relu", "--set", "lrs=0.1", "--set", "bias_shifts=0"),
        *("--set", "steps=20", "--set", "log_every=10", "--set", "width=8"),
        *(
            "--set",
            "probe_size=64",
            "--set",
            "seeds=1",
            "--set",
            "depth=2",
            "--set",
            "dataset=spirals",
        ),
        *("--quiet", "--store", str(store), "--tensorboard", str(logs)),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"TensorBoard: 1 runs in {logs}" in result.output
    with Store(store) as opened:
        (run,) = opened.runs("dying")
    folder = logs / run_name(run)
    assert folder.parent.name == "dying" and run.run_id[:8] in folder.name
    events = _events(folder)
    for name in ("loss", "dead_fraction", "never_active_fraction"):
        stored = [(step, value) for step, metric, value in run.metrics if metric == name]
        assert _scalars(events, name) == _float32(stored), name
    assert [step for step, _ in _scalars(events, "dead_fraction")] == [0, 10, 20]
    assert _scalars(events, "results/test_accuracy") == _float32(
        [(20, run.results["test_accuracy"])]
    )
    # Resumed: nothing to run and nothing new to log; a deleted log is written again.
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and len(list(folder.iterdir())) == 1
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    CliRunner().invoke(cli, args)
    assert _scalars(_events(folder), "loss") == _scalars(events, "loss")


def test_leaky_run_tensorboard_folder_that_is_a_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "tb").write_text("")
    args = ["run", "born-dead", "--set", "depths=2", "--store", str(tmp_path / "s.db")]
    result = CliRunner().invoke(cli, [*args, "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0, result.output
    assert "is a file" in result.output and not (tmp_path / "s.db").exists()


def test_without_tensorboard_leaky_run_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    args = ["run", "born-dead", "--set", "depths=2", "--store", str(tmp_path / "s.db")]
    result = CliRunner().invoke(cli, [*args, "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0, result.output
    assert "pip install 'leaky[tensorboard]'" in result.output
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "tb").exists()


def test_a_run_gets_one_folder_whether_just_computed_or_read_back(tmp_path):
    # A fresh record holds its cell in the plan's order (lr before bias_shift); the store
    # hands it back sorted. Logging both must not make two folders of one run.
    logs = tmp_path / "tb"
    config = resolve_config("dying", preset="tiny", overrides={"lrs": "0.1", "steps": "5"})
    with Store(tmp_path / "s.db") as store:
        run_experiment("dying", config, store, progress=False, on_saved=lambda r: log_run(logs, r))
        stored = store.runs("dying")
    assert log_runs(logs, stored) == []  # every run is there already
    folders = [p for p in (logs / "dying").iterdir() if not p.name.startswith(".")]
    assert len(folders) == len(stored) >= 2
    reordered = _record()
    reordered.cell = dict(reversed(list(reordered.cell.items())))
    assert run_name(reordered) == run_name(_record())
