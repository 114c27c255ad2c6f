"""Beyond the article: the MNIST experiments' configs, runs, verdicts, figures and report part.

The verdict logic is tested on runs made up here (no training, no data); the tiny presets
run on the checked MNIST copy ($LEAKY_DATA_DIR/mnist-t10k) and skip with a reason without it.
"""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from markupsafe import escape

from leaky.app.cli import cli
from leaky.lab.experiments import EXPERIMENTS, check_results
from leaky.lab.experiments.init_depth import InitDepthConfig
from leaky.lab.experiments.rectifiers import RectifiersConfig, activation_options
from leaky.lab.experiments.saturation import SaturationConfig
from leaky.lab.findings import resolve_config, run_experiment, summarize
from leaky.lab.plan import plan
from leaky.lab.store import RunRecord, Store
from leaky.messages import get_messages
from leaky.report.page import write_report

BEYOND = [name for name, e in EXPERIMENTS.items() if e.part == "beyond"]
needs_mnist = pytest.mark.skipif(
    not (Path(os.environ.get("LEAKY_DATA_DIR", "")) / "mnist-t10k").is_dir(),
    reason="the checked MNIST test-set copy ($LEAKY_DATA_DIR/mnist-t10k) is not here",
)


def _run(experiment, cell, seed, results, layers=()):
    return RunRecord(
        run_id=f"{experiment}-{sorted(cell.items())}-{seed}",
        experiment=experiment,
        cell=cell,
        seed=seed,
        config={},
        status="finished",
        seconds=1.0,
        layers=list(layers),
        results=results,
    )


def _by_key(findings):
    return {(f.key, f.numbers.get("model", f.numbers.get("activation"))): f for f in findings}


