"""Sweeps as Ray tasks: the same stored numbers as the local pool, worker deaths, Ctrl-C.

One local Ray instance (two CPUs, loopback only) serves the whole module: it takes many
seconds to start on a small machine.
"""

import _thread
import builtins
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'leaky[ray]'")
psutil = pytest.importorskip("psutil", reason="psutil comes with Ray's default extra")

from leaky.app.cli import cli  # noqa: E402
from leaky.lab.findings import resolve_config  # noqa: E402
from leaky.lab.plan import plan  # noqa: E402
from leaky.lab.ray_backend import RayRunner, _cannot_import_the_task, _run_task, start_local  # noqa: E402
from leaky.lab.runner import SweepInterrupted, check_backend, execute, run_one  # noqa: E402
from leaky.lab.store import Store  # noqa: E402

from _helpers import stored_bits, stored_runs  # noqa: E402

# 2 activations x 2 depths: 4 runs of a second or two, with per-step metrics and
# per-layer gradient norms, on a dataset generated in milliseconds.
SWEEP = {
    "depths": "3,4",
    "activations": "sigmoid,leaky_relu",
    "width": "32",
    "dataset": "spirals",
    "steps": "300",
    "log_every": "50",
    "seeds": "1",
}


def _specs(seeds: int = 1):
    return plan("vanishing", resolve_config("vanishing", overrides={**SWEEP, "seeds": seeds}))


def _busy_workers():
    """Ray worker processes running one of our tasks now (Ray names them after the task)."""
    busy = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = process.info["cmdline"] or []
        if command and command[0].startswith("ray::_run_task"):
            busy.append(process.info["pid"])
    return busy


def _ray_services():
    names = ("raylet", "gcs_server", "plasma_store")
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if any(name in " ".join(p.cmdline() or [p.name()]) for name in names)
    ]


@pytest.fixture(scope="module")
def local_ray():
    watchdog = start_local(2)
    # Loopback only: the instance neither calls nor listens on the machine's network address.
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield
    ray.shutdown()
    deadline = time.monotonic() + 15
    while _ray_services() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_services(), "Ray's processes should be gone after shutdown"
    watchdog.stop()


@pytest.fixture(scope="module")
def pool_bits(tmp_path_factory):
    """The sweep on the local backend: the numbers Ray must reproduce.

    In this process (workers=1) rather than two fresh ones, which would import torch again:
    test_store_runner checks that the pool's numbers do not depend on its worker count.
    """
    with Store(tmp_path_factory.mktemp("pool") / "s.db") as store:
        execute(_specs(), store, workers=1, progress=False)
        bits = stored_bits(store)
    assert len(bits) == 4
    return bits


@pytest.mark.slow
def test_ray_stores_the_same_numbers_as_the_local_pool(local_ray, pool_bits, tmp_path):
    with Store(tmp_path / "s.db") as store:
        sweep = execute(_specs(), store, workers=2, progress=False, backend="ray")
        assert (sweep.ran, sweep.retried) == (4, 0)
        assert stored_bits(store) == pool_bits
        assert {r.versions["threads"] for r in store.runs()} == {"1"}
        again = execute(_specs(), store, workers=2, progress=False, backend="ray")
    assert (again.ran, again.skipped) == (0, 4)


@pytest.mark.slow
def test_a_killed_worker_loses_no_finished_run_and_the_sweep_completes(
    local_ray, pool_bits, tmp_path, capfd
):
    path = tmp_path / "s.db"
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 120
        while stored_runs(path) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        while not killed and time.monotonic() < deadline:
            for pid in _busy_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    with Store(path) as store:
        killer.start()
        sweep = execute(_specs(), store, workers=2, progress=False, backend="ray")
        killer.join()
        assert killed, "a worker should have been killed mid-sweep"
        assert sweep.retried >= 1 and sweep.ran == 4
        assert stored_bits(store) == pool_bits
    assert "a Ray worker stopped while running" in capfd.readouterr().err  # reported


