"""`leaky diagnose FILE.py:FACTORY`: a model file the test writes, and every error case."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from leaky.app.cli import cli

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


CONSTANT = 3


def nan_weights():
    model = make_model()
    with torch.no_grad():
        model[2].weight[1, 1] = float("nan")
    return model


def sequence_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
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
    assert result.exit_code == 1, result.output  # its dead unit is a finding: "dying"
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
        (lambda f, t: [f"{f}:CONSTANT", "--input-shape", "4"], "is not callable (its type is int)"),
        (lambda f, t: [f"{t}:make_model", "--input-shape", "4"], "is a directory"),
        (lambda f, t: [f"{f}:make_model", "--input-shape", "5"], "failed on inputs of shape"),
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
            "Expected --json to be a .json file",
        ),
        (
            lambda f, t: [f"{f}:make_model", "--input-shape", "100000,100000,100"],
            "use a smaller --batch-size or --input-shape",
        ),
        (
            lambda f, t: [f"{f}:make_model", "--input-shape", "4", "--batch-size", str(10**12)],
            "use a smaller --batch-size or --input-shape",
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
    assert result.exit_code == 2 and "Importing" in result.output


def test_weights_file_errors_say_what_to_do(model_file, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file")
    pickled = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    spec = f"{model_file}:make_model"
    result = _run(spec, "--input-shape", "4", "--weights", garbage)
    assert result.exit_code == 2 and "not a file written by torch.save" in result.output
    result = _run(spec, "--input-shape", "4", "--weights", pickled)
    assert result.exit_code == 2 and "save model.state_dict() instead" in result.output


def _npz(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((8, 4), np.float32), "y": np.arange(8) * 7}, "class indices in [0, 2]"),
        ({"x": np.zeros((8, 4), np.float32), "y": -np.ones(8, int)}, "class indices in [0, 2]"),
        ({"x": np.zeros((8, 4), np.float32), "y": np.zeros((8, 5))}, "fit neither class labels"),
    ],
)
def test_bad_labels_are_one_line(model_file, tmp_path, arrays, message):
    result = _run(f"{model_file}:make_model", "--data", _npz(tmp_path, "d.npz", **arrays))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_float_targets_use_mse_not_truncated_labels(tmp_path):
    path = tmp_path / "reg.py"
    path.write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\n"
    )
    data = _npz(
        tmp_path,
        "r.npz",
        x=np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32),
        y=np.random.default_rng(1).random(64),
    )
    out = tmp_path / "r.json"
    result = _run(f"{path}:make", "--data", data, "--json", out)
    assert result.exit_code == 0, result.output
    assert all(layer["grad_norm"] > 0 for layer in json.loads(out.read_text())["layers"])


def test_layer_norm_at_the_end_does_not_fake_a_vanishing_verdict(tmp_path):
    path = tmp_path / "ln.py"
    path.write_text(
        "import torch\nfrom torch import nn\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),\n"
        "                         nn.Linear(64, 16), nn.LayerNorm(16))\n"
    )
    out = tmp_path / "r.json"
    result = _run(f"{path}:make", "--input-shape", "32", "--json", out)
    report = json.loads(out.read_text())
    assert result.exit_code == 0 and report["verdict"] == "healthy"
    assert [layer["name"] for layer in report["layers"]] == ["0", "2", "4"]


def test_a_bad_output_path_fails_before_the_run_and_names_the_option(model_file, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = _run(
        f"{model_file}:make_model",
        "--input-shape",
        "4",
        "--json",
        tmp_path / "r.json",
        "--plot",
        tmp_path / "afile" / "m.png",
    )
    assert result.exit_code == 2 and "--plot" in result.output
    assert not (tmp_path / "r.json").exists()


def test_examples_file_from_the_readme_runs():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "models.py"
    result = _run(f"{example}:make_model", "--input-shape", "1,28,28", "--batches", "2")
    # Its ten dead units of 64 (16%) are what leaky exists to find: a finding, exit 1.
    assert result.exit_code == 1, result.output
    assert "Verdict: dying: 16% of the units at '5' (relu) are dead" in result.output
    result = _run(
        f"{example}:make_model",
        "--input-shape",
        "1,28,28",
        "--batches",
        "2",
        "--dying-above",
        "0.2",
    )
    assert result.exit_code == 0 and "Verdict: healthy" in result.output, result.output


def test_nan_weights_exit_1_and_name_the_layer(model_file, tmp_path):
    out = tmp_path / "r.json"
    result = _run(f"{model_file}:nan_weights", "--input-shape", "4", "--json", out)
    assert result.exit_code == 1, result.output
    assert "Verdict: non-finite" in result.output and "'2'" in result.output
    assert "Traceback" not in result.output
    report = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    assert (report["verdict"], report["verdict_site"]) == ("non-finite", "2")


def test_nan_inputs_exit_1_and_name_the_input(model_file, tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x[5, 2] = np.nan
    data = _npz(tmp_path, "nan.npz", x=x, y=np.arange(20) % 3)
    result = _run(f"{model_file}:make_model", "--data", data, "--batches", "2")
    assert result.exit_code == 1, result.output
    assert "non-finite: NaN or infinite values in the model's input" in result.output


def test_a_healthy_model_still_exits_0(model_file):
    # One dead unit of its layer is under a threshold of half: the verdict is healthy.
    result = _run(f"{model_file}:make_model", "--input-shape", "4", "--dying-above", "0.5")
    assert result.exit_code == 0 and "Verdict: " in result.output


def test_a_failed_diagnosis_leaves_no_output_folders(model_file, tmp_path):
    result = _run(
        f"{model_file}:broken",
        "--input-shape",
        "4",
        "--json",
        tmp_path / "j" / "deep" / "r.json",
        "--plot",
        tmp_path / "p" / "m.png",
    )
    assert result.exit_code != 0 and "factory exploded" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.py"]


def test_unit_dim_is_inferred_for_sequences_and_can_be_overridden(model_file, tmp_path):
    out = tmp_path / "r.json"
    result = _run(f"{model_file}:sequence_model", "--input-shape", "12,4", "--json", out)
    assert result.exit_code == 0, result.output
    site = json.loads(out.read_text())["sites"][0]
    assert (site["units"], site["unit_dim"], site["unit_dim_from"]) == (16, 2, "Linear")
    assert "2 (Linear)" in result.output
    result = _run(
        f"{model_file}:sequence_model", "--input-shape", "12,4", "--unit-dim", "1", "--json", out
    )
    assert result.exit_code == 0, result.output
    site = json.loads(out.read_text())["sites"][0]
    assert (site["units"], site["unit_dim"], site["unit_dim_from"]) == (12, 1, "given")


def test_a_stock_transformer_encoder_is_diagnosed_in_forward_order(tmp_path):
    path = tmp_path / "tf.py"
    path.write_text(
        "import torch\nfrom torch import nn\n"
        "class Model(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(0)\n"
        "        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)\n"
        "        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)\n"
        "        self.head = nn.Linear(16, 3)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.encoder(x)[:, 0])\n"
    )
    out = tmp_path / "r.json"
    result = _run(f"{path}:Model", "--input-shape", "6,16", "--json", out)
    assert result.exit_code == 0, result.output
    layers = [layer["name"] for layer in json.loads(out.read_text())["layers"]]
    assert layers[-1] == "head"
    assert layers.index("encoder.layers.0.self_attn.out_proj") < layers.index(
        "encoder.layers.0.linear1"
    )


def test_a_model_file_that_exits_is_a_user_error_not_a_silent_exit(tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n")
    result = _run(f"{path}:make", "--input-shape", "4")
    assert result.exit_code == 2, result.output
    assert "Importing" in result.output and "sys.exit(3)" in result.output
    path.write_text("import sys\n\ndef make():\n    sys.exit(0)\n")
    result = _run(f"{path}:make", "--input-shape", "4")
    assert result.exit_code == 2 and "sys.exit(0)" in result.output, result.output


_LANGUAGE_MODELS = """
import dataclasses
import torch
from torch import nn


