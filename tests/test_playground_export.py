"""Export as Python: the exported script trains as the page's session does, step for step."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from leaky.playground import TrainingSession
from leaky.playground.export_script import export_script

pytestmark = pytest.mark.slow  # runs each exported script in its own process

STEPS = 5
SETUPS = [
    {"depth": 3, "width": 8, "activation": "relu", "bias_shift": 0.3},
    {"depth": 2, "width": 8, "compare": True, "compare_activation": "prelu", "init": "torch"},
    {"depth": 2, "width": 6, "dataset": "fn1d", "activation": "rrelu", "optimizer": "momentum"},
    {"depth": 3, "width": 8, "activation": "relu", "bias_shift": 1.5, "recycle_every": 2},
]


def _run(script, tmp_path):
    path = tmp_path / "leaky_playground.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _losses(output):
    """Step -> the printed training loss of each network, from the script's first table."""
    rows = {}
    for line in output.split("\n\n")[0].splitlines():
        words = line.split()
        if words and words[0].isdigit():
            rows[int(words[0])] = [float(word) for word in words[1:]]
    return rows


@pytest.mark.parametrize("changes", SETUPS, ids=["relu", "compare", "fn1d-rrelu", "recycle"])
def test_the_exported_script_reproduces_the_sessions_losses(changes, tmp_path):
    session = TrainingSession(changes)
    expected = {0: [net["train_loss"] for net in session.snapshot()["networks"]]}
    for step in range(1, STEPS + 1):
        session.train(1)
        expected[step] = [net["train_loss"] for net in session.snapshot()["networks"]]
    output = _run(export_script(session.params, steps=STEPS, report_every=1), tmp_path)
    got = _losses(output)
    assert sorted(got) == list(range(STEPS + 1))
    for step, losses in expected.items():
        assert got[step] == pytest.approx(losses, rel=1e-5, abs=1e-6), step
    # What the page shows after those steps, from a Monitor: dead units and the verdict.
    view = session.snapshot()["networks"]
    for network in view:
        name = network["activation"]
        shown = re.search(rf"\n{name}: train loss (\S+),", output)
        assert float(shown.group(1)) == pytest.approx(network["train_loss"], rel=1e-5, abs=1e-6)
        assert f"verdict: {network['gradients']['verdict']}" in output
        shares = " ".join(f"{share:.0%}" for share in network["dead"])
        assert f"dead units per hidden layer: {shares}" in output


def test_bad_step_counts_are_named():
    from leaky.playground.params import PlaygroundParams

    with pytest.raises(ValueError, match="`steps` to be an integer >= 1"):
        export_script(PlaygroundParams(), steps=0)
    with pytest.raises(ValueError, match="`report_every`"):
        export_script(PlaygroundParams(), steps=3, report_every=True)
