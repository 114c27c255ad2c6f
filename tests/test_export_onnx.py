"""ONNX export: every leaky module as standard operators, checked against onnxruntime."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra (leaky[onnx])")
ort = pytest.importorskip("onnxruntime", reason="the tests run exports with onnxruntime")
pytest.importorskip("onnxscript", reason="PyTorch's ONNX exporter needs onnxscript")

from leaky import export, nn  # noqa: E402
from leaky.app.cli import cli  # noqa: E402
from leaky.diagnosis.convert import convert  # noqa: E402
from leaky.diagnosis.fuse import fuse_batch_norm  # noqa: E402
from leaky.nn import get_activation  # noqa: E402

# Every kind of module, each on its own input, so each output's graph is that module's alone.
# (name, module factory, input shape, the ONNX operators that must compute that output)
KINDS = [
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), (2, 3, 4, 4), {"LeakyRelu"}),
    ("leaky_relu_inplace", lambda: nn.LeakyReLU(0.05, inplace=True), (2, 3), {"LeakyRelu"}),
    ("prelu_nchw", lambda: nn.PReLU(3), (2, 3, 4, 4), {"PRelu"}),
    ("prelu_nc", lambda: nn.PReLU(3), (5, 3), {"PRelu"}),
    ("prelu_ncl", lambda: nn.PReLU(3), (2, 3, 6), {"PRelu"}),
    ("prelu_shared", lambda: nn.PReLU(), (2, 3, 4, 4), {"PRelu"}),
    ("rrelu_eval", lambda: nn.RReLU(0.1, 0.3), (2, 3, 4, 4), {"LeakyRelu"}),
    ("torch_rrelu_eval", lambda: torch.nn.RReLU(0.1, 0.3), (2, 3), {"LeakyRelu"}),
    (
        "bn_leaky_1d",
        lambda: nn.BatchNormLeakyReLU1d(3, negative_slope=0.1),
        (4, 3, 5),
        {"BatchNormalization", "LeakyRelu"},
    ),
    (
        "bn_leaky_2d",
        lambda: nn.BatchNormLeakyReLU2d(3, negative_slope=0.2),
        (2, 3, 4, 4),
        {"BatchNormalization", "LeakyRelu"},
    ),
    (
        "bn_leaky_3d",
        lambda: nn.BatchNormLeakyReLU3d(3),
        (2, 3, 2, 3, 3),
        {"BatchNormalization", "LeakyRelu"},
    ),
    (
        "bias_leaky",
        lambda: nn.BiasLeakyReLU(3, gain="he"),
        (2, 3, 4, 4),
        {"Add", "LeakyRelu", "Mul"},
    ),
    (
        "bias_leaky_clamp",
        lambda: nn.BiasLeakyReLU(3, clamp=0.5),
        (5, 3),
        {"Add", "LeakyRelu", "Mul", "Clip"},
    ),
    ("relu", lambda: get_activation("relu"), (2, 3), {"Relu"}),
    ("sigmoid", lambda: get_activation("sigmoid"), (2, 3), {"Sigmoid"}),
    ("tanh", lambda: get_activation("tanh"), (2, 3), {"Tanh"}),
]
NAMES = [name for name, *_ in KINDS]


class EveryKind(torch.nn.Module):
    """One branch per kind of module; ``forward`` takes one input per branch."""

    def __init__(self) -> None:
        super().__init__()
        self.branches = torch.nn.ModuleDict({name: make() for name, make, *_ in KINDS})

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # In-place modules get a copy, so the inputs stay as the test made them.
        return tuple(m(x.clone()) for m, x in zip(self.branches.values(), inputs, strict=True))


def _randomise(model: torch.nn.Module) -> None:
    # Learned slopes, biases and BatchNorm statistics away from their defaults, so that a
    # dropped or mis-shaped weight changes the outputs.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point():
                low, high = (0.5, 2.0) if name.endswith("running_var") else (-0.5, 0.5)
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _upstream_ops(graph, output_name: str) -> set[str]:
    """Operator types of the nodes that compute ``output_name``."""
    producer = {out: node for node in graph.node for out in node.output}
    ops, todo, seen = set(), [output_name], set()
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        ops.add(node.op_type)
        todo.extend(node.input)
    return ops


def _assert_standard(model_proto) -> None:
    custom = [
        (n.op_type, n.domain) for n in model_proto.graph.node if n.domain not in ("", "ai.onnx")
    ]
    assert not custom, f"custom-domain nodes: {custom}"
    assert not model_proto.functions, [f.name for f in model_proto.functions]
    assert {o.domain for o in model_proto.opset_import} <= {"", "ai.onnx"}
    onnx.checker.check_model(model_proto, full_check=True)


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    model = EveryKind()
    _randomise(model)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(shape, generator=generator) for _, _, shape, _ in KINDS)
    path = export.onnx(model, inputs, tmp_path_factory.mktemp("onnx") / "every_kind.onnx")
    proto = onnx.load(str(path))
    session = _session(path)
    feed = {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs, strict=True)}
    with torch.no_grad():
        expected = model(*inputs)
    return model, inputs, proto, session.run(None, feed), expected


@pytest.mark.slow  # one export of every kind: seconds on a busy 2-core machine
@pytest.mark.parametrize("index", range(len(KINDS)), ids=NAMES)
def test_each_module_exports_as_its_standard_operators_and_matches(every_kind, index):
    _, _, proto, outputs, expected = every_kind
    name, _, _, operators = KINDS[index]
    found = _upstream_ops(proto.graph, proto.graph.output[index].name)
    assert found == operators, f"{name}: {found}"
    np.testing.assert_allclose(outputs[index], expected[index].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_the_exported_graph_is_standard_onnx_and_passes_the_checker(every_kind):
    _, _, proto, _, _ = every_kind
    _assert_standard(proto)


@pytest.mark.slow
def test_slopes_and_shapes_are_the_modules(every_kind):
    model, inputs, proto, _, _ = every_kind
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for index, name in enumerate(NAMES):
        nodes = _nodes_for(proto.graph, proto.graph.output[index].name)
        module = model.branches[name]
        for node in nodes:
            if node.op_type == "LeakyRelu":
                (alpha,) = [a.f for a in node.attribute if a.name == "alpha"] or [0.01]
                slope = (
                    (module.lower + module.upper) / 2
                    if isinstance(module, torch.nn.RReLU)
                    else module.negative_slope
                )
                assert math.isclose(alpha, slope, rel_tol=1e-6), (name, alpha, slope)
            if node.op_type == "PRelu":
                slope = initializers[node.input[1]]
                x = inputs[index]
                # Broadcastable over the channels (dim 1) the way runtimes accept.
                assert np.broadcast_shapes(slope.shape, tuple(x.shape)) == tuple(x.shape)
                np.testing.assert_array_equal(
                    slope.reshape(-1), module.weight.detach().numpy().reshape(-1)
                )
                if module.num_parameters > 1:
                    assert slope.shape[-(x.dim() - 1)] == module.num_parameters, slope.shape


def _nodes_for(graph, output_name: str) -> list:
    producer = {out: node for node in graph.node for out in node.output}
    nodes, todo = [], [output_name]
    while todo:
        node = producer.get(todo.pop())
        if node is not None and node not in nodes:
            nodes.append(node)
            todo.extend(node.input)
    return nodes


@pytest.mark.slow
def test_export_leaves_the_model_as_it_was(every_kind):
    model, *_ = every_kind
    assert type(model.branches["leaky_relu"]) is nn.LeakyReLU
    assert type(model.branches["bn_leaky_2d"]) is nn.BatchNormLeakyReLU2d
    assert all(p.requires_grad for p in model.parameters())


def test_plain_copy_keeps_the_model_and_its_mode():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), nn.BatchNormLeakyReLU1d(3), nn.RReLU())
    model.train()
    plain = export.plain_torch_copy(model)
    assert [type(m).__name__ for m in plain.modules()][1:] == [
        "Linear",
        "Sequential",
        "BatchNorm1d",
        "LeakyReLU",
        "LeakyReLU",
    ]
    assert not plain.training and not any(p.requires_grad for p in plain.parameters())
    assert model.training and type(model[1]) is nn.BatchNormLeakyReLU1d
    # A module that is itself one leaky module, and a shared module stays shared.
    assert type(export.plain_torch_copy(nn.BiasLeakyReLU(2))) is export.BiasLeakyReLUGraph
    shared = nn.PReLU(2)
    twice = export.plain_torch_copy(torch.nn.Sequential(shared, shared))
    assert twice[0] is twice[1] and type(twice[0]) is torch.nn.PReLU


def test_bias_graph_matches_the_fused_op():
    fused = nn.BiasLeakyReLU(4, negative_slope=0.1, gain=1.7, clamp=1.2, dim=2)
    _randomise(fused)
    x = torch.randn(3, 2, 5, 4).transpose(2, 3)  # channels in dim 2, not contiguous
    with torch.no_grad():
        torch.testing.assert_close(export.BiasLeakyReLUGraph(fused)(x), fused(x))


def _small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
        torch.nn.ReLU(),
        torch.nn.Linear(10, 4),
    )


@pytest.mark.slow
def test_a_converted_and_fused_cnn_exports_and_matches(tmp_path):
    model = _small_cnn()
    convert(model, "leaky_relu", negative_slope=0.1)
    fused = fuse_batch_norm(model)
    assert len(fused) == 2 and isinstance(model[1], nn.BatchNormLeakyReLU2d)
    assert isinstance(model[9], nn.LeakyReLU)
    _randomise(model)
    model.eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    path = export.onnx(model, x, tmp_path / "cnn.onnx")
    proto = onnx.load(str(path))
    _assert_standard(proto)
    types = export.node_types(path)
    # The exporter folds each BatchNorm into the convolution before it.
    assert types == ["Conv", "LeakyRelu", "ReduceMean", "Reshape", "Gemm"], types
    assert not {"Relu"} & set(types), "every ReLU was converted"
    session = _session(path)
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(output, model(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "example", "error", "words"),
    [
        ("not a module", torch.zeros(1), TypeError, "torch.nn.Module"),
        (torch.nn.Linear(4, 2), [torch.zeros(1, 4)], TypeError, "tuple of tensors"),
        (torch.nn.Linear(4, 2), torch.zeros(1, 5), ValueError, "shape (1, 5)"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, model, example, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        export.onnx(model, example, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="to exist"):
        export.onnx(torch.nn.ReLU(), torch.zeros(2), tmp_path / "missing" / "m.onnx")
    assert not (tmp_path / "missing").exists()


_FACTORY = """
import torch