def test_the_beyond_part_is_three_experiments_each_needing_mnist(monkeypatch, tmp_path):
    assert BEYOND == ["rectifiers", "saturation", "init-depth"]
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in BEYOND:
        with pytest.raises(ValueError, match="MNIST is not here.*leaky data fetch mnist"):
            resolve_config(name, preset="tiny")
        result = CliRunner().invoke(cli, ["run", name, "--store", str(tmp_path / "s.db")])
        assert result.exit_code == 2 and "leaky data fetch mnist" in result.output
        assert "Traceback" not in result.output and "--set data_dir" not in result.output
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        (RectifiersConfig, {"models": ("mlp", "rnn")}, "models among mlp, cnn"),
        (RectifiersConfig, {"activations": ("relu", "gelu")}, "activations among relu"),
        (RectifiersConfig, {"depth": 5}, "depth <= 4 for the CNN"),
        (RectifiersConfig, {"train_size": -1}, "train_size >= 0"),
        (SaturationConfig, {"activations": ("relu",)}, "activations among sigmoid"),
        (SaturationConfig, {"saturation_margin": 0.5}, r"saturation_margin in \(0, 0.5\)"),
        (SaturationConfig, {"init": "orthogonal"}, "init among kaiming"),
        (InitDepthConfig, {"inits": ("kaiming",)}, "inits to hold xavier and kaiming"),
        (InitDepthConfig, {"depths": ()}, "at least one depth"),
        (InitDepthConfig, {"depths": (0, 5)}, "depths >= 1"),
    ],
)
def test_bad_configs_name_the_setting(config, overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_the_very_leaky_relu_is_xu_et_als_slope():
    name, options = activation_options(RectifiersConfig(), "very_leaky_relu")
    assert name == "leaky_relu" and options["negative_slope"] == pytest.approx(1 / 5.5)


# --- verdicts on made-up runs ---------------------------------------------------------------


def _rectifier_runs(accuracy, gaps, losses, slopes):
    runs = []
    for activation, base in accuracy.items():
        for seed in range(4):
            noise = (-1.5, -0.5, 0.5, 1.5)[seed] * 1e-3
            layers = [
                (100, str(layer), "prelu_slope", value + noise)
                for layer, value in enumerate(slopes, 1)
                if activation == "prelu"
            ]
            results = {
                "test_accuracy": base + noise,
                "train_accuracy": base + gaps[activation] + noise,
                "test_loss": 0.2,
                "train_loss": losses[activation],
                "gap": gaps[activation] + noise * (1 + seed),
                "data": "made up",
            }
            runs.append(_run("rectifiers", {"model": "mlp", "activation": activation}, seed,
                             results, layers))  # fmt: skip
    return runs


def test_rectifier_verdicts_follow_the_paired_differences():
    accuracy = {"relu": 0.95, "leaky_relu": 0.96, "very_leaky_relu": 0.97, "prelu": 0.955,
                "rrelu": 0.98}  # fmt: skip
    gaps = {"relu": 0.01, "leaky_relu": 0.01, "very_leaky_relu": 0.01, "prelu": 0.04,
            "rrelu": 0.005}  # fmt: skip
    losses = {"relu": 0.1, "leaky_relu": 0.1, "very_leaky_relu": 0.1, "prelu": 0.02,
              "rrelu": 0.2}  # fmt: skip
    runs = _rectifier_runs(accuracy, gaps, losses, slopes=(0.6, 0.4, 0.2, 0.1))
    config = RectifiersConfig(models=("mlp",))
    findings = _by_key(EXPERIMENTS["rectifiers"].summarize(config, runs))
    assert findings[("rectifiers.leaky_better", "mlp")].verdict == "holds"
    assert findings[("rectifiers.very_leaky_better", "mlp")].verdict == "holds"
    assert findings[("rectifiers.rrelu_best", "mlp")].verdict == "holds"
    overfits = findings[("rectifiers.prelu_overfits", "mlp")]
    assert overfits.verdict == "holds" and overfits.numbers["lowest_train_loss"] == "prelu"
    slopes = findings[("rectifiers.prelu_slopes_by_depth", "mlp")]
    assert slopes.verdict == "holds"
    assert slopes.numbers["first_minus_last"]["difference"] == pytest.approx(0.5)
    # Every finding reads in both languages.
    for finding in findings.values():
        assert finding.detail("en") and finding.detail("ja") and finding.headline("ja")


def test_rectifier_verdicts_turn_when_the_papers_are_wrong_here():
    accuracy = {"relu": 0.97, "leaky_relu": 0.96, "very_leaky_relu": 0.96, "prelu": 0.97,
                "rrelu": 0.90}  # fmt: skip
    gaps = dict.fromkeys(accuracy, 0.02)
    losses = {"relu": 0.01, "leaky_relu": 0.1, "very_leaky_relu": 0.1, "prelu": 0.1,
              "rrelu": 0.2}  # fmt: skip
    runs = _rectifier_runs(accuracy, gaps, losses, slopes=(0.1, 0.2, 0.3, 0.5))
    findings = _by_key(EXPERIMENTS["rectifiers"].summarize(RectifiersConfig(models=("mlp",)), runs))
    assert findings[("rectifiers.leaky_better", "mlp")].verdict == "does not hold"
    assert findings[("rectifiers.very_leaky_better", "mlp")].verdict == "does not hold"
    assert findings[("rectifiers.rrelu_best", "mlp")].verdict == "does not hold"
    assert findings[("rectifiers.prelu_overfits", "mlp")].verdict == "does not hold"
    assert findings[("rectifiers.prelu_slopes_by_depth", "mlp")].verdict == "does not hold"


def _saturation_runs(top_early, accuracy):
    runs = []
    for activation, acc in accuracy.items():
        for seed in range(3):
            layers = []
            for step in (0, 100, 200, 300, 400):
                for layer in range(1, 6):
                    top = activation == "sigmoid" and layer == 5 and step >= 100
                    value = top_early + 0.01 * seed if top else 0.01 * seed
                    layers.append((step, str(layer), "saturated_fraction", value))
            results = {"test_accuracy": acc + 0.002 * seed, "data": "made up"}
            runs.append(_run("saturation", {"activation": activation}, seed, results, layers))
    return runs


def test_saturation_verdicts():
    config = SaturationConfig(steps=400)
    runs = _saturation_runs(0.9, {"sigmoid": 0.11, "tanh": 0.9, "softsign": 0.88})
    findings = _by_key(EXPERIMENTS["saturation"].summarize(config, runs))
    assert findings[("saturation.sigmoid_worst", None)].verdict == "holds"
    top = findings[("saturation.top_layer_saturates", None)]
    assert top.verdict == "holds" and top.numbers["top_minus_rest"] == pytest.approx(0.9)
    # A top layer that leads by a hair, with few outputs saturated, is no saturation.
    runs = _saturation_runs(0.05, {"sigmoid": 0.9, "tanh": 0.9, "softsign": 0.88})
    findings = _by_key(EXPERIMENTS["saturation"].summarize(config, runs))
    assert findings[("saturation.top_layer_saturates", None)].verdict == "does not hold"
    assert findings[("saturation.sigmoid_worst", None)].verdict != "holds"


def _depth_runs(differences):
    runs = []
    for depth, difference in differences.items():
        for seed in range(3):
            if difference == "noisy":  # Xavier trains in one seed and stalls in two
                xavier = (0.9, 0.1, 0.15)[seed]
            else:
                xavier = 0.9 - difference - 0.001 * seed
            for init, acc in (("xavier", xavier), ("kaiming", 0.9 + 0.001 * seed)):
                value = acc
                cell = {"activation": "relu", "init": init, "depth": depth}
                runs.append(_run("init-depth", cell, seed, {"test_accuracy": value}))
    return runs


@pytest.mark.parametrize(
    ("differences", "verdict", "matters"),
    [
        ({5: 0.0, 10: 0.0, 20: 0.05, 30: 0.5, 40: 0.8}, "holds", "20, 30, 40"),
        ({5: 0.05, 10: 0.1, 30: 0.5}, "does not hold", "5, 10, 30"),  # matters early too
        ({5: 0.0, 10: 0.0, 30: 0.0}, "does not hold", "-"),  # never matters
        ({5: 0.0, 30: "noisy"}, "not significant", "-"),  # large deep differences, no verdict
        ({5: 0.0, 10: 0.0}, "inconclusive", "-"),  # nothing beyond 20 was run
    ],
)
def test_init_depth_verdict(differences, verdict, matters):
    config = InitDepthConfig(depths=tuple(differences))
    [finding] = EXPERIMENTS["init-depth"].summarize(config, _depth_runs(differences))
    assert finding.verdict == verdict and finding.numbers["matters_depths"] == matters


# --- on the checked MNIST copy ---------------------------------------------------------------


@needs_mnist
def test_tiny_presets_run_on_mnist_and_report_beyond_the_article(tmp_path):
    with Store(tmp_path / "s.db") as store:
        findings = []
        for name in BEYOND:
            config = resolve_config(name, preset="tiny")
            run_experiment(name, config, store, progress=False)
            findings += summarize(plan(name, config), store)
        assert store.damaged_runs() == []
        runs = store.runs()
    assert {run.experiment for run in runs} == set(BEYOND)
    for run in runs:
        assert check_results(EXPERIMENTS[run.experiment], run.results) is None
        assert "stratified 8,000 / 2,000" in run.results["data"]
    assert {f.experiment for f in findings} == set(BEYOND)
    prelu = [r for r in runs if r.cell.get("activation") == "prelu"]
    assert prelu and all(any(s == "prelu_slope" for _, _, s, _ in r.layers) for r in prelu)
    for lang in ("en", "ja"):
        report = write_report(tmp_path / "s.db", tmp_path / lang, lang=lang)
        text = report.html.read_text()
        messages = get_messages(lang)
        assert messages("report.beyond_title") in text
        for name in BEYOND:
            assert (tmp_path / lang / "figures" / f"{name}.png").stat().st_size > 10_000
            assert str(escape(messages(f"experiments.{name}.title"))) in text  # as Jinja does
        assert "leaky data fetch mnist" in text and "leaky run rectifiers --store" in text
        # The split is named beside every figure (and in its title).
        assert text.count("2,000 split of its 10,000 images (seed 0)") == len(BEYOND)


def test_a_report_without_these_runs_says_how_to_make_them(tmp_path):
    with Store(tmp_path / "empty.db"):
        pass
    report = write_report(tmp_path / "empty.db", tmp_path / "out", formats=("md",))
    text = report.pages[0].read_text()
    beyond = text[text.index('<a id="beyond"></a>') :]
    assert "leaky data fetch mnist" in beyond
    for name in BEYOND:
        assert f"leaky run {name} --store" in beyond
