"""One Sweep per command: planned once, each user data file read for hashing once."""

import hashlib
import pickle
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

import leaky.lab.findings
from leaky.app.cli import cli
from leaky.data import user_task
from leaky.lab.findings import resolve_config, run_and_summarize, run_experiment, summarize
from leaky.lab.plan import Sweep, plan, sweep_key
from leaky.lab.runner import run_one
from leaky.lab.store import Store


@pytest.fixture
def two_files(tmp_path):
    """Two .npz files of well separated blobs (two tasks, so two files to hash)."""
    paths = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        y = np.arange(48) % 3
        x = rng.normal(0, 4, (3, 5))[y] + rng.normal(0, 0.5, (48, 5))
        path = tmp_path / f"blobs{seed}.npz"
        np.savez(path, x=x.astype(np.float32), y=y)
        paths.append(path)
    return paths


def _settings(paths):
    tasks = ",".join(f"file:{p}" for p in paths)
    return {"tasks": tasks, "steps": "5", "seeds": "2", "activations": "relu,leaky_relu"}


@pytest.fixture
def counted(monkeypatch):
    """Count calls of the lab's plan() and the bytes of each file read for hashing."""
    plans: list[str] = []
    reads: Counter[str] = Counter()
    real_plan, real_digest = leaky.lab.findings.plan, hashlib.file_digest

    def counting_plan(experiment, config, **kwargs):
        plans.append(getattr(experiment, "name", experiment))
        return real_plan(experiment, config, **kwargs)

    def counting_digest(stream, digest):
        reads[stream.name] += 1
        return real_digest(stream, digest)

    monkeypatch.setattr(leaky.lab.findings, "plan", counting_plan)
    monkeypatch.setattr(hashlib, "file_digest", counting_digest)
    monkeypatch.setattr(user_task, "_FILE_HASHES", {})  # as in a new process
    return plans, reads


def test_leaky_run_plans_once_and_hashes_each_file_once(two_files, tmp_path, counted):
    plans, reads = counted
    args = ["run", "accuracy", "--quiet", "--store", str(tmp_path / "s.db")]
    for key, value in _settings(two_files).items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "8 runs done" in result.output  # 2 tasks x 2 activations x 2 seeds
    assert plans == ["accuracy"]
    assert reads == {str(path.resolve()): 1 for path in two_files}


def test_run_experiment_plans_once_and_hashes_each_file_once(two_files, tmp_path, counted):
    plans, reads = counted
    config = resolve_config("accuracy", overrides=_settings(two_files))
    with Store(tmp_path / "s.db") as store:
        result = run_experiment("accuracy", config, store, progress=False)
    assert result.ran == 8 and plans == ["accuracy"]
    assert reads == {str(path.resolve()): 1 for path in two_files}


def test_a_worker_checks_the_data_without_reading_it_again(two_files, tmp_path, counted):
    _, reads = counted
    sweep = plan("accuracy", resolve_config("accuracy", overrides=_settings(two_files)))
    spec = pickle.loads(pickle.dumps(sweep[0]))  # what a worker process receives
    user_task._FILE_HASHES.clear()  # a fresh process knows no hash
    reads.clear()
    run_one(spec)
    assert not reads
    np.savez(two_files[0], x=np.zeros((6, 5), np.float32), y=np.arange(6) % 3)
    user_task._FILE_HASHES.clear()
    with pytest.raises(ValueError, match="changed while its sweep ran"):
        run_one(pickle.loads(pickle.dumps(sweep[0])))


def test_the_sweep_is_the_plan_and_summarize_takes_it(tmp_path):
    config = resolve_config("born-dead", preset="tiny")
    sweep = plan("born-dead", config)
    assert isinstance(sweep, Sweep) and sweep.name == "born-dead" and len(sweep) == 8
    assert [s.run_id for s in sweep] == [s.run_id for s in plan("born-dead", config)]
    assert sweep[:2] == list(sweep.runs[:2])
    with Store(tmp_path / "s.db") as store:
        run_experiment("born-dead", config, store, progress=False)
        assert {r.run_id for r in sweep.stored_runs(store)} == sweep.run_ids
        assert [f.key for f in summarize(sweep, store)] == [
            f.key for f in sweep.experiment.summarize(config, store.runs("born-dead"))
        ]


def test_the_report_groups_stored_runs_by_the_plans_own_key(tmp_path):
    from leaky.report.sweeps import _sweep_key

    config = resolve_config("born-dead", preset="tiny")
    sweep = plan("born-dead", config, threads=1)
    with Store(tmp_path / "s.db") as store:
        run_experiment("born-dead", config, store, progress=False)
        keys = {_sweep_key(sweep.experiment, run) for run in store.runs("born-dead")}
    assert keys == {sweep.key}
    assert sweep.key != plan("born-dead", config, threads=2).key
    grown = sweep_key(
        sweep.experiment, {**sweep[0].config, "seeds": 9}, version=None, threads=1, data=None
    )
    assert grown == sweep_key(sweep.experiment, sweep[0].config, version=None, threads="1", data={})


def test_run_and_summarize_refuses_before_it_opens_the_store(tmp_path):
    store = tmp_path / "s.db"
    with pytest.raises(ValueError, match="workers"):
        run_and_summarize("born-dead", store, preset="tiny", workers=10_000)
    assert not store.exists()
