"""The results store: opening, creating and reading, including races, read-only and damage."""

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.lab.store import RunRecord, Store

SRC = Path(__file__).resolve().parents[1] / "src"


def _record(run_id="r1"):
    return RunRecord(
        run_id=run_id,
        experiment="e",
        cell={"a": 1},
        seed=0,
        config={"x": 1},
        status="finished",
        seconds=0.1,
        metrics=[(0, "loss", 1.5)],
        layers=[(0, "0", "grad_norm", 0.5)],
    )


def _open_at_once(barrier, paths, queue):
    # One process of the race: every round, all processes open the same new path together.
    for path in paths:
        barrier.wait()
        try:
            with Store(path) as store:
                store.save(_record(f"r{os.getpid()}"))
            queue.put("ok")
        except Exception as error:  # reported to the test, which names it
            queue.put(f"{type(error).__name__}: {error}")


@pytest.mark.slow
def test_concurrent_creation_of_a_new_store_succeeds(tmp_path):
    processes, rounds = 4, 20
    paths = [tmp_path / f"new{k}.db" for k in range(rounds)]
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_open_at_once, args=(barrier, paths, queue))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in range(processes * rounds)]
    for worker in workers:
        worker.join(timeout=60)
    failures = [o for o in outcomes if o != "ok"]
    assert not failures, failures[:3]
    for path in paths:
        with Store(path) as store:
            assert len(store.run_ids()) == processes


