"""Each experiment's tiny preset runs in seconds and its summary tells the qualitative truth."""

import json

import pytest
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.app.demo import run_demo
from leaky.lab.experiments import EXPERIMENTS, VERDICTS, wilson_interval
from leaky.lab.findings import resolve_config, run_experiment, summarize
from leaky.lab.plan import plan
from leaky.lab.store import Store

ARTICLE = [name for name, e in EXPERIMENTS.items() if e.part == "article"]


def _findings(name, tmp_path, **overrides):
    """The findings by key (a per-task or per-activation finding adds its task/activation)."""
    config = resolve_config(name, preset="tiny", overrides=overrides)
    with Store(tmp_path / f"{name}.db") as store:
        run_experiment(name, config, store, progress=False)
        findings = summarize(plan(name, config), store)
    keys = [
        "/".join([f.key, *(str(f.numbers[k]) for k in ("task",) if k in f.numbers)])
        for f in findings
    ]
    assert len(set(keys)) == len(keys)
    return dict(zip(keys, findings, strict=True)), store.path


def test_vanishing_sigmoid_at_depth_20_loses_100x(tmp_path):
    findings, _ = _findings("vanishing", tmp_path)
    sigmoid = findings["vanishing.sigmoid_vanishes"]
    assert sigmoid.verdict == "holds" and sigmoid.numbers["ratio_first_to_last"] < 1e-2
    leaky = findings["vanishing.leaky_flows"]
    assert leaky.verdict == "holds" and 1e-2 <= leaky.numbers["ratio_first_to_last"] <= 1e2


def test_born_dead_relu_width_2_depth_10_and_leaky_never(tmp_path):
    findings, _ = _findings("born-dead", tmp_path)
    relu = findings["born-dead.relu_born_dead"]
    assert relu.verdict == "holds"
    assert relu.numbers["width"] == 2 and relu.numbers["depth"] == 10
    assert relu.numbers["probability"] > 0.5 and relu.numbers["ci95"][0] > 0.5
    leaky = findings["born-dead.leaky_never"]
    assert leaky.verdict == "holds" and leaky.numbers["born_dead"] == 0
    assert leaky.numbers["trials"] >= 4 * 1000


def test_born_dead_probability_grows_with_depth_and_falls_with_width(tmp_path):
    findings, _ = _findings("born-dead", tmp_path, inits="he,rai")
    cells = next(iter(findings.values())).numbers["cells"]
    p = {k: v["probability"] for k, v in cells.items()}
    assert p["relu he width=2 depth=10"] > p["relu he width=2 depth=2"]
    assert p["relu he width=10 depth=10"] < p["relu he width=2 depth=10"]
    assert p["relu rai width=2 depth=10"] < p["relu he width=2 depth=10"]


def test_rai_makes_narrow_deep_relu_networks_born_dead_less_often(tmp_path):
    findings, _ = _findings("born-dead", tmp_path, inits="he,rai")
    rai = findings["born-dead.rai_fewer"]
    assert rai.verdict == "holds" and (rai.numbers["width"], rai.numbers["depth"]) == (2, 10)
    assert rai.numbers["rai_ci95"][1] < rai.numbers["he_ci95"][0]


def test_fused_memory_leaky_keeps_less_and_relu_cannot(tmp_path):
    findings, store_path = _findings("fused-memory", tmp_path)
    leaky = findings["fused-memory.leaky_saves"]
    assert leaky.verdict == "holds" and leaky.numbers["network"] == "resnet"
    # Out of place keeps a third tensor per block; fused keeps one fewer than in place.
    numbers = leaky.numbers
    assert numbers["fused_mib"] < numbers["inplace_mib"] < numbers["out_of_place_mib"]
    assert 0.5 < numbers["ratio"] < 0.85
    relu = findings["fused-memory.relu_cannot"]
    assert relu.verdict == "holds" and relu.numbers["ratio"] == 1.0
    # The estimate checked before a sweep covers the largest count it measured.
    config = resolve_config("fused-memory", preset="tiny")
    with Store(store_path) as store:
        kept = max(r.results["saved_mib"] for r in store.runs("fused-memory"))
    assert EXPERIMENTS["fused-memory"].memory(config) > kept * 2**20


