"""BatchNorm + Leaky ReLU keeping only its output: against the float64 reference and PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from leaky import functional as F
from leaky import reference
from leaky.nn import BatchNormLeakyReLU1d, BatchNormLeakyReLU2d, BatchNormLeakyReLU3d

_Function = "_BatchNormLeakyReLUFunctionBackward"


def _inputs(shape, dtype=torch.float32, seed=0, weight_low=0.5):
    generator = torch.Generator().manual_seed(seed)
    channels = shape[1]
    x = (torch.randn(shape, generator=generator, dtype=torch.float64) * 2 + 0.3).to(dtype)
    weight = (torch.rand(channels, generator=generator, dtype=torch.float64) + weight_low).to(dtype)
    weight[::2] *= -1  # negative scales are as invertible as positive ones
    bias = torch.randn(channels, generator=generator, dtype=torch.float64).to(dtype)
    running_mean = torch.randn(channels, generator=generator, dtype=torch.float64).to(dtype)
    running_var = (torch.rand(channels, generator=generator, dtype=torch.float64) + 0.5).to(dtype)
    grad = torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)
    return x, weight, bias, running_mean, running_var, grad


def _run(op, x, weight, bias, running_mean, running_var, grad, training, slope):
    x = x.clone().requires_grad_()
    weight = weight.clone().requires_grad_()
    bias = bias.clone().requires_grad_()
    stats = (None, None) if running_mean is None else (running_mean.clone(), running_var.clone())
    y = op(x, *stats, weight, bias, training, 0.1, 1e-5, slope)
    grads = torch.autograd.grad(y, (x, weight, bias), grad)
    return y, stats, grads, y.grad_fn


def _composition(x, running_mean, running_var, weight, bias, training, momentum, eps, slope):
    normalized = torch_f.batch_norm(
        x, running_mean, running_var, weight, bias, training, momentum, eps
    )
    return torch_f.leaky_relu(normalized, slope)


SHAPES = [(16, 5), (6, 4, 7), (4, 3, 5, 5), (2, 3, 3, 4, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("slope", [0.01, 0.2, 1.5])
def test_matches_float64_reference(shape, training, slope):
    x, weight, bias, mean, var, grad = _inputs(shape, torch.float64)
    stats = {} if training else {"mean": mean.numpy(), "var": var.numpy()}
    args = (x.numpy(), weight.numpy(), bias.numpy())
    y, _, (grad_x, grad_w, grad_b), grad_fn = _run(
        F.batch_norm_leaky_relu, x, weight, bias, mean, var, grad, training, slope
    )
    assert type(grad_fn).__name__ == _Function  # the output-only path, not the fallback
    expected_y = reference.batch_norm_leaky_relu(*args, slope, 1e-5, **stats)
    np.testing.assert_allclose(y.detach().numpy(), expected_y, rtol=1e-12, atol=1e-12)
    expected = reference.batch_norm_leaky_relu_gradients(*args, grad.numpy(), slope, 1e-5, **stats)
    for got, want in zip((grad_x, grad_w, grad_b), expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_statistics_bitwise_pytorch_gradients_to_rounding(shape, training, dtype):
    inputs = _inputs(shape, dtype)
    ours = _run(F.batch_norm_leaky_relu, *inputs, training, 0.2)
    theirs = _run(_composition, *inputs, training, 0.2)
    assert type(ours[3]).__name__ == _Function
    assert torch.equal(ours[0], theirs[0])
    for got, want in zip(ours[1], theirs[1], strict=True):
        assert torch.equal(got, want)  # running statistics updated exactly as PyTorch does
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
    for got, want in zip(ours[2], theirs[2], strict=True):
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_no_worse_than_pytorch_against_float64(dtype):
    # Both are compared with the float64 composition on the same (rounded) inputs: the
    # output path rebuilds x_hat from a half-precision output, PyTorch from its input.
    inputs = _inputs((32, 4, 6, 6), dtype, weight_low=0.8)
    exact = _run(_composition, *(t.double() for t in inputs), True, 0.2)
    ours = _run(F.batch_norm_leaky_relu, *inputs, True, 0.2)
    theirs = _run(_composition, *inputs, True, 0.2)
    assert type(ours[3]).__name__ == _Function
    assert ours[0].dtype == dtype and ours[2][0].dtype == dtype
    torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=0)
    for got, torch_got, want in zip(ours[2], theirs[2], exact[2], strict=True):
        error = (got.double() - want).abs().max().item()
        torch_error = (torch_got.double() - want).abs().max().item()
        scale = want.abs().max().item()
        assert error <= 4 * torch_error + 1e-3 * scale, (error, torch_error, scale)


def test_gradcheck_float64():
    x, weight, bias, mean, var, _ = _inputs((6, 3, 4), torch.float64)
    for training in (True, False):
        assert torch.autograd.gradcheck(
            lambda x, w, b, training=training: F.batch_norm_leaky_relu(
                x, mean.clone(), var.clone(), w, b, training, 0.1, 1e-5, 0.1
            ),
            (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_()),
        )


def test_double_backward_needs_save_input():
    x, weight, bias, _, _, _ = _inputs((6, 3, 4), torch.float64)
    args = (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_())
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: F.batch_norm_leaky_relu(
            x, None, None, w, b, True, negative_slope=0.1, save="input"
        ),
        args,
    )
    y = F.batch_norm_leaky_relu(x, None, None, weight, bias, True, negative_slope=0.1)
    with pytest.raises(RuntimeError, match="save='input'"):
        torch.autograd.grad(y.sum(), x, create_graph=True)


@pytest.mark.parametrize(
    ("slope", "weight_of_channel_1", "why"),
    [
        (0.0, 1.0, "ReLU forgets every negative input"),
        (-0.5, 1.0, "a negative slope folds both signs onto y >= 0"),
        (0.2, 0.0, "a zero weight maps every input to the bias"),
        (0.2, 1e-6, "|bias| / |weight| too large to rebuild x_hat"),
    ],
)
def test_falls_back_to_composition_when_the_output_cannot_give_the_input(
    slope, weight_of_channel_1, why
):
    x, weight, bias, mean, var, grad = _inputs((8, 3, 5))
    weight[1] = weight_of_channel_1
    bias[1] = 0.5
    ours = _run(F.batch_norm_leaky_relu, x, weight, bias, mean, var, grad, True, slope)
    theirs = _run(_composition, x, weight, bias, mean, var, grad, True, slope)
    assert type(ours[3]).__name__ != _Function, why
    for got, want in zip(
        (ours[0], *ours[1], *ours[2]), (theirs[0], *theirs[1], *theirs[2]), strict=True
    ):
        assert torch.equal(got, want)


@pytest.mark.parametrize("channels", [5, 12])
def test_a_channel_count_mismatch_is_refused_before_any_kernel(channels):
    # torch.native_batch_norm reads out of bounds here; F.batch_norm checks.
    module = BatchNormLeakyReLU2d(8)
    with pytest.raises(ValueError, match="Expected `running_mean` to have"):
        module(torch.randn(2, channels, 4, 4, requires_grad=True))
    weight = torch.ones(8, requires_grad=True)
    with pytest.raises(ValueError, match="Expected `weight` to have"):
        F.batch_norm_leaky_relu(torch.randn(4, channels), None, None, weight, training=True)


def test_no_graph_is_composition_in_place():
    x, weight, bias, mean, var, _ = _inputs((4, 3, 5))
    with torch.no_grad():
        y = F.batch_norm_leaky_relu(x, mean.clone(), var.clone(), weight, bias, True, 0.1)
    assert y.grad_fn is None
    assert torch.equal(
        y, _composition(x, mean.clone(), var.clone(), weight, bias, True, 0.1, 1e-5, 0.01)
    )


def test_keeps_only_the_output():
    x, weight, bias, mean, var, _ = _inputs((4, 3, 5))
    x.requires_grad_()
    y = F.batch_norm_leaky_relu(x, mean, var, weight.requires_grad_(), bias, True, 0.1)
    saved = [t for t in y.grad_fn.saved_tensors if t is not None]
    big = [t for t in saved if t.numel() == x.numel()]
    assert len(big) == 1 and big[0].data_ptr() == y.data_ptr()
    assert all(t.numel() <= 3 for t in saved if t is not big[0])


class _NewFullSizeTensors(TorchDispatchMode):
    """Names the ops that return a new tensor of at least ``numel`` values."""

    def __init__(self, numel):
        super().__init__()
        self.numel, self.ops = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            new = isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in given
            if new and t.numel() >= self.numel:
                self.ops.append(str(func))
        return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [True, False])
def test_backward_makes_one_full_size_tensor_where_the_pytorch_pair_makes_two(
    monkeypatch, dtype, training
):
    import leaky.core.batch_norm_leaky_relu as fused

    monkeypatch.setattr(fused, "_SLICE_ELEMENTS", 1)  # z rebuilt one sample at a time
    x, weight, bias, mean, var, grad = _inputs((6, 3, 4, 5), dtype)
    counts = {}
    for name, op in (("fused", F.batch_norm_leaky_relu), ("pair", _composition)):
        y = op(
            x.clone().requires_grad_(), mean.clone(), var.clone(),
            weight.clone().requires_grad_(), bias.clone().requires_grad_(),
            training, 0.1, 1e-5, 0.2,
        )  # fmt: skip
        with _NewFullSizeTensors(x.numel()) as mode:
            y.backward(grad)
        counts[name] = mode.ops
    assert len(counts["fused"]) == 1, counts  # dL/dz, which becomes dL/dx
    assert len(counts["pair"]) >= 2, counts


@pytest.mark.parametrize("slope", [0.0, 0.01])
def test_the_fallback_keeps_no_more_than_the_in_place_pytorch_pair(slope):
    # With slope >= 0 the fallback runs Leaky ReLU in place on BatchNorm's output, as
    # BatchNorm2d + LeakyReLU(inplace=True) does: the input and the output are kept, not a
    # third tensor. (A negative slope needs the out-of-place activation.)
    x, weight, bias, mean, var, _ = _inputs((4, 3, 5))
    x.requires_grad_()
    y = F.batch_norm_leaky_relu(x, mean, var, weight, bias, True, 0.1, save="input")
    big = {t.data_ptr() for t in _saved_tensors(y) if t.numel() == x.numel()}
    assert big == {x.data_ptr(), y.data_ptr()}


def _saved_tensors(y: torch.Tensor) -> list[torch.Tensor]:
    # Every tensor autograd keeps for y's backward, through the whole graph.
    seen, stack, saved = set(), [y.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        saved += [
            getattr(node, name)
            for name in dir(node)
            if name.startswith("_saved_") and isinstance(getattr(node, name), torch.Tensor)
        ]
        stack += [next_node for next_node, _ in node.next_functions]
    return saved


def test_channels_last_and_non_contiguous():
    x, weight, bias, mean, var, grad = _inputs((4, 3, 5, 6))
    x = x.contiguous(memory_format=torch.channels_last)
    ours = _run(F.batch_norm_leaky_relu, x, weight, bias, mean, var, grad, True, 0.2)
    theirs = _run(_composition, x, weight, bias, mean, var, grad, True, 0.2)
    assert ours[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours[0], theirs[0])
    torch.testing.assert_close(ours[2], theirs[2])
    strided = _inputs((4, 6, 5))[0][:, ::2]
    inputs = (strided, *_inputs((4, 3, 5))[1:5], torch.ones(4, 3, 5))
    ours = _run(F.batch_norm_leaky_relu, *inputs, True, 0.2)
    theirs = _run(_composition, *inputs, True, 0.2)
    assert torch.equal(ours[0], theirs[0])
    torch.testing.assert_close(ours[2], theirs[2])


def test_empty_batch_and_one_value_per_channel_behave_as_pytorch():
    _, weight, bias, mean, var, _ = _inputs((4, 3, 5))
    empty = torch.zeros(0, 3, 5, requires_grad=True)
    y = F.batch_norm_leaky_relu(empty, mean.clone(), var.clone(), weight, bias, True)
    assert y.shape == (0, 3, 5)
    y.sum().backward()
    assert empty.grad.shape == (0, 3, 5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm_leaky_relu(torch.randn(1, 3), None, None, training=True)


@given(
    values=st.lists(
        st.sampled_from([0.0, -0.0, 1e-40, -1e-40, 3.5, -2.25, 1e30, -1e30]),
        min_size=8,
        max_size=8,
    )
)
def test_edge_values_forward_equals_composition(values):
    x = torch.tensor(values, dtype=torch.float32).view(4, 2)
    weight, bias = torch.tensor([1.5, -0.75]), torch.tensor([0.25, -0.5])
    for training in (True, False):
        mean, var = torch.zeros(2), torch.ones(2)
        ours = F.batch_norm_leaky_relu(x, mean, var, weight, bias, training, 0.1, 1e-5, 0.1)
        theirs = _composition(
            x, torch.zeros(2), torch.ones(2), weight, bias, training, 0.1, 1e-5, 0.1
        )
        torch.testing.assert_close(ours, theirs, equal_nan=True, rtol=0, atol=0)


def test_nan_and_inf_propagate_as_in_pytorch():
    x = torch.tensor([[1.0, float("nan")], [2.0, float("inf")], [-3.0, 0.5]])
    weight, bias = torch.tensor([1.0, 2.0]), torch.zeros(2)
    ours = _run(F.batch_norm_leaky_relu, x, weight, bias, None, None, torch.ones(3, 2), True, 0.1)
    theirs = _run(_composition, x, weight, bias, None, None, torch.ones(3, 2), True, 0.1)
    torch.testing.assert_close(ours[0], theirs[0], equal_nan=True)
    torch.testing.assert_close(ours[2], theirs[2], equal_nan=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"negative_slope": float("nan")}, ValueError, "negative_slope"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"save": "mask"}, ValueError, "save"),
        ({"training": False}, ValueError, "running_mean"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    arguments = {"training": True, **kwargs}
    with pytest.raises(error, match=match):
        F.batch_norm_leaky_relu(torch.randn(4, 3), None, None, **arguments)
    with pytest.raises(TypeError, match="floating-point"):
        F.batch_norm_leaky_relu(torch.ones(4, 3, dtype=torch.long), None, None, training=True)


# ------------------------------------------------------------------------------- modules
MODULES = [
    (BatchNormLeakyReLU1d, torch.nn.BatchNorm1d, (8, 4, 5)),
    (BatchNormLeakyReLU1d, torch.nn.BatchNorm1d, (8, 4)),
    (BatchNormLeakyReLU2d, torch.nn.BatchNorm2d, (4, 4, 5, 5)),
    (BatchNormLeakyReLU3d, torch.nn.BatchNorm3d, (2, 4, 3, 3, 3)),
]


@pytest.mark.parametrize(("fused_class", "torch_class", "shape"), MODULES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"momentum": None},
        {"affine": False},
        {"track_running_stats": False},
        {"momentum": 0.3, "eps": 1e-3},
    ],
)
def test_module_trains_like_batchnorm_then_leaky_relu(fused_class, torch_class, shape, options):
    torch.manual_seed(0)
    fused = fused_class(shape[1], negative_slope=0.2, **options)
    pair = torch.nn.Sequential(torch_class(shape[1], **options), torch.nn.LeakyReLU(0.2))
    if fused.affine:
        with torch.no_grad():
            fused.weight.uniform_(0.5, 1.5)
            fused.bias.uniform_(-0.5, 0.5)
    pair[0].load_state_dict(fused.state_dict())
    for step in range(3):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(step), requires_grad=True)
        y_fused, y_pair = fused(x), pair(x)
        assert torch.equal(y_fused, y_pair)
        y_fused.square().sum().backward()
        y_pair.square().sum().backward()
    for (name, got), want in zip(
        fused.state_dict().items(), pair[0].state_dict().values(), strict=True
    ):
        assert torch.equal(got, want), name
    for got, want in zip(fused.parameters(), pair[0].parameters(), strict=True):
        torch.testing.assert_close(got.grad, want.grad)
    fused.eval()
    pair.eval()
    x = torch.randn(shape)
    assert torch.equal(fused(x), pair(x))


def test_module_state_dict_round_trips_with_torch_batchnorm():
    fused = BatchNormLeakyReLU2d(6, negative_slope=0.1)
    fused(torch.randn(4, 6, 3, 3))
    torch_bn = torch.nn.BatchNorm2d(6)
    torch_bn.load_state_dict(fused.state_dict())
    back = BatchNormLeakyReLU2d(6, negative_slope=0.1)
    back.load_state_dict(torch_bn.state_dict())
    for key, value in fused.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
    assert int(back.num_batches_tracked) == 1


def test_module_checks_rank_repr_and_is_left_alone_by_sync_batchnorm():
    with pytest.raises(ValueError, match="expected 4D input"):
        BatchNormLeakyReLU2d(3)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        BatchNormLeakyReLU1d(3)(torch.randn(2, 3, 4, 4))
    module = BatchNormLeakyReLU2d(3, negative_slope=0.2)
    torch_repr = repr(torch.nn.BatchNorm2d(3))
    assert repr(module) == torch_repr.replace("BatchNorm2d", "BatchNormLeakyReLU2d").replace(
        ")", ", negative_slope=0.2)"
    )
    # SyncBatchNorm would replace a _BatchNorm subclass and drop the activation.
    model = torch.nn.Sequential(module)
    assert torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)[0] is module


def test_module_device_dtype_and_slope_check():
    module = BatchNormLeakyReLU1d(3, dtype=torch.float64)
    assert module.weight.dtype == torch.float64 and module.running_var.dtype == torch.float64
    with pytest.raises(TypeError, match="negative_slope"):
        BatchNormLeakyReLU1d(3, negative_slope="0.1")


@pytest.mark.slow
def test_module_under_torch_compile_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        BatchNormLeakyReLU2d(8, negative_slope=0.2),
        torch.nn.Conv2d(8, 4, 3),
    )
    x = torch.randn(4, 3, 8, 8)
    eager = model(x)
    eager.square().sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    compiled = torch.compile(model)
    out = compiled(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, eager)
    for param, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(param.grad, want, rtol=1e-4, atol=1e-5)


def test_module_under_cpu_autocast():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3)
    fused = BatchNormLeakyReLU2d(8, negative_slope=0.2)
    pair = torch.nn.Sequential(torch.nn.BatchNorm2d(8), torch.nn.LeakyReLU(0.2))
    x = torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        y_fused, y_pair = fused(h), pair(h)
    assert y_fused.dtype == y_pair.dtype
    torch.testing.assert_close(y_fused, y_pair)
    g_fused = torch.autograd.grad(y_fused.float().sum(), fused.weight)
    g_pair = torch.autograd.grad(y_pair.float().sum(), pair[0].weight)
    torch.testing.assert_close(g_fused, g_pair, rtol=2e-2, atol=2e-2)


# ------------------------------------------------------------------------------- fusion
def _discriminator():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 4, 2, 1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.LeakyReLU(0.2, inplace=True),
        torch.nn.Conv2d(8, 16, 4, 2, 1, bias=False),
        torch.nn.Sequential(torch.nn.BatchNorm2d(16), torch.nn.ReLU()),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 1),
    )


def test_fuse_keeps_function_state_dict_and_unfuses_back():
    from leaky.diagnosis.fuse import fuse_batch_norm, unfuse_batch_norm

    model = _discriminator()
    x = torch.randn(4, 3, 16, 16)
    model(x)  # running statistics that are not the defaults
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    expected = model(x)
    changes = fuse_batch_norm(model)
    assert [c.names for c in changes] == [("1", "2")]  # ReLU is left alone without relu_slope
    assert "torch.nn.BatchNorm2d" in changes[0].old and "torch.nn.LeakyReLU" in changes[0].old
    assert isinstance(model[1], BatchNormLeakyReLU2d) and model[1].negative_slope == 0.2
    assert isinstance(model[2], torch.nn.Identity) and isinstance(model[4][1], torch.nn.ReLU)
    assert model.state_dict().keys() == keys.keys()
    assert torch.equal(model(x), expected)
    changes = fuse_batch_norm(model, relu_slope=0.1)
    assert [c.names for c in changes] == [("4.0", "4.1")]
    assert isinstance(model[4][0], BatchNormLeakyReLU2d) and model[4][0].negative_slope == 0.1
    back = unfuse_batch_norm(model)
    assert len(back) == 2
    assert type(model[1]) is torch.nn.BatchNorm2d and type(model[2]) is torch.nn.LeakyReLU
    assert model[4][1].negative_slope == 0.1
    for key, value in model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])
    assert model.state_dict().keys() == keys.keys()


def test_fuse_keeps_mode_dtype_and_leaves_non_sequential_blocks_alone():
    from leaky.diagnosis.fuse import fuse_batch_norm

    class Block(torch.nn.Module):  # bn2 then a residual sum, then relu: not a pair
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(4)
            self.act = torch.nn.LeakyReLU(0.2)

        def forward(self, x):
            return self.act(self.bn(x) + x)

    model = (
        torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.LeakyReLU(0.3), Block())
        .double()
        .eval()
    )
    fuse_batch_norm(model)
    assert model[0].weight.dtype == torch.float64 and not model[0].training
    assert isinstance(model[2].bn, torch.nn.BatchNorm1d)
    with pytest.raises(ValueError, match="SyncBatchNorm"):
        fuse_batch_norm(torch.nn.Sequential(torch.nn.SyncBatchNorm(4), torch.nn.LeakyReLU()))


def test_unfuse_of_a_module_built_directly_nests_the_pair():
    from leaky.diagnosis.fuse import unfuse_batch_norm

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), BatchNormLeakyReLU1d(4, negative_slope=0.2))
    x = torch.randn(5, 3)
    expected = model(x)
    changes = unfuse_batch_norm(model)
    assert changes[0].names == ("1",)
    assert isinstance(model[1], torch.nn.Sequential)
    assert torch.equal(model(x), expected)


def test_monitor_watches_the_fused_module_as_a_leaky_relu_site():
    from leaky.diagnosis.monitor import Monitor

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), BatchNormLeakyReLU1d(4, negative_slope=0.2), torch.nn.Linear(4, 1)
    )
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([-50.0, 0.0, 0.0, 0.0]))  # unit 0 never active
    with Monitor(model) as monitor:
        model(torch.randn(32, 3)).sum().backward()
    (site,) = monitor.report().sites
    assert site.name == "1" and site.kind == "leaky_relu"
    assert site.summary.units == 4 and site.summary.unit_dim == 1
    assert site.summary.never_active_units == [0]  # seen through the output's sign
