"""`leaky memory`: what autograd keeps per module, the model against its leaky copy.

Checked on models we did not write the way leaky's modules are written: Radford et al.'s
DCGAN discriminator as pytorch/examples writes it, a residual stack, PyTorch's own
transformer encoder and a GELU MLP. The per-module bytes come from saved-tensor hooks; the
totals are checked against an independent count that walks the autograd graph.
"""

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from leaky.app.cli import cli
from leaky.diagnosis.memory_report import kept_by_module, leaky_copy, memory_report
from leaky.lab.benchmark_models import build

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import models as example_models  # noqa: E402


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _tensors(item)


def graph_saved_bytes(output: torch.Tensor, model: nn.Module) -> int:
    """Distinct storages the autograd graph behind ``output`` holds, parameters left out.

    Another way to the same number: the graph's nodes are walked and their saved tensors
    read back (``_saved_*`` of built-in ops, ``saved_tensors`` of custom Functions).
    """
    fixed = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages, stack, visited = {}, [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        values = []
        for name in dir(node):
            if name.startswith("_saved_"):
                try:
                    values.append(getattr(node, name))
                except RuntimeError:  # freed, or not a tensor
                    continue
        if hasattr(node, "saved_tensors"):
            values.append(node.saved_tensors)
        for tensor in _tensors(values):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in fixed and storage.nbytes():
                storages[storage.data_ptr()] = storage.nbytes()
        stack.extend(next_node for next_node, _ in node.next_functions)
    return sum(storages.values())


def _dcgan():
    return example_models.dcgan_discriminator(), torch.randn(4, 3, 64, 64)


def _residual():
    model, x, _ = build("resnet", "torch", True)
    return model, x[:8]


def _encoder():
    return example_models.transformer_encoder(), torch.randn(4, 32, 128)


def _gelu_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU())
    return model, torch.randn(16, 32)


def _relu_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(inplace=True))
    return model, torch.randn(16, 32)


MODELS = {
    "dcgan": _dcgan,
    "residual": _residual,
    "encoder": _encoder,
    "gelu": _gelu_mlp,
    "relu": _relu_mlp,
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("converted", [False, True])
def test_the_modules_add_up_to_an_independent_count_of_the_graph(name, converted):
    model, x = MODELS[name]()
    if converted:
        model, _ = leaky_copy(model)
    with kept_by_module(model) as kept:
        output = model(x)
    total = sum(bytes_.total for bytes_ in kept.values())
    assert total == graph_saved_bytes(output, model) > 0


def test_the_dcgan_discriminator_keeps_less_and_computes_the_same():
    model, x = _dcgan()
    report = memory_report(model, x)
    rows = {row.name: row for row in report.rows}
    assert report.before_total == sum(row.before for row in report.rows)
    # Its three BatchNorm + LeakyReLU blocks fuse; the input layer's activation has no BatchNorm.
    fused = [row for row in report.rows if row.after_class.endswith("BatchNormLeakyReLU2d")]
    assert [row.name for row in fused] == ["3", "6", "9"]
    assert rows["1"].after_class == "leaky.nn.LeakyReLU"
    assert rows["4"].after == 0 and "fused" in rows["4"].why
    # What goes: each fused BatchNorm's input (its convolution's output), kept no more, and
    # one of the two per-channel statistics torch's BatchNorm keeps.
    conv_outputs = sum(rows[name].before_kinds["input"] for name in ("3", "6", "9"))
    statistics = 4 * (128 + 256 + 512)
    assert report.saved_bytes == conv_outputs + statistics
    assert report.output_difference == 0 and report.gradient_difference < 1e-4
    assert "already keeps only its output" in rows["1"].why  # in place in pytorch/examples


def test_a_residual_stack_fuses_only_what_feeds_its_activation_directly():
    model, x = _residual()
    report = memory_report(model, x)
    rows = {row.name: row for row in report.rows}
    assert rows["3.norm2"].after_class == "torch.nn.BatchNorm2d"  # the shortcut's sum follows
    assert rows["3.norm_act1.0"].after_class == "leaky.nn.BatchNormLeakyReLU2d"
    assert "instead" in rows["3.act"].why  # torch's kept the sum, leaky's keeps its output
    assert 0 < report.after_total < report.before_total


@pytest.mark.parametrize("name", ["encoder", "gelu", "relu"])
def test_models_leaky_cannot_help_say_so(name):
    model, x = MODELS[name]()
    report = memory_report(model, x)
    assert report.saved_bytes == 0 and not report.changes
    assert any("leaky changes nothing on this model" in note for note in report.notes)
    gelu = [row for row in report.rows if row.before_class == "torch.nn.GELU"]
    if name == "gelu":
        assert gelu and all("leaky has no GELU that keeps less" in row.why for row in gelu)
    relu = [row for row in report.rows if row.before_class == "torch.nn.ReLU"]
    if name == "relu":
        assert len(relu) == 2
        assert all("already keeps only its output" in row.why for row in relu)
    assert "leaky changes nothing" in report.table()


def test_a_slope_that_keeps_the_input_is_named_per_module():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.LeakyReLU(-0.1), nn.Linear(16, 16), nn.PReLU(16), nn.Linear(16, 1)
    )
    report = memory_report(model, torch.randn(4, 8))
    rows = {row.name: row for row in report.rows}
    assert "slope is <= 0" in rows["1"].why and rows["1"].after_kinds == {"input": 256}
    assert "PReLU keeps its input too" in rows["3"].why
    assert report.output_difference == 0