def test_every_tiny_run_writes_the_results_its_experiment_declares(tmp_path):
    # The declarations the store's check of results reads cannot drift
    # from what each _run writes: every run passes it and writes no undeclared key. A
    # diverged accuracy run writes fewer keys (no test scores) and passes too.
    from leaky.lab.experiments import check_results

    # The experiments beyond the article read MNIST from disk: tests/test_beyond.py.
    sweeps = [(name, resolve_config(name, preset="tiny")) for name in ARTICLE]
    diverged = {"tasks": "digits-cnn", "seeds": 1, "activations": "relu", "lr": 1e30}
    sweeps.append(("accuracy", resolve_config("accuracy", preset="tiny", overrides=diverged)))
    with Store(tmp_path / "s.db") as store:
        for name, config in sweeps:
            run_experiment(name, config, store, progress=False)
        assert store.damaged_runs() == []
        runs = store.runs()
    assert {run.experiment for run in runs} == set(ARTICLE)
    assert any(run.status == "diverged" for run in runs)
    for run in runs:
        experiment = EXPERIMENTS[run.experiment]
        assert experiment.results, run.experiment  # each experiment declares its results
        assert check_results(experiment, run.results) is None, (run.experiment, run.results)
        declared = {*experiment.results, *experiment.optional_results}
        assert set(run.results) <= declared, (run.experiment, run.results)


def test_wilson_interval_covers_the_estimate():
    low, high = wilson_interval(300, 1000)
    assert low < 0.3 < high and high - low < 0.06


