"""`leaky diagnose FILE.py:FACTORY`: a model file the test writes, and every error case."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from leaky.cli import cli

MODEL_FILE = """
import torch
from torch import nn


def make_model():
    torch.manual_seed(0)
    first = nn.Linear(4, 6)
    with torch.no_grad():
        first.weight[2] = 0.0
        first.bias[2] = -5.0  # unit 2 can never fire
    return nn.Sequential(first, nn.ReLU(), nn.Linear(6, 3))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


def broken():
    raise RuntimeError("factory exploded")


def not_a_model():
    return 42
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODEL_FILE)
    return path


def _run(*args):
    return CliRunner().invoke(cli, ["diagnose", *map(str, args)])


def test_random_inputs_report_the_dead_unit(model_file, tmp_path):
    out_json, out_png = tmp_path / "r" / "report.json", tmp_path / "r" / "monitor.png"
    result = _run(
        f"{model_file}:make_model",
        "--input-shape",
        "4",
        "--batches",
        "3",
        "--json",
        out_json,
        "--plot",
        out_png,
    )
    assert result.exit_code == 0, result.output
    assert "Gradient flow" in result.output and "never active" in result.output
    report = json.loads(out_json.read_text())
    assert report["sites"][0]["dead_units"] == [2]
    assert report["batches"] == 3
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_data_file_with_labels_and_weights(model_file, tmp_path):
    data = tmp_path / "data.npz"
    np.savez(
        data,
        x=np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32),
        y=np.arange(50) % 3,
    )
    torch.manual_seed(1)
    weights = tmp_path / "w.pt"
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    torch.save(model.state_dict(), weights)
    result = _run(
        f"{model_file}:make_model", "--data", data, "--weights", weights, "--batches", "2"
    )
    assert result.exit_code == 0, result.output
    assert "can't die" not in result.output


def test_functional_sites_are_reported(model_file):
    result = _run(f"{model_file}:Functional", "--input-shape", "4")
    assert result.exit_code == 0, result.output
    assert "Functional:sigmoid#0 (fn)" in result.output


def _bad_weights(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"0.weight": torch.zeros(2, 2)}, path)
    return path


def _pickled_data(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    return path


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda f, t: ["nofile.py:make_model", "--input-shape", "4"], "does not exist"),
        (lambda f, t: [f"{f}", "--input-shape", "4"], "FILE.py:FACTORY"),
        (lambda f, t: [f"{f}:nope", "--input-shape", "4"], "has no callable 'nope'"),
        (lambda f, t: [f"{f}:broken", "--input-shape", "4"], "factory exploded"),
        (lambda f, t: [f"{f}:not_a_model", "--input-shape", "4"], "torch.nn.Module"),
        (lambda f, t: [f"{f}:make_model", "--input-shape", "5"], "rejected inputs of shape"),
        (lambda f, t: [f"{f}:make_model", "--input-shape", "a,b"], "positive integers"),
        (lambda f, t: [f"{f}:make_model"], "exactly one of --input-shape and --data"),
        (
            lambda f, t: [f"{f}:make_model", "--input-shape", "4", "--weights", _bad_weights(t)],
            "do not fit the model",
        ),
        (
            lambda f, t: [f"{f}:make_model", "--input-shape", "4", "--weights", t / "none.pt"],
            "does not exist",
        ),
        (lambda f, t: [f"{f}:make_model", "--data", _pickled_data(t)], "without pickles"),
        (
            lambda f, t: [f"{f}:make_model", "--input-shape", "4", "--json", t / "x.txt"],
            "expected a .json file",
        ),
    ],
)
def test_errors_are_one_clear_line(model_file, tmp_path, make_args, message):
    result = _run(*make_args(model_file, tmp_path))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1


def test_syntax_error_in_the_model_file(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def make(:\n")
    result = _run(f"{path}:make", "--input-shape", "4")
    assert result.exit_code == 1 and "Importing" in result.output