def test_rrelu_in_training_differs_by_its_random_slopes_and_says_so():
    model = nn.Sequential(nn.Linear(8, 16), nn.RReLU(), nn.Linear(16, 1))
    report = memory_report(model, torch.randn(32, 8))
    assert any("RReLU in training mode" in note for note in report.notes)
    assert report.saved_bytes > 0
    model.eval()
    assert memory_report(model, torch.randn(32, 8)).output_difference == 0


def test_the_command_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "memory.json"
    target = f"{EXAMPLES / 'models.py'}:dcgan_discriminator"
    arguments = ["memory", target, "--input-shape", "3,64,64", "--batch-size", "4"]
    result = CliRunner().invoke(cli, [*arguments, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "total:" in result.output and "step peak:" in result.output
    data = json.loads(out.read_text())
    assert data["before_total"] == sum(row["before"] for row in data["rows"])
    assert data["saved_bytes"] > 0 and set(data["peak_growth_bytes"]) == {"as it is", "leaky"}
    assert "VmHWM" in data["peak_method"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_peak_is_the_cuda_allocators(tmp_path):
    target = f"{EXAMPLES / 'models.py'}:dcgan_discriminator"
    arguments = ["memory", target, "--input-shape", "3,64,64", "--device", "cuda"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "CUDA allocator's peak" in result.output and "total:" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["no_such.py:make", "--input-shape", "4"], "does not exist"),
        (["{models}:dcgan_discriminator", "--input-shape", "3,x"], "Expected --input-shape"),
        (["{models}:dcgan_discriminator", "--input-shape", "5"], "The model failed on inputs"),
        (["{models}:dcgan_discriminator"], "Missing option '--input-shape'"),
        pytest.param(
            ["{models}:dcgan_discriminator", "--input-shape", "3,8,8", "--device", "cuda"],
            "--device cuda needs a GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, arguments, message):
    out = tmp_path / "m.json"
    arguments = [a.replace("{models}", str(EXAMPLES / "models.py")) for a in arguments]
    result = CliRunner().invoke(cli, ["memory", *arguments, "--no-peak", "--json", str(out)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


def test_diagnose_can_add_the_memory_report():
    target = f"{EXAMPLES / 'models.py'}:make_model"
    arguments = ["diagnose", target, "--input-shape", "1,28,28", "--batches", "2", "--memory"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 1, result.output  # its verdict is "dying"
    assert "What leaky would save" in result.output and "leaky changes nothing" in result.output