def test_tiny_demo_writes_a_finding_for_every_experiment(tmp_path):
    # speech=False: the speech tasks' part of the demo is tested in test_speech_tasks.py
    _, path, report = run_demo(tmp_path / "demo", preset="tiny", progress=False, speech=False)
    data = json.loads(path.read_text())
    assert {f["experiment"] for f in data} == set(ARTICLE)  # beyond the article: not in it
    assert all(f["verdict"] in VERDICTS and f["numbers"] for f in data)
    assert all(f["claim"] and f["detail"] and f["key"].startswith(f["experiment"]) for f in data)
    assert (tmp_path / "demo" / "results.db").exists()
    assert report.html == tmp_path / "demo" / "report.html" and report.html.exists()
    assert (tmp_path / "demo" / "figures" / "curves.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "born-dead", "--set", "depth=3"], "Unknown config key 'depth'"),
        (["run", "born-dead", "--set", "trials=many"], "trials to be an integer"),
        (["run", "born-dead", "--set", "trials"], "key=value"),
        (["run", "born-dead", "--set", "activations=tanh"], "relu, leaky_relu"),
        (["run", "born-dead", "--set", "negative_slope=0"], "Expected negative_slope > 0"),
        (["run", "born-dead", "--set", "negative_slope=-1"], "Expected negative_slope > 0"),
        (["run", "vanishing", "--set", "stall_drop=5"], "stall_drop between 0 and 1"),
    ],
)
def test_run_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = CliRunner().invoke(cli, [*args, "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0  # one line
    assert not (tmp_path / "s.db").exists()


def test_run_prints_findings_and_resumes(tmp_path):
    args = [
        "run",
        "born-dead",
        "--set",
        "depths=2,10",
        "--set",
        "widths=2",
        "--set",
        "trials=1000",
        "--quiet",
        "--store",
        str(tmp_path / "s.db"),
    ]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    # 2 depths x 1 width x 2 activations x 2 inits (He normal, RAI)
    assert "8 runs done, 0 already" in first.output and "holds" in first.output
    second = CliRunner().invoke(cli, args)
    assert "0 runs done, 8 already" in second.output


def test_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        'depths = [2]\nwidths = [3]\ntrials = 1000\nactivations = ["relu"]\ninits = ["he"]\n'
    )
    result = CliRunner().invoke(
        cli,
        ["run", "born-dead", "--config", str(config), "--quiet", "--store", str(tmp_path / "s.db")],
    )
    assert result.exit_code == 0 and "1 runs done" in result.output


def test_list_experiments():
    result = CliRunner().invoke(cli, ["list", "experiments"])
    assert result.exit_code == 0 and "vanishing" in result.output and "born-dead" in result.output
    assert "How likely is a ReLU network to be constant at initialisation" in result.output


def test_init_kaiming_keeps_the_signal_and_xavier_loses_it(tmp_path):
    findings, _ = _findings("init", tmp_path)
    (finding,) = findings.values()
    assert finding.verdict == "holds"
    assert finding.numbers["std_last_over_first_xavier"] < 0.01
    assert 0.1 < finding.numbers["std_last_over_first_kaiming"] < 10


def test_slope_one_is_a_linear_network(tmp_path):
    findings, _ = _findings("slope", tmp_path)
    linear = findings["slope.linear_costs"]
    assert linear.numbers["accuracy_difference"] > 0.1
    by_slope = linear.numbers["by_slope"]
    assert by_slope["1"]["accuracy"][0] < 0.45  # near MNIST-1D's logistic baseline (32%)
    assert by_slope["0.01"]["dead_fraction"] == 0.0 and by_slope["1"]["dead_fraction"] == 0.0


def test_dying_relu_dies_and_the_grid_is_reported(tmp_path):
    findings, _ = _findings("dying", tmp_path)
    relu = findings["dying.relu_dies"]
    assert relu.verdict == "holds" and relu.numbers["dead_fraction"] >= 0.1
    assert relu.numbers["seeds"] == 3 and relu.numbers["ci95"][0] <= relu.numbers["dead_fraction"]
    grid = relu.numbers["cells"]
    assert set(grid) == {"relu lr=0.3 bias_shift=-1", "leaky_relu_0.01 lr=0.3 bias_shift=-1"}
    assert grid["leaky_relu_0.01 lr=0.3 bias_shift=-1"]["dead"][0] == 0.0  # by construction
    recovers = findings["dying.leaky_recovers"]
    cells = {**recovers.numbers["recovers"], **recovers.numbers["neither"]}
    cells.update(recovers.numbers["no_gain"])
    (row,) = cells.values()
    significant = row["p_value"] < 0.05 and row["difference"] > 0
    assert recovers.verdict == ("holds" if significant else "does not hold")


def test_remedies_repair_relu_and_say_what_each_recovers_and_costs(tmp_path):
    overrides = {"lrs": "0.01,0.3", "bias_shifts": "0,-1"}  # a healthy cell, and dying ones
    config = resolve_config("remedies", preset="tiny", overrides=overrides)
    with Store(tmp_path / "r.db") as store:
        run_experiment("remedies", config, store, progress=False)
        findings = summarize(plan("remedies", config), store)
        runs = store.runs("remedies")
    by_variant: dict = {}
    for run in runs:
        if (run.cell["lr"], run.cell["bias_shift"]) == (0.3, -1.0):
            by_variant.setdefault(run.cell["activation"], []).append(run)
    # The repairs ran: units recycled, networks converted when a dead unit showed.
    redo = by_variant["relu_redo"]
    recycled = [v for r in redo for _, n, v in r.metrics if n == "recycled_units"]
    assert recycled and max(recycled) > 0
    assert all(any(n == "converted" for _, n, _ in r.metrics) for r in by_variant["relu_to_leaky"])
    dead = {
        name: sum(r.results["final_dead_fraction"] for r in rs) / len(rs)
        for name, rs in by_variant.items()
    }
    assert dead["relu"] >= 0.1  # ReLU dies in this cell...
    assert dead["relu_to_leaky"] == 0.0  # ...a converted network cannot have dead units...
    assert dead["relu_redo"] < dead["relu"]  # ...and recycling revives them
    keys = sorted({(f.key, f.numbers["activation"]) for f in findings})
    assert keys == [
        ("remedies.costs_nothing", "relu_redo"),
        ("remedies.costs_nothing", "relu_to_leaky"),
        ("remedies.recovers", "relu_redo"),
        ("remedies.recovers", "relu_to_leaky"),
    ]
    for finding in findings:
        assert finding.verdict in VERDICTS
        assert finding.detail("ja") and finding.claim("en")


def test_accuracy_gives_a_paired_verdict_per_task(tmp_path):
    findings, _ = _findings("accuracy", tmp_path)
    assert len(findings) == 2
    for finding in findings.values():
        assert finding.verdict in VERDICTS
        assert finding.numbers["seeds"] == 2 and len(finding.numbers["ci95"]) == 2
    text = next(f for f in findings.values() if "text-lm" in f.claim())
    assert text.numbers["metric"] == "bits_per_char"
    assert 1.0 < text.numbers["mean_ci_by_activation"]["relu"][0] < 7.0


def test_paired_comparison_verdicts():
    from leaky.lab.experiments.stats import paired_comparison

    relu = [0.80, 0.82, 0.81, 0.79, 0.80]
    assert paired_comparison(relu, relu).verdict == "not significant"  # a tie
    assert paired_comparison(relu, [v + 0.05 for v in relu]).verdict == "holds"
    assert paired_comparison(relu, [v - 0.05 + 0.001 * i for i, v in enumerate(relu)]).verdict == (
        "does not hold"
    )
    assert paired_comparison([1.0], [2.0]).verdict == "inconclusive"
    assert paired_comparison([0.1, 0.2], [0.2, 0.3]).verdict == "inconclusive"  # 2 pairs
    noisy = paired_comparison(relu, [0.81, 0.80, 0.82, 0.80, 0.79])
    assert noisy.verdict == "not significant" and noisy.ci95[0] < 0 < noisy.ci95[1]
    lower_better = paired_comparison([2.0, 2.1, 2.05], [1.5, 1.6, 1.52], higher_is_better=False)
    assert lower_better.verdict == "holds"


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("vanishing", {"dataset": "pydoc-text"}, "classification dataset"),
        ("dying", {"dataset": "fn1d"}, "classification dataset"),
        ("slope", {"dataset": "nope"}, "Unknown dataset"),
        ("dying", {"lrs": ""}, "lrs > 0"),
        ("init", {"lr": "-1"}, "lr > 0"),
        ("accuracy", {"tasks": ""}, "at least one task"),
        ("born-dead", {"bias_std": "-1"}, "bias_std >= 0"),
        ("remedies", {"depths": "0"}, "depths >= 1"),
    ],
)
def test_configs_reject_what_cannot_run(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(name, overrides=overrides)


def test_diverged_runs_carry_no_accuracy_and_make_comparisons_inconclusive(tmp_path):
    _, path = _findings("slope", tmp_path, lr="1e30", steps="30")
    with Store(path) as store:
        diverged = [r for r in store.runs("slope") if r.status == "diverged"]
    assert diverged and all(
        r.results["test_accuracy"] != r.results["test_accuracy"] for r in diverged
    )
    from leaky.lab.experiments.accuracy import EXPERIMENT
    from leaky.lab.store import RunRecord

    config = resolve_config(
        "accuracy", preset="tiny", overrides={"tasks": "digits-cnn", "seeds": "4"}
    )
    runs = [
        RunRecord(
            f"{a}{s}",
            "accuracy",
            {"task": "digits-cnn", "activation": a},
            s,
            {},
            "diverged" if (a, s) == ("leaky_relu", 3) else "finished",
            0.0,
            results={"value": 0.9 + (0.05 if a == "leaky_relu" else 0.0) + 0.001 * s},
        )
        for a in ("relu", "leaky_relu")
        for s in range(4)
    ]
    (finding,) = EXPERIMENT.summarize(config, runs)
    assert finding.verdict == "inconclusive" and finding.numbers["diverged"]["leaky_relu"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"trials = 10\n\xff\xfe\x00junk", r"c.toml is not UTF-8 text \(byte 0xff at offset 12\)"),
        (bytes(range(256)) * 4, "c.toml is not UTF-8 text"),
        (b"trials = 10\n\x00\x01\x02", "c.toml is not valid TOML"),
    ],
)
def test_binary_config_file_is_named(tmp_path, content, message):
    from leaky.lab.config import load_toml

    config = tmp_path / "c.toml"
    config.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_toml(config)
    store = tmp_path / "s.db"
    result = CliRunner().invoke(
        cli, ["run", "born-dead", "--config", str(config), "--quiet", "--store", str(store)]
    )
    assert result.exit_code == 2 and "c.toml" in result.output, result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0
    assert not store.exists()


def test_born_dead_allows_zero_biases_as_lu_et_al_draw_them(tmp_path):
    # Lu et al. (2019) draw their figures with zero biases: a ReLU network is then dead
    # only when a layer's weights make every unit negative on the whole grid.
    findings, _ = _findings("born-dead", tmp_path, bias_std="0")
    assert findings["born-dead.leaky_never"].numbers["born_dead"] == 0
