"""The accuracy experiment's speech tasks, their findings, the demo's choice and the report."""

from types import SimpleNamespace

import pytest

from leaky.app.demo import demo_overrides
from leaky.lab.experiments.accuracy import EXPERIMENT, _cells, _summarize
from leaky.lab.findings import resolve_config, run_experiment, summarize
from leaky.lab.plan import plan
from leaky.lab.store import Store
from leaky.report import write_report

from _helpers import write_fsdd


def _config(**overrides):
    return resolve_config("accuracy", preset="tiny", overrides=overrides)


def test_speech_tasks_also_run_tanh_and_the_others_do_not(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("george",), indices=range(6))
    config = _config(
        tasks="digits-cnn,fsdd-cnn", speech_activations="tanh,relu", data_dir=str(folder)
    )
    cells = {(c["task"], c["activation"]) for c in _cells(config)}
    assert cells == {
        ("digits-cnn", "relu"),
        ("digits-cnn", "leaky_relu"),
        ("fsdd-cnn", "relu"),
        ("fsdd-cnn", "leaky_relu"),
        ("fsdd-cnn", "tanh"),
    }
    assert "speech_activations" in EXPERIMENT.axes


def test_holdout_speaker_must_be_one_of_the_six():
    with pytest.raises(ValueError, match="holdout_speaker among FSDD's speakers .*george"):
        _config(holdout_speaker="alice")


def _runs(values):
    return [
        SimpleNamespace(
            cell={"task": task, "activation": activation},
            seed=seed,
            results={"value": value},
            status="finished",
        )
        for (task, activation), per_seed in values.items()
        for seed, value in enumerate(per_seed)
    ]


@pytest.mark.parametrize(
    ("tanh", "holdout", "verdict", "kind"),
    [
        ([0.80, 0.82, 0.79], "", "holds", "speech"),
        ([0.95, 0.96, 0.955], "theo", "does not hold", "speech_held_out"),
        ([0.90, 0.93, 0.91], "", "not significant", "speech"),
        ([0.80, 0.82], "", "inconclusive", "speech"),
    ],
)
def test_rectifiers_against_tanh_verdict(tmp_path, tanh, holdout, verdict, kind):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("george",), indices=range(6))
    config = _config(
        tasks="fsdd-mlp", speech_activations="tanh", holdout_speaker=holdout, data_dir=str(folder)
    )
    runs = _runs(
        {
            ("fsdd-mlp", "relu"): [0.91, 0.92, 0.90],
            ("fsdd-mlp", "leaky_relu"): [0.915, 0.925, 0.905],
            ("fsdd-mlp", "tanh"): tanh,
        }
    )
    findings = {f.key: f for f in _summarize(config, runs)}
    tanh_finding = findings["accuracy.rectifiers_beat_tanh"]
    assert tanh_finding.verdict == verdict and tanh_finding.numbers["kind"] == kind
    assert findings["accuracy.leaky_better"].numbers["kind"] == kind
    assert "Maas" in tanh_finding.claim() and "tanh" in tanh_finding.detail("ja")


def test_demo_adds_the_speech_tasks_only_when_the_data_is_there():
    added = demo_overrides("accuracy", "quick", speech=True)["tasks"]
    assert added[-2:] == ("fsdd-cnn", "fsdd-mlp") and "digits-cnn" in added
    assert demo_overrides("accuracy", "quick", speech=False) == {}
    assert resolve_config("accuracy", preset="quick").tasks == EXPERIMENT.config().tasks


@pytest.mark.slow
def test_speech_sweep_stores_results_and_the_report_shows_them(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("george", "theo"), indices=range(6))
    config = _config(
        tasks="fsdd-mlp,fsdd-cnn",
        speech_activations="tanh",
        speech_steps=4,
        seeds=3,
        batch_size=16,
        data_dir=str(folder),
    )
    with Store(tmp_path / "s.db") as store:
        sweep = run_experiment("accuracy", config, store, progress=False)
        findings = summarize(plan("accuracy", config), store)
        runs = store.runs("accuracy")
    assert sweep.ran == 2 * 3 * 3
    assert all(len(run.results["data_sha256"]) == 16 for run in runs)
    keys = sorted((f.key, f.numbers["task"]) for f in findings)
    assert keys == [
        ("accuracy.leaky_better", "fsdd-cnn"),
        ("accuracy.leaky_better", "fsdd-mlp"),
        ("accuracy.rectifiers_beat_tanh", "fsdd-cnn"),
        ("accuracy.rectifiers_beat_tanh", "fsdd-mlp"),
    ]
    files = write_report(tmp_path / "s.db", tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "figures" / "speech.png").exists()
    assert any(p.name == "speech.png" for p in files.figures)
    for page in (html, markdown):
        assert "Speech: the Free Spoken Digit Dataset" in page and "CC BY-SA 4.0" in page
        assert "speech recognition (FSDD, official split) (fsdd-cnn)" in page
        assert "leaky data fetch fsdd" not in page  # the data is here
    assert 'id="speech"' in html and "figures/speech.png" in markdown


@pytest.mark.slow
def test_report_without_the_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = resolve_config("born-dead", preset="tiny")
    with Store(tmp_path / "s.db") as store:
        run_experiment("born-dead", config, store, progress=False)
    write_report(tmp_path / "s.db", tmp_path / "report", lang="ja")
    page = (tmp_path / "report" / "report.md").read_text()
    assert "leaky data fetch fsdd" in page and "CC BY-SA 4.0" in page
    assert not (tmp_path / "report" / "figures" / "speech.png").exists()


@pytest.mark.slow
def test_slope_takes_the_speech_data_too(tmp_path, monkeypatch):
    write_fsdd(tmp_path / "data" / "fsdd", speakers=("george", "theo"), indices=range(6))
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path / "data"))
    config = resolve_config(
        "slope", preset="tiny", overrides={"dataset": "fsdd", "steps": 5, "slopes": "0,0.01,1"}
    )
    with Store(tmp_path / "s.db") as store:
        run_experiment("slope", config, store, progress=False)
        runs = store.runs("slope")
    assert len(runs) == 3 * 2 and all(0 <= r.results["test_accuracy"] <= 1 for r in runs)


def test_planned_runs_count_the_speech_tasks_extra_activations(tmp_path):
    from leaky.lab.resources import planned_runs

    folder = write_fsdd(tmp_path / "fsdd", speakers=("george",), indices=range(6))
    config = _config(
        tasks="digits-cnn,fsdd-cnn,fsdd-mlp", speech_activations="tanh,prelu", data_dir=str(folder)
    )
    assert planned_runs("accuracy", config) == len(plan("accuracy", config)) == 2 * (2 + 4 + 4)
