"""Store, runner and resume: one transaction per run, skips, SIGKILL, determinism."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leaky.lab.config import resolve
from leaky.lab.experiments import get_experiment
from leaky.lab.findings import resolve_config, run_experiment
from leaky.lab.plan import plan
from leaky.lab.runner import execute
from leaky.lab.store import SCHEMA_VERSION, RunRecord, Store

from _helpers import stored_runs

_FAR_FUTURE = 4_102_444_800.0  # a lease expiry in 2100 (seconds since the epoch)


def _record(run_id="r1", **kwargs):
    base = dict(
        run_id=run_id,
        experiment="e",
        cell={"a": 1},
        seed=0,
        config={"x": 1},
        status="finished",
        seconds=0.1,
        metrics=[(0, "loss", 1.5), (1, "loss", float("nan"))],
        layers=[(0, "0", "grad_norm", 0.5)],
        results={"acc": 0.9},
        versions={"torch": "x"},
    )
    base.update(kwargs)
    return RunRecord(**base)


def test_store_round_trip_and_duplicates_are_ignored(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.save(_record())
        store.save(_record(results={"acc": 0.1}))  # same id: kept as first written
        (run,) = store.runs("e")
    assert run.results == {"acc": 0.9} and run.layers == [(0, "0", "grad_norm", 0.5)]
    assert run.metrics[0] == (0, "loss", 1.5) and math.isnan(run.metrics[1][2])  # NaN survives
    with Store(tmp_path / "s.db") as store:
        assert store.run_ids() == {"r1"}


def test_not_a_store(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello, this is not sqlite at all" * 10)
    with pytest.raises(ValueError, match="not a leaky results store"):
        Store(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ValueError, match="not a leaky results store"):
        Store(other)
    with pytest.raises(ValueError, match="is a folder"):
        Store(tmp_path)


def test_unknown_schema_version(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ValueError, match=f"schema version 99.*reads version {SCHEMA_VERSION}"):
        Store(path)


def test_plan_ids_are_stable_and_distinct():
    config = resolve_config("born-dead", preset="tiny")
    a, b = plan("born-dead", config), plan("born-dead", config)
    assert [s.run_id for s in a] == [s.run_id for s in b]
    assert len({s.run_id for s in a}) == len(a) == 8
    other = plan("born-dead", resolve(get_experiment("born-dead").config, {"trials": 1001}))
    assert not {s.run_id for s in a} & {s.run_id for s in other}


def test_rerun_skips_finished_runs(tmp_path):
    config = resolve_config("born-dead", preset="tiny")
    with Store(tmp_path / "s.db") as store:
        first = run_experiment("born-dead", config, store, progress=False)
        second = run_experiment("born-dead", config, store, progress=False)
    assert (first.ran, first.skipped) == (8, 0) and (second.ran, second.skipped) == (0, 8)


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    config = resolve_config("vanishing", preset="tiny", overrides={"depths": "3", "steps": "5"})
    stores = []
    for name in ("a.db", "b.db"):
        with Store(tmp_path / name) as store:
            run_experiment("vanishing", config, store, progress=False)
            stores.append({r.run_id: (r.metrics, r.layers, r.results) for r in store.runs()})
    assert stores[0] == stores[1] and stores[0]


def test_diverged_runs_are_stored_and_the_sweep_goes_on(tmp_path):
    config = resolve_config(
        "vanishing",
        preset="tiny",
        overrides={"lr": "1e30", "depths": "3", "steps": "20", "seeds": "1"},
    )
    with Store(tmp_path / "s.db") as store:
        sweep = run_experiment("vanishing", config, store, progress=False)
        statuses = {r.cell["activation"]: r.status for r in store.runs()}
    assert sweep.ran == 2 and sweep.diverged >= 1 and "diverged" in statuses.values()


def test_workers_must_fit_the_machine(tmp_path):
    with Store(tmp_path / "s.db") as store, pytest.raises(ValueError, match="workers"):
        execute([], store, workers=10_000)


def test_a_sweep_killed_with_sigkill_resumes_to_the_same_store(tmp_path):
    args = [
        "--set",
        "depths=2,3,4,5,6,7,8,9,10,11,12",
        "--set",
        "widths=2,3",
        "--set",
        "trials=1000",
        "--set",
        "grid_points=201",
        "--set",
        "inits=he",
        "--quiet",
    ]
    command = [sys.executable, "-m", "leaky", "run", "born-dead", *args]
    killed = tmp_path / "killed.db"
    process = subprocess.Popen([*command, "--store", str(killed)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while stored_runs(killed) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = stored_runs(killed)
    assert 0 < partial < 44, "the kill should land part-way through the sweep"
    subprocess.run([*command, "--store", str(killed)], check=True, stdout=subprocess.DEVNULL)
    clean = tmp_path / "clean.db"
    subprocess.run([*command, "--store", str(clean)], check=True, stdout=subprocess.DEVNULL)
    with Store(killed) as a, Store(clean) as b:
        runs_a = {r.run_id: (r.cell, r.results) for r in a.runs()}
        runs_b = {r.run_id: (r.cell, r.results) for r in b.runs()}
    assert runs_a == runs_b and len(runs_a) == 44
    with sqlite3.connect(killed) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 44


@pytest.mark.slow
def test_process_pool_gives_the_same_results(tmp_path):
    config = resolve_config("born-dead", preset="tiny")
    with Store(tmp_path / "one.db") as one, Store(tmp_path / "two.db") as two:
        run_experiment("born-dead", config, one, progress=False)
        run_experiment("born-dead", config, two, workers=2, progress=False)
        assert {r.run_id: r.results for r in one.runs()} == {
            r.run_id: r.results for r in two.runs()
        }


def test_more_seeds_or_a_larger_grid_reuse_stored_runs_and_duplicates_run_once():
    small = {s.run_id for s in plan("born-dead", resolve_config("born-dead", preset="tiny"))}
    more = plan("born-dead", resolve_config("born-dead", preset="tiny", overrides={"seeds": "2"}))
    assert small < {s.run_id for s in more} and len(more) == 2 * len(small)
    doubled = resolve_config("born-dead", preset="tiny", overrides={"depths": "2,2"})
    assert len(plan("born-dead", doubled)) == 4


def test_store_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="Cannot open the store"):
        Store("/proc/leaky-test/results.db")


def test_toml_scalar_for_a_list_field(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("depths = 5\n")
    from leaky.lab.config import load_toml

    resolved = resolve_config("vanishing", overrides=load_toml(config))
    assert resolved.depths == (5,)


@pytest.mark.slow
def test_a_failing_run_in_the_pool_keeps_the_finished_ones(tmp_path):
    config = resolve_config("born-dead", preset="tiny")
    specs = plan("born-dead", config)
    broken = type(specs[0])("born-dead", specs[0].cell, 0, {"trials": "many"}, "broken")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(ValueError, match="trials"):
            execute([*specs[:3], broken, *specs[3:]], store, workers=2)
        assert 1 <= len(store.run_ids()) <= len(specs)
        assert "broken" not in store.run_ids()


def _bits(store):
    # repr keeps every bit of a float (and says nan), so equal text is bitwise equality.
    return {r.run_id: repr((r.metrics, r.layers, r.results)) for r in store.runs()}


@pytest.mark.slow
def test_the_numbers_do_not_depend_on_the_number_of_workers(tmp_path):
    # width 64: big enough that torch splits the work between threads when it has several.
    config = resolve_config(
        "vanishing",
        preset="tiny",
        overrides={"depths": "3", "width": "64", "steps": "20", "seeds": "1"},
    )
    with Store(tmp_path / "one.db") as one, Store(tmp_path / "two.db") as two:
        run_experiment("vanishing", config, one, workers=1, progress=False)
        run_experiment("vanishing", config, two, workers=2, progress=False)
        assert _bits(one) == _bits(two) and len(_bits(one)) == 2
        assert {r.versions["threads"] for r in one.runs()} == {"1"}


def test_the_thread_count_is_part_of_a_runs_identity():
    config = resolve_config("born-dead", preset="tiny")
    one, two = plan("born-dead", config), plan("born-dead", config, threads=2)
    assert {s.threads for s in one} == {1} and {s.threads for s in two} == {2}
    assert not {s.run_id for s in one} & {s.run_id for s in two}


def test_workers_times_threads_must_fit_the_usable_cores(tmp_path):
    from leaky.lab.runner import check_parallelism
    from leaky.system.machine import usable_cores

    cores = usable_cores()
    assert check_parallelism(1, cores) == (1, cores)
    with pytest.raises(ValueError, match=rf"at most {cores} .*lower workers or threads"):
        check_parallelism(cores, 2)
    with pytest.raises(ValueError, match="threads to be a whole number >= 1"):
        check_parallelism(1, 0)
    specs = plan("born-dead", resolve_config("born-dead", preset="tiny"), threads=cores + 1)
    with Store(tmp_path / "s.db") as store, pytest.raises(ValueError, match="threads"):
        execute(specs, store)


def test_run_refuses_too_many_threads_in_one_line(tmp_path):
    from click.testing import CliRunner

    from leaky.app.cli import cli

    result = CliRunner().invoke(
        cli, ["run", "born-dead", "--threads", "10000", "--store", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 2 and "--workers x --threads" in result.output
    assert not (tmp_path / "s.db").exists()


def test_claims_keep_a_run_to_one_live_owner(tmp_path):
    import socket

    with Store(tmp_path / "s.db") as store:
        assert store.claim("r1", "a") == "claimed"
        assert store.claim("r1", "b") == "taken"
        assert store.claim_of("r1").owner == "a"
        store.release_claims("a")
        assert store.claim("r1", "b") == "claimed"
        assert store.claim("r2", "c", lease=-1) == "claimed"  # lease already run out
        assert store.claim("r2", "d") == "claimed"
        store.save(_record("r3"))
        assert store.claim("r3", "a") == "stored"
        # An owner on this host whose process is gone holds nothing.
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        with store._db:
            store._db.execute(
                "INSERT INTO claims VALUES ('r4', 'x', ?, ?, ?)",
                (socket.gethostname(), dead.pid, _FAR_FUTURE),
            )
        assert store.claim("r4", "a") == "claimed"


def test_a_run_another_process_is_computing_is_not_computed_again(tmp_path):
    import socket
    import threading

    config = resolve_config("born-dead", preset="tiny")
    specs = plan("born-dead", config)
    path = tmp_path / "s.db"
    with Store(path) as store:
        # Another live process (the parent of this one) holds the first run...
        with store._db:
            store._db.execute(
                "INSERT INTO claims VALUES (?, 'other', ?, ?, ?)",
                (specs[0].run_id, socket.gethostname(), os.getppid(), _FAR_FUTURE),
            )

        def other_process_finishes():  # ... and stores it a moment later.
            results = {"born_dead": 0, "trials": 1000, "probability": 0.0}
            results |= {"ci_low": 0.0, "ci_high": 0.004}  # as a born-dead run writes them
            with Store(path) as other:
                other.save(_record(specs[0].run_id, experiment="born-dead", results=results))
                other.release_claims("other")

        timer = threading.Timer(1.5, other_process_finishes)
        timer.start()
        sweep = execute(specs, store, progress=False)
        timer.join()
    assert (sweep.ran, sweep.elsewhere) == (len(specs) - 1, 1)


def test_progress_lines_when_the_output_is_not_a_terminal(tmp_path):
    from click.testing import CliRunner

    from leaky.app.cli import cli

    args = ["run", "born-dead", "--set", "depths=2", "--set", "widths=2", "--set", "trials=100"]
    args += ["--set", "inits=he"]
    result = CliRunner().invoke(cli, [*args, "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert "born-dead: 2 runs to do, 0 already stored" in result.output
    assert "born-dead: 2/2 runs, " in result.output
    quiet = CliRunner().invoke(cli, [*args, "--store", str(tmp_path / "q.db"), "--quiet"])
    assert "runs to do" not in quiet.output


def test_the_lab_does_not_import_the_report():
    import ast

    import leaky.lab.findings

    tree = ast.parse(Path(leaky.lab.findings.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.startswith("leaky.report")}


def test_leaky_run_computes_damaged_runs_again_and_replaces_them(tmp_path):
    from click.testing import CliRunner

    from leaky.app.cli import cli

    path = tmp_path / "s.db"
    args = ["run", "born-dead", "--set", "depths=2,3", "--set", "widths=2", "--set", "inits=he"]
    args += ["--set", "trials=20", "--store", str(path), "--quiet"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and "4 runs done, 0 already" in first.output, first.output
    with Store(path) as store:
        before = {run.run_id: run.results for run in store.runs()}
    spoiled = sorted(before)[:2]
    with sqlite3.connect(path) as db:  # results edited by hand in the store
        db.execute(
            "UPDATE runs SET results = ? WHERE run_id = ?", ('{"born_dead": 1 x}', spoiled[0])
        )
        db.execute("UPDATE runs SET results = '[1, 2]' WHERE run_id = ?", (spoiled[1],))
    db.close()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "2 runs done, 2 already" in again.output and "delimiter" not in again.output
    with Store(path, readonly=True) as store:
        assert {run.run_id: run.results for run in store.runs()} == before
        assert store.damaged_runs() == []


def test_a_run_saved_just_before_ctrl_c_counts_as_kept(tmp_path, monkeypatch):
    from leaky.lab.runner import SweepInterrupted

    real_save = Store.save

    def save_then_ctrl_c(self, record):
        real_save(self, record)
        raise KeyboardInterrupt  # lands after the write, before the sweep counts it

    monkeypatch.setattr(Store, "save", save_then_ctrl_c)
    config = resolve_config("born-dead", preset="tiny")
    with Store(tmp_path / "s.db") as store, pytest.raises(SweepInterrupted) as stopped:
        execute(plan("born-dead", config), store, progress=False)
    assert stopped.value.kept == stopped.value.stored == 1
    assert "kept the 1 runs that finished (1 of 8 planned runs" in str(stopped.value)


@pytest.mark.parametrize("spoiled", ['{"grad_norms": "abc"}', '{"ratio_at_init": "abc"}'])
def test_leaky_run_computes_runs_with_results_of_the_wrong_shape_again(tmp_path, spoiled):
    # Valid JSON objects, but not the results a vanishing run writes: such
    # runs were counted as done (and the second one broke the report).
    from click.testing import CliRunner

    from leaky.app.cli import cli

    path = tmp_path / "s.db"
    args = ["run", "vanishing", "--set", "depths=3,4", "--set", "activations=sigmoid"]
    args += ["--set", "width=8", "--set", "steps=4", "--set", "log_every=2", "--set", "seeds=2"]
    args += ["--store", str(path), "--quiet"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and "4 runs done, 0 already" in first.output, first.output
    with Store(path) as store:
        before = {run.run_id: run.results for run in store.runs()}
    with sqlite3.connect(path) as db:  # results edited by hand in the store
        for run_id in sorted(before)[:3]:
            db.execute("UPDATE runs SET results = ? WHERE run_id = ?", (spoiled, run_id))
    db.close()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "3 runs done, 1 already" in again.output, again.output
    from leaky.lab.experiments import check_stored_results

    with Store(path, readonly=True, check_results=check_stored_results) as store:
        assert {run.run_id: run.results for run in store.runs()} == before
        assert store.damaged_runs() == []