@dataclasses.dataclass
class Output:  # as Hugging Face's ModelOutput: the loss (absent) first, then the logits
    loss: torch.Tensor | None
    logits: torch.Tensor


class TinyLM(nn.Module):
    def __init__(self, returns="dataclass"):
        super().__init__()
        self.returns = returns
        self.embed = nn.Embedding(50, 16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 50))

    def forward(self, ids):
        logits = self.mlp(self.embed(ids))
        if self.returns == "dict":
            return {"hidden": self.embed(ids), "logits": logits}
        return Output(None, logits)


def as_dataclass():
    return TinyLM()


def as_dict():
    return TinyLM("dict")
"""


@pytest.mark.parametrize("factory", ["as_dataclass", "as_dict"])
def test_a_language_model_on_token_ids_returning_a_model_output(tmp_path, factory):
    path = tmp_path / "lm.py"
    path.write_text(_LANGUAGE_MODELS)
    out = tmp_path / "r.json"
    args = [f"{path}:{factory}", "--input-shape", "12", "--input-range", "0,50"]
    result = _run(*args, "--json", out)
    assert result.exit_code in (0, 1), result.output
    report = json.loads(out.read_text())
    assert [layer["name"] for layer in report["layers"]] == ["embed", "mlp.0", "mlp.2"]
    # Token ids, not floats: a float input fails in the Embedding, and ids out of range too.
    result = _run(f"{path}:{factory}", "--input-shape", "12")
    assert result.exit_code == 2 and "failed on inputs" in result.output
    result = _run(*args[:3], "--input-range", "0,5000")
    assert result.exit_code == 2 and "failed on inputs" in result.output
    result = _run(*args[:3], "--input-range", "5,x")
    assert result.exit_code == 2 and "Expected --input-range as two integers" in result.output