def make_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 2)
    )
"""


@pytest.mark.slow
def test_cli_exports_a_converted_model(tmp_path):
    (tmp_path / "models.py").write_text(_FACTORY)
    out = tmp_path / "new" / "cnn.onnx"  # the folder is made
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "onnx",
            f"{tmp_path / 'models.py'}:make_cnn",
            "--input-shape",
            "3,6,6",
            "--batch-size",
            "2",
            "--convert",
            "leaky_relu",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote {out} (ONNX operators: Conv, LeakyRelu, Reshape, Gemm)"
    (x,) = _session(out).get_inputs()
    assert x.shape == [2, 3, 6, 6]


@pytest.mark.parametrize(
    ("shape", "out", "words"),
    [
        ("3,5,5", "new/deeper/cnn.onnx", "fails on an example input of shape (1, 3, 5, 5)"),
        ("3,6,6", "models.py/cnn.onnx", "is a file"),
        ("3,6,6", "cnn.txt", "Expected --out to be a .onnx file"),
        ("3,x", "cnn.onnx", "--input-shape as positive integers"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_no_file(tmp_path, shape, out, words):
    (tmp_path / "models.py").write_text(_FACTORY)
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "onnx",
            f"{tmp_path / 'models.py'}:make_cnn",
            "--input-shape",
            shape,
            "--out",
            str(tmp_path / out),
        ],
    )
    assert result.exit_code == 2, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.py"]


def test_without_the_onnx_extra_the_cli_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    (tmp_path / "models.py").write_text(_FACTORY)
    target = f"{tmp_path / 'models.py'}:make_cnn"
    out = tmp_path / "new" / "cnn.onnx"
    result = CliRunner().invoke(
        cli, ["export", "onnx", target, "--input-shape", "3,6,6", "--out", str(out)]
    )
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0, result.output
    assert "pip install 'leaky[onnx]'" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.py"]
