"""Stopping a parallel sweep: Ctrl-C, SIGTERM, a dead parent, a failing store."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leaky.lab.findings import resolve_config
from leaky.lab.plan import plan
from leaky.lab.runner import execute
from leaky.lab.store import Store

from _helpers import stored_runs

# 2 activations x 8 depths x 2 widths = 32 born-dead runs of well under a second each.
SWEEP = [
    "run",
    "born-dead",
    "--set",
    "depths=2,3,4,5,6,7,8,9",
    "--set",
    "widths=2,3",
    "--set",
    "inits=he",
    "--set",
    "trials=3000",
    "--set",
    "grid_points=201",
    "--workers",
    "2",
    "--quiet",
]
TOTAL = 32

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
    reason="needs 2 usable cores",
)


def _session(sid):
    """Live (not zombie) processes of session ``sid``, read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


def _wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _start(tmp_path):
    store = tmp_path / "s.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "leaky", *SWEEP, "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session and process group: ours to signal and scan
    )
    if not _wait_until(lambda: stored_runs(store) >= 1 or process.poll() is not None, 180):
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the sweep stored no run in 180 s")
    assert process.poll() is None, process.communicate()
    return process, store


def _stop_and_check(process, store, send, expected_code):
    stored_before = stored_runs(store)
    sent = time.monotonic()
    send()
    try:
        _out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("the sweep did not stop within 20 s of the signal")
    took = time.monotonic() - sent
    assert process.returncode == expected_code, err
    kept = stored_runs(store)
    assert stored_before <= kept < TOTAL, "every finished run kept, and the sweep stopped early"
    assert "kept the" in err and "run the same command again to resume" in err, err
    assert "Traceback" not in err, err
    assert took < 10, f"took {took:.1f} s to stop"
    assert _wait_until(lambda: not _session(process.pid), 10), "processes left behind"


@needs_proc
@needs_two_cores
@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_sweep_and_keeps_the_finished_runs(tmp_path):
    process, store = _start(tmp_path)
    _stop_and_check(process, store, lambda: os.killpg(process.pid, signal.SIGINT), 130)
    # Rerunning resumes to the whole sweep.
    subprocess.run(
        [sys.executable, "-m", "leaky", *SWEEP, "--store", str(store)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert stored_runs(store) == TOTAL


@needs_proc
@needs_two_cores
@pytest.mark.slow
def test_sigterm_stops_a_parallel_sweep_and_keeps_the_finished_runs(tmp_path):
    process, store = _start(tmp_path)
    _stop_and_check(process, store, lambda: os.kill(process.pid, signal.SIGTERM), 143)


@needs_proc
@needs_two_cores
@pytest.mark.slow
def test_workers_die_with_their_parent(tmp_path):
    process, _ = _start(tmp_path)
    assert len(_session(process.pid)) >= 3  # the parent, two workers (and a resource tracker)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)  # returns once nothing holds its stdout and stderr open
    assert _wait_until(lambda: not _session(process.pid), 10), _session(process.pid)


@needs_two_cores
@pytest.mark.slow
def test_a_store_write_error_stops_a_parallel_sweep_at_once(tmp_path, monkeypatch):
    config = resolve_config(
        "born-dead", overrides={"depths": "2,3,4,5,6,7,8,9", "widths": "2,3", "trials": "3000"}
    )
    specs = plan("born-dead", config)
    calls = []

    def disk_full(self, record):
        calls.append(record.run_id)
        raise ValueError(f"Cannot write to the store {self.path}: database or disk is full")

    monkeypatch.setattr(Store, "save", disk_full)
    with Store(tmp_path / "s.db") as store, pytest.raises(ValueError, match="disk is full"):
        execute(specs, store, workers=2, progress=False)
    assert len(calls) == 1, "no second write after the store failed"
    assert not multiprocessing.active_children(), "the workers are stopped, not left computing"


def _children(pid):
    """Every child process of ``pid`` (zombies included), from /proc/PID/task/*/children."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_a_stopped_pool_leaves_no_child_process_behind():
    from leaky.lab.worker_pool import WorkerPool

    before = set(_children(os.getpid()))
    with pytest.raises(KeyboardInterrupt), WorkerPool(abs, 2) as pool:
        assert len(pool.pids) == 2
        raise KeyboardInterrupt  # as Ctrl-C during a sweep: the pool terminates its workers
    # Workers and multiprocessing's resource tracker are reaped before the sweep returns,
    # so none can linger as a zombie after the process exits.
    assert set(_children(os.getpid())) <= before


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
def test_workers_ignore_ctrl_c_from_their_first_instruction():
    # A Ctrl-C to the process group while a worker still imports leaky (seconds) must not
    # reach it: SIGINT is ignored in a worker from the moment it exists, not only once it
    # runs its loop.
    from leaky.lab.worker_pool import WorkerPool

    sigint = 1 << (signal.SIGINT - 1)
    with WorkerPool(abs, 2) as pool:
        for pid in pool.pids:  # read at once: the workers are still starting
            status = Path(f"/proc/{pid}/status").read_text()
            ignored = int(
                next(ln for ln in status.splitlines() if ln.startswith("SigIgn:"))[7:], 16
            )
            assert ignored & sigint, f"worker {pid} does not ignore SIGINT yet"
