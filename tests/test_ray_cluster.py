"""A sweep on a two-node Ray cluster started as a user starts one, and a node lost mid-sweep.

Both nodes run on this machine (``ray start --head`` and ``ray start --address``, one CPU
each), with token authentication as Ray sets it up and its health checks made faster so
that a lost node is noticed in seconds. Each process ``ray start`` starts carries a marker
in its environment; a node's processes are those and their children, which is how the test
finds what to kill: never another Ray on the machine.
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'leaky[ray]'")
psutil = pytest.importorskip("psutil", reason="psutil comes with leaky's ray extra")

from leaky.lab.findings import resolve_config  # noqa: E402
from leaky.lab.plan import plan  # noqa: E402
from leaky.lab.runner import execute  # noqa: E402
from leaky.lab.store import Store  # noqa: E402

from _helpers import stored_bits, stored_runs  # noqa: E402

pytestmark = pytest.mark.slow

MARKER = "LEAKY_TEST_RAY_NODE"
# 2 activations x 2 depths x 2 seeds: 8 runs of about a second each.
SWEEP = {
    "depths": "3,4",
    "activations": "sigmoid,leaky_relu",
    "width": "32",
    "dataset": "spirals",
    "steps": "1500",
    "log_every": "50",
    "seeds": "2",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(process) -> dict[str, str]:
    try:
        return process.environ()
    except psutil.Error:
        return {}


def _node(marker: str, node: str) -> list:
    """The processes ``ray start`` started for one node, and theirs (agents, workers).

    The agents are found as the raylet's children: their environment cannot always be read.
    """
    value = f"{marker}:{node}"
    started = [p for p in psutil.process_iter() if _environment(p).get(MARKER) == value]
    found = {p.pid: p for p in started}
    for process in started:
        with contextlib.suppress(psutil.Error):
            found.update((child.pid, child) for child in process.children(recursive=True))
    return list(found.values())


def _kill(processes) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=10)


def _command(process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


@pytest.fixture
def two_nodes():
    """(address, environment for a driver, marker) of a head and a second node."""
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Unix socket paths must be short
    token = os.path.join(folder, "token")
    with open(token, "w") as file:
        file.write(secrets.token_hex(32))
    marker = f"cluster-{os.getpid()}-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": token,
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
    }
    port = _free_port()
    address = f"127.0.0.1:{port}"
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    head = [ray_cli, "start", "--head", "--port", str(port), "--temp-dir", folder]
    head += ["--include-dashboard", "false", "--ray-client-server-port", str(_free_port())]
    second = [ray_cli, "start", "--address", address]
    try:
        for command, node in ((head, "head"), (second, "second")):
            subprocess.run(
                [*command, *common],
                env={**env, MARKER: f"{marker}:{node}"},
                check=True,
                capture_output=True,
                timeout=120,
            )
        yield address, env, marker
    finally:
        _kill(_node(marker, "head") + _node(marker, "second"))
        shutil.rmtree(folder, ignore_errors=True)


def test_a_sweep_survives_losing_a_node_and_stores_what_a_local_run_stores(two_nodes, tmp_path):
    address, env, marker = two_nodes
    store = tmp_path / "cluster.db"
    settings = [arg for key, value in SWEEP.items() for arg in ("--set", f"{key}={value}")]
    cluster = ["--backend", "ray", "--address", address, "--store", str(store)]
    driver = subprocess.Popen(
        [sys.executable, "-m", "leaky", "run", "vanishing", *settings, "--quiet", *cluster],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Once a run is stored and the second node is computing another, kill every process
    # of that node: its raylet, its agents and the worker in the middle of a run.
    killed, deadline = [], time.monotonic() + 180
    while not killed and driver.poll() is None and time.monotonic() < deadline:
        second = _node(marker, "second")
        busy = [p for p in second if _command(p)[:1] == ["ray::_run_task"]]
        if busy and stored_runs(store) >= 1:
            killed = second
            _kill(killed)
        time.sleep(0.05)
    out, err = driver.communicate(timeout=300)
    assert killed, f"the second node should have been killed mid-sweep:\n{err}"
    assert driver.returncode == 0, err
    lost = [line for line in err.splitlines() if "left the cluster" in line]
    assert len(lost) == 1, err
    assert "submitting it again to the nodes left" in lost[0], err
    assert "state-dump" not in err + out, "Ray's raylet log should not flood the output"
    assert "8 runs done" in out

    specs = plan("vanishing", resolve_config("vanishing", overrides=SWEEP))
    with Store(tmp_path / "local.db") as local:
        execute(specs, local, workers=1, progress=False)
        expected = stored_bits(local)
    with Store(store) as cluster:
        assert stored_bits(cluster) == expected