@pytest.mark.slow
def test_ctrl_c_keeps_finished_runs_and_cancels_the_rest(local_ray, pool_bits, tmp_path):
    path = tmp_path / "s.db"

    def interrupt_after_the_first_run():
        deadline = time.monotonic() + 120
        while stored_runs(path) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()  # Ctrl-C, as the main thread sees it

    with Store(path) as store:
        threading.Thread(target=interrupt_after_the_first_run, daemon=True).start()
        with pytest.raises(SweepInterrupted) as stopped:
            # Three seeds (12 runs): enough that the sweep cannot end before Ctrl-C lands.
            execute(_specs(seeds=3), store, workers=2, progress=False, backend="ray")
        kept = stored_bits(store)
    assert stopped.value.exit_code == 130 and "stopped by Ctrl-C (SIGINT)" in str(stopped.value)
    assert 1 <= stopped.value.kept == len(kept) < 12
    assert all(pool_bits[run_id] == bits for run_id, bits in kept.items() if run_id in pool_bits)
    deadline = time.monotonic() + 10
    while _busy_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _busy_workers(), "cancelled runs should stop computing"


@pytest.mark.slow
def test_an_error_in_the_experiment_is_not_retried_and_keeps_the_finished_runs(local_ray, tmp_path):
    specs = plan("born-dead", resolve_config("born-dead", preset="tiny"))[:3]
    broken = type(specs[0])("born-dead", specs[0].cell, 0, {"trials": "many"}, "broken")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(ValueError, match="trials") as raised:
            execute([*specs, broken], store, workers=2, progress=False, backend="ray")
        assert "broken" not in store.run_ids()
    assert any("In a Ray worker" in note for note in raised.value.__notes__)


def test_a_worker_with_another_leaky_version_is_refused():
    with pytest.raises(ValueError, match="same version on every node"):
        _run_task(run_one, _specs()[0], "0.0.0-other")


def test_a_wrong_address_fails_in_seconds_with_one_line(tmp_path):
    start = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "born-dead",
            "--backend",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--store",
            str(tmp_path / "s.db"),
        ],
    )
    assert time.monotonic() - start < 10
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "No Ray cluster answers at 127.0.0.1:1" in lines[0]
    assert not (tmp_path / "s.db").exists()


def test_without_ray_the_message_says_how_to_install_it(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = CliRunner().invoke(
        cli, ["run", "born-dead", "--backend", "ray", "--store", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: The Ray backend needs Ray, which is not installed here; install it with: "
        "pip install 'leaky[ray]'"
    ]


def test_a_node_without_this_leaky_is_named_as_the_problem():
    missing = ModuleNotFoundError(
        "No module named 'leaky.lab.ray_backend'", name="leaky.lab.ray_backend"
    )
    assert _cannot_import_the_task(RuntimeError("x"), missing)
    unpickling = RuntimeError("The remote function failed to import on the worker. ...")
    assert _cannot_import_the_task(unpickling, None)
    assert not _cannot_import_the_task(RuntimeError("x"), ValueError("trials"))
    assert not _cannot_import_the_task(
        RuntimeError("x"), ModuleNotFoundError("No module named 'librosa'", name="librosa")
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("local", "127.0.0.1:1"), "pass it with backend ray"),
        (("ray", "127.0.0.1:1", 2), "Expected no workers with address"),
        (("ray", "http://127.0.0.1:1"), "Expected address to be auto, HOST:PORT"),
        (("ray", "127.0.0.1"), "Expected address to be auto, HOST:PORT"),
        (("ray", None, 10_000), "Expected workers x threads to be at most"),
    ],
)
def test_backend_settings_are_checked_before_anything_starts(arguments, message):
    backend, address, *workers = arguments
    with pytest.raises(ValueError, match=message):
        check_backend(backend, address, workers=workers[0] if workers else 1)


def test_max_retries_must_be_a_count():
    with pytest.raises(ValueError, match="max_retries"):
        RayRunner(run_one, max_retries=-1)


def test_the_summary_line_says_how_many_runs_were_submitted_again(monkeypatch, tmp_path):
    from leaky.lab.runner import SweepResult

    seen = {}

    def execute(sweep, store, *, backend, **kwargs):
        seen.update(backend=backend.kind, address=backend.address, workers=backend.workers)
        return SweepResult(total=8, ran=8, skipped=0, diverged=0, retried=1)

    monkeypatch.setattr("leaky.lab.findings.execute", execute)
    monkeypatch.setattr("leaky.lab.findings.summarize", lambda *args, **kwargs: [])
    store = str(tmp_path / "s.db")
    arguments = ["run", "born-dead", "--backend", "ray", "--workers", "2", "--store", store]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert (seen["backend"], seen["address"], seen["workers"]) == ("ray", None, 2)
    assert "8 runs done, 0 already in" in result.output
    assert "1 submitted again after a worker died" in result.output


