"""Sweeps that cannot fit are refused up front: too many runs, or runs too big for memory."""

import dataclasses
import os

import pytest
from click.testing import CliRunner

import leaky.lab.resources
from leaky.app.cli import cli
from leaky.lab.config import resolve
from leaky.lab.experiments import EXPERIMENTS
from leaky.lab.findings import resolve_config
from leaky.lab.plan import plan
from leaky.lab.resources import (
    MAX_RUNS_PER_SWEEP,
    available_memory,
    check_memory,
    check_plan_size,
    planned_runs,
)


@pytest.mark.parametrize(
    ("experiment", "setting"),
    [
        ("vanishing", "width=1000000000"),
        ("vanishing", "batch_size=1000000000"),
        ("born-dead", "trials=1000000000"),
        ("born-dead", "widths=2,1000000"),
        ("dying", "width=1000000000"),
        ("accuracy", "batch_size=1000000000"),
        ("slope", "depth=100000000"),
        ("init", "width=1000000000"),
    ],
)
def test_a_run_too_big_for_memory_is_refused_before_the_store(tmp_path, experiment, setting):
    store = tmp_path / "s.db"
    result = CliRunner().invoke(
        cli, ["run", experiment, "--set", setting, "--quiet", "--store", str(store)]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert result.output.strip().count("\n") == 0  # one line
    key = setting.split("=")[0]
    assert f"with {setting} one run needs about" in result.output
    assert "is available" in result.output and f"lower {key}" in result.output
    assert not list(tmp_path.iterdir()), "no store (or store side file) may be left behind"


def test_a_huge_plan_is_refused_before_it_is_built(tmp_path, monkeypatch):
    def no_planning(*args, **kwargs):
        raise AssertionError("the plan must not be built")

    monkeypatch.setattr("leaky.lab.findings.plan", no_planning)
    store = tmp_path / "s.db"
    result = CliRunner().invoke(
        cli, ["run", "born-dead", "--set", "seeds=1000000", "--quiet", "--store", str(store)]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert "born-dead with seeds=1000000 plans 140,000,000" in result.output
    assert f"at most {MAX_RUNS_PER_SWEEP:,} runs" in result.output
    assert "lower seeds" in result.output
    assert not store.exists()


def _config(name, preset):
    # The config alone, as resolve_config builds it but without looking for data on disk
    # (the experiments beyond the article need MNIST, which a clone may not have).
    experiment = EXPERIMENTS[name]
    return resolve(experiment.config, dict(experiment.presets[preset]) if preset else {})


def test_planned_runs_counts_the_plan_without_building_it():
    for name, experiment in EXPERIMENTS.items():
        for preset in (None, *experiment.presets):
            config = _config(name, preset)
            assert planned_runs(name, config) == len(plan(name, config)), (name, preset)


def test_plan_size_limit_names_the_longest_list():
    config = resolve_config("born-dead", preset="tiny")  # 2 depths x 2 widths x 2 activations
    assert planned_runs("born-dead", config) == 8
    check_plan_size("born-dead", config, limit=8)
    with pytest.raises(ValueError, match=r"born-dead with depths=2,10 plans 4 .*lower depths, or"):
        check_plan_size("born-dead", dataclasses.replace(config, widths=(2,)), limit=3)


def test_each_experiment_estimates_its_memory_and_its_presets_fit():
    for name, experiment in EXPERIMENTS.items():
        assert experiment.memory is not None, name
        for preset in (None, *experiment.presets):
            config = _config(name, preset)
            assert 0 < experiment.memory(config) < 2**30, (name, preset)  # under 1 GiB


@pytest.mark.parametrize(
    ("name", "key", "small", "big"),
    [
        ("vanishing", "width", 64, 256),
        ("vanishing", "batch_size", 128, 4096),
        ("vanishing", "depths", (5,), (5, 40)),
        ("born-dead", "trials", 1000, 4000),
        ("born-dead", "grid_points", 101, 1001),
        ("dying", "depth", 2, 8),
        ("accuracy", "batch_size", 64, 1024),
        ("slope", "width", 64, 512),
        ("init", "depth", 10, 40),
    ],
)
def test_memory_estimate_grows_with_the_settings(name, key, small, big):
    experiment = EXPERIMENTS[name]
    config = resolve_config(name)
    low = experiment.memory(dataclasses.replace(config, **{key: small}))
    high = experiment.memory(dataclasses.replace(config, **{key: big}))
    assert high > low


def test_born_dead_estimate_covers_its_tensors():
    config = resolve_config("born-dead", overrides={"trials": 1000, "widths": "10"})
    # z and the layer's output: two float64 (trials, grid_points, width) tensors at least.
    assert EXPERIMENTS["born-dead"].memory(config) >= 2 * 8 * 1000 * 1001 * 10


def test_memory_check_against_a_given_amount_and_workers():
    config = resolve_config("slope", preset="tiny")
    one = EXPERIMENTS["slope"].memory(config)
    check_memory("slope", config, available=one)
    with pytest.raises(ValueError, match="one run needs about .* use smaller settings"):
        check_memory("slope", config, available=one - 1)
    with pytest.raises(ValueError, match=r"2 runs at once \(workers 2\) .*at most 1\)"):
        check_memory("slope", config, workers=2, available=one + 1)
    check_memory("slope", config, workers=2, available=2 * one)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_cli_refuses_parallel_runs_that_do_not_fit_together(tmp_path, monkeypatch):
    config = resolve_config("born-dead", preset="tiny")
    one = EXPERIMENTS["born-dead"].memory(config)
    monkeypatch.setattr(leaky.lab.resources, "available_memory", lambda: one + one // 2)
    store = tmp_path / "s.db"
    args = ["run", "born-dead", "--set", "depths=2,10", "--set", "widths=2,10"]
    args += ["--set", "trials=1000", "--set", "grid_points=201", "--store", str(store)]
    result = CliRunner().invoke(cli, [*args, "--workers", "2", "--quiet"])
    assert result.exit_code != 0 and "--workers 2" in result.output, result.output
    assert "Traceback" not in result.output and not store.exists()


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux only")
def test_available_memory_is_read_from_this_machine():
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_memory() <= total