@pytest.mark.slow
def test_concurrent_leaky_runs_on_a_new_store_all_succeed(tmp_path):
    command = [sys.executable, "-m", "leaky", "run", "born-dead", "--set", "depths=2"]
    command += ["--set", "widths=2", "--set", "trials=10", "--store", "r.db", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for attempt in range(1):  # the API test above repeats the race; this is the line
        folder = tmp_path / str(attempt)
        folder.mkdir()
        runs = [
            subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
        for run in runs:
            run.stdout.close()
            run.stderr.close()
        assert all(code == 0 for code, _ in results), results


def _store_with_runs(path, count=3):
    with Store(path) as store:
        for k in range(count):
            store.save(_record(f"r{k}"))
    return path


def _files(folder, *, sqlite_own=True):
    # sqlite_own=False: leave out the -wal/-shm files sqlite itself may add to share the file.
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if sqlite_own or not p.name.endswith(("-wal", "-shm"))
    }


def test_a_reader_writes_nothing(tmp_path):
    store = _store_with_runs(tmp_path / "s.db")
    before = _files(tmp_path)
    with Store(store, readonly=True) as reader:
        assert reader.run_ids() == {"r0", "r1", "r2"} and len(reader.runs("e")) == 3
        with pytest.raises(ValueError, match="read-only"):
            reader.save(_record("new"))
    assert _files(tmp_path, sqlite_own=False) == before


def test_a_reader_never_creates_a_store(tmp_path):
    with pytest.raises(ValueError, match="No results store"):
        Store(tmp_path / "none.db", readonly=True)
    assert not list(tmp_path.iterdir())


def _without_write_permission(*args, cwd):
    """Run ``leaky ARGS`` as a process that file permissions apply to, even under root."""
    command = [sys.executable, "-m", "leaky", *args]
    if os.geteuid() == 0:  # root ignores permissions unless it gives up the capability
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a file read-only")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def tiny_store(tmp_path_factory):
    from leaky.lab.findings import resolve_config, run_experiment

    path = tmp_path_factory.mktemp("store") / "results.db"
    with Store(path) as store:
        run_experiment(
            "born-dead", resolve_config("born-dead", preset="tiny"), store, progress=False
        )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("what", ["file", "folder"])
def test_report_from_a_store_it_may_not_write(tiny_store, tmp_path, what):
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "results.db"
    shutil.copy(tiny_store, store)
    with sqlite3.connect(store) as db:  # a store left in WAL mode, as leaky leaves it
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.chmod(0o444)
    if what == "folder":
        folder.chmod(0o555)
    before = _files(folder)
    try:
        result = _without_write_permission(
            "report", "--store", str(store), "--out", str(tmp_path / "out"), cwd=tmp_path
        )
    finally:
        folder.chmod(0o755)
        store.chmod(0o644)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "report.html").is_file()
    assert _files(folder) == before


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_store_that_cannot_be_written_is_named_so(tmp_path, what):
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "results.db"
    if what == "file":
        _store_with_runs(store)
        store.chmod(0o444)
    else:
        folder.chmod(0o555)  # a new store cannot be created here
    try:
        result = _without_write_permission(
            "run", "born-dead", "--quick", "--store", str(store), "--quiet", cwd=tmp_path
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert "cannot write" in result.stderr.lower() and str(store) in result.stderr
    assert "not a leaky results store" not in result.stderr and "Traceback" not in result.stderr


def _damage(path):
    # Overwrite every page with garbage but the schema's and the meta table's, so the store
    # still opens and its runs cannot be read.
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
        keep = {1} | {
            root
            for (root,) in db.execute(
                "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'meta' AND rootpage > 0"
            )
        }
    with open(path, "r+b") as file:
        for number in range(1, path.stat().st_size // page + 1):
            if number not in keep:
                file.seek((number - 1) * page)
                file.write(b"\xa5" * page)


@pytest.mark.parametrize("command", ["report", "run"])
def test_a_damaged_store_is_one_line_naming_the_fix(tmp_path, command):
    store = tmp_path / "s.db"
    with Store(store) as db:
        for k in range(40):
            db.save(_record(f"r{k}"))
    _damage(store)
    args = {
        "report": ["report", "--store", str(store), "--out", str(tmp_path / "out")],
        "run": ["run", "born-dead", "--quick", "--store", str(store), "--quiet"],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "damaged" in result.output and str(store) in result.output
    assert ".recover" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_damaged_store_raises_value_error_from_every_reader(tmp_path):
    store = tmp_path / "s.db"
    _store_with_runs(store, count=40)
    _damage(store)
    for readonly in (False, True):
        with Store(store, readonly=readonly) as db:
            for read in (db.runs, db.run_ids):
                with pytest.raises(ValueError, match="damaged"):
                    read()


@pytest.mark.parametrize("value", ["abc", "", "1.5"])
def test_an_unreadable_schema_version_is_named(tmp_path, value):
    path = _store_with_runs(tmp_path / "s.db")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    for readonly in (False, True):
        with pytest.raises(ValueError, match=f"schema version {value!r}.*new --store"):
            Store(path, readonly=readonly)


def _spoil(path, sql, *args):
    # A hand edit of the store, as a user with the sqlite3 shell would make it.
    with sqlite3.connect(path) as db:
        db.execute(sql, args)
    db.close()


_SPOILED = {
    "results not JSON": ("UPDATE runs SET results = ? WHERE run_id = 'r1'", '{"acc": 0.9 x}'),
    "results a list": ("UPDATE runs SET results = ? WHERE run_id = 'r1'", '["abc"]'),
    "cell a string": ("UPDATE runs SET cell = ? WHERE run_id = 'r1'", '"abc"'),
    "seed text": ("UPDATE runs SET seed = ? WHERE run_id = 'r1'", "first"),
    "metric value text": ("UPDATE metrics SET value = ? WHERE run_id = 'r1'", "abc"),
    "metric step text": ("UPDATE metrics SET step = ? WHERE run_id = 'r1'", "x"),
    "layer value text": ("UPDATE layer_stats SET value = ? WHERE run_id = 'r1'", "abc"),
}


@pytest.mark.parametrize("what", list(_SPOILED))
def test_a_damaged_run_is_named_and_left_out_by_every_reader(tmp_path, what):
    path = _store_with_runs(tmp_path / "s.db")
    _spoil(path, *_SPOILED[what])
    for readonly in (False, True):
        with Store(path, readonly=readonly) as store:
            assert store.run_ids() == {"r0", "r2"}
            assert [run.run_id for run in store.runs()] == ["r0", "r2"]
            (damaged,) = store.damaged_runs()
            assert (damaged.run_id, damaged.experiment) == ("r1", "e")
    if what == "results not JSON":
        assert "not valid JSON (Expecting ',' delimiter" in damaged.problem


def test_a_run_whose_results_its_check_refuses_is_damaged_and_replaced(tmp_path):
    # The store knows no experiment: the caller's check judges the results.
    def check(experiment, results):
        assert experiment == "e"
        return None if isinstance(results.get("acc", 0.0), float) else "acc is no number"

    path = _store_with_runs(tmp_path / "s.db")
    _spoil(path, "UPDATE runs SET results = ? WHERE run_id = 'r1'", '{"acc": "abc"}')
    with Store(path, readonly=True) as store:  # no check: the store's own shapes only
        assert store.run_ids() == {"r0", "r1", "r2"} and store.damaged_runs() == []
    for readonly in (False, True):
        with Store(path, readonly=readonly, check_results=check) as store:
            assert store.run_ids() == {"r0", "r2"}
            assert [run.run_id for run in store.runs()] == ["r0", "r2"]
            assert [(d.run_id, d.problem) for d in store.damaged_runs()] == [
                ("r1", "acc is no number")
            ]
    with Store(path, check_results=check) as store:
        assert store.claim("r1", "me") == "claimed" and store.claim("r0", "me") == "stored"
        store.save(_record("r1"))
        assert store.damaged_runs() == [] and store.run_ids() == {"r0", "r1", "r2"}


def test_a_damaged_run_is_not_stored_and_saving_it_replaces_it(tmp_path):
    path = _store_with_runs(tmp_path / "s.db")
    _spoil(path, *_SPOILED["results not JSON"])
    _spoil(path, "UPDATE metrics SET value = 'abc' WHERE run_id = 'r2'")
    with Store(path) as store:
        assert store.claim("r1", "me") == "claimed" and store.claim("r0", "me") == "stored"
        store.save(_record("r1"))
        store.save(_record("r2"))
        assert store.damaged_runs() == [] and store.run_ids() == {"r0", "r1", "r2"}
        assert [(r.metrics, r.layers) for r in store.runs()] == [
            ([(0, "loss", 1.5)], [(0, "0", "grad_norm", 0.5)])
        ] * 3


@pytest.mark.parametrize("readonly", [False, True])
def test_an_empty_file_is_not_a_store_for_any_opener(tmp_path, readonly):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty, not a leaky results store"):
        Store(empty, readonly=readonly)
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


@pytest.mark.parametrize("command", ["run", "report"])
def test_leaky_run_and_report_refuse_an_empty_file_and_run_creates_a_new_store(tmp_path, command):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    args = {
        "run": ["run", "born-dead", *("--set", "depths=2", "--set", "widths=2"), "--quiet"],
        "report": ["report", "--out", str(tmp_path / "out")],
    }[command]
    if command == "run":
        args += ["--set", "inits=he"]
    result = CliRunner().invoke(cli, [*args, "--store", str(empty)])
    assert result.exit_code == 2, result.output
    assert "is empty, not a leaky results store" in result.output and str(empty) in result.output
    assert empty.read_bytes() == b"" and not (tmp_path / "out").exists()
    if command == "run":  # a path that does not exist is a new store
        new = tmp_path / "new" / "r.db"
        result = CliRunner().invoke(cli, [*args, "--set", "trials=10", "--store", str(new)])
        assert result.exit_code == 0, result.output
        with Store(new, readonly=True) as store:
            assert len(store.run_ids()) == 2


def test_an_empty_file_that_another_opener_is_creating_is_waited_for(tmp_path):
    # sqlite creates a new store's file a moment before its creator locks it to write the
    # schema: an opener that finds it empty then waits for the schema rather than refuse.
    import threading

    from leaky.lab import store as store_module

    path = tmp_path / "new.db"
    creator = sqlite3.connect(path)  # the file exists, empty, not yet locked
    opened = []
    opener = threading.Thread(target=lambda: opened.append(Store(path).run_ids()))
    opener.start()
    time.sleep(0.2)
    # As the store writes it: the schema and its meta rows in one transaction.
    creator.executescript(
        "BEGIN;"
        + store_module._SCHEMA
        + "INSERT INTO meta VALUES ('application', 'leaky'), ('schema_version', '1');"
        + "COMMIT;"
    )
    creator.close()
    opener.join(timeout=30)
    assert opened == [set()]