def test_a_local_instance_that_does_not_start_is_one_line(monkeypatch):
    def overloaded(cpus):
        raise Exception("The current node timed out during startup. This could happen ...")

    monkeypatch.setattr("leaky.lab.ray_backend.start_local", overloaded)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)  # the module's instance stays up
    with pytest.raises(ChildProcessError, match="The local Ray instance did not start"):
        RayRunner(run_one, cpus=2).__enter__()


def test_a_raylet_that_dies_mid_sweep_is_one_line_and_keeps_the_finished_runs(
    local_ray, tmp_path, monkeypatch
):
    real_wait, calls = ray.wait, []

    def wait_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise ray.exceptions.LocalRayletDiedError()
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray, "wait", wait_then_die)
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(ChildProcessError, match="The local Ray instance stopped"):
            execute(_specs(), store, workers=2, progress=False, backend="ray")
        kept = store.run_ids()
    monkeypatch.setattr(ray, "wait", real_wait)
    with Store(tmp_path / "s.db") as store:  # the same command resumes it
        result = execute(_specs(), store, workers=2, progress=False, backend="ray")
        assert result.skipped == len(kept) and result.ran + result.skipped == len(_specs())


FAKE_DRIVER = """
import subprocess, sys, time, types
from leaky.lab.ray_backend import Watchdog
sleep = [sys.executable, "-c", "import time; time.sleep(300)"]
ray_service = subprocess.Popen([*sleep, sys.argv[1] + "/core/raylet"])
unrelated = subprocess.Popen([*sleep, "not-ray"])
watchdog = Watchdog(types.SimpleNamespace(__file__=sys.argv[1] + "/__init__.py"))
print(ray_service.pid, unrelated.pid, flush=True)
time.sleep(300)
"""


def _command(process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until_gone(pids, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return all(_gone(pid) for pid in pids)


def test_the_watchdog_stops_the_ray_processes_of_a_killed_driver_and_nothing_else(tmp_path):
    ray_dir = str(tmp_path / "site-packages" / "ray")
    driver = subprocess.Popen(
        [sys.executable, "-c", FAKE_DRIVER, ray_dir], stdout=subprocess.PIPE, text=True
    )
    ray_service, unrelated = map(int, driver.stdout.readline().split())
    try:
        time.sleep(1.5)  # the watchdog notes the driver's Ray processes twice a second
        driver.kill()
        driver.wait()
        assert _wait_until_gone([ray_service], 10), "the Ray process should be stopped"
        assert not _gone(unrelated), "a process that is not Ray's must be left alone"
    finally:
        for pid in (ray_service, unrelated):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_driver_leaves_no_ray_process_of_its_local_instance(tmp_path):
    # Without the watchdog Ray's dashboard and runtime-env agents outlive a SIGKILLed
    # driver by a minute or more.
    command = [sys.executable, "-m", "leaky", "run", "vanishing", "--backend", "ray"]
    settings = ["--set", "steps=5000", "--set", "seeds=3", "--workers", "2", "--quiet"]
    driver = subprocess.Popen(
        [*command, *settings, "--store", str(tmp_path / "s.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    me = psutil.Process(driver.pid)
    deadline, services = time.monotonic() + 120, []
    while time.monotonic() < deadline and driver.poll() is None:
        services = [p for p in me.children(recursive=True) if "watchdog" not in str(_command(p))]
        if any(_command(p)[:1] == ["ray::_run_task"] for p in services):
            break
        time.sleep(0.2)
    assert any(_command(p)[:1] == ["ray::DashboardAgent"] for p in services), services
    driver.kill()
    driver.wait()
    assert _wait_until_gone([p.pid for p in services], 15), [
        _command(p)[:1] for p in services if not _gone(p.pid)
    ]
