"""What autograd keeps alive, counted deterministically with saved_tensors_hooks."""

import math

import pytest
import torch
import torch.nn.functional as torch_f

import leaky
from leaky import functional as F


def _saved_by_module(model: torch.nn.Module, x: torch.Tensor):
    """Map module name -> list of (storage pointer, bytes, dtype) it saved for backward."""
    saved: dict[str, list] = {}
    current = {"name": ""}
    hooks = [
        module.register_forward_pre_hook(lambda m, args, name=name: current.update(name=name))
        for name, module in model.named_children()
    ]

    def pack(t):
        storage = t.untyped_storage()
        saved.setdefault(current["name"], []).append(
            (storage.data_ptr(), storage.nbytes(), t.dtype)
        )
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x).sum().backward()
    finally:
        for hook in hooks:
            hook.remove()
    return saved


def _model(activation: torch.nn.Module) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 33), activation, torch.nn.Linear(33, 8))


BATCH = 3  # 3 * 33 = 99 activations: not a multiple of 8


def _storages(entries):
    return {ptr for ptr, _, _ in entries}


def test_save_output_keeps_nothing_beyond_the_linears():
    saved = _saved_by_module(_model(leaky.nn.LeakyReLU(0.1)), torch.randn(BATCH, 16))
    linears = _storages(saved["0"]) | _storages(saved["2"])
    assert saved["1"], "the activation saved nothing: backward could not work"
    assert _storages(saved["1"]) <= linears


def test_save_mask_keeps_only_ceil_n_over_8_bytes():
    saved = _saved_by_module(_model(leaky.nn.LeakyReLU(0.1, save="mask")), torch.randn(BATCH, 16))
    assert [(nbytes, dtype) for _, nbytes, dtype in saved["1"]] == [
        (math.ceil(BATCH * 33 / 8), torch.uint8)
    ]


def test_pytorchs_leaky_relu_keeps_an_extra_tensor():
    # The contrast that makes the two tests above meaningful.
    saved = _saved_by_module(_model(torch.nn.LeakyReLU(0.1)), torch.randn(BATCH, 16))
    linears = _storages(saved["0"]) | _storages(saved["2"])
    extra = _storages(saved["1"]) - linears
    assert len(extra) == 1


@pytest.mark.parametrize("training", [False, True])
def test_rrelu_keeps_only_its_output(training):
    model = _model(leaky.nn.RReLU()).train(training)
    saved = _saved_by_module(model, torch.randn(BATCH, 16))
    linears = _storages(saved["0"]) | _storages(saved["2"])
    assert _storages(saved["1"]) <= linears
    torch_saved = _saved_by_module(_model(torch.nn.RReLU()).train(training), torch.randn(BATCH, 16))
    assert len(_storages(torch_saved["1"]) - linears) >= 1  # PyTorch keeps its noise tensor


def test_bias_leaky_relu_keeps_only_its_output():
    x = torch.randn(BATCH, 33, requires_grad=True)
    bias = torch.zeros(33, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = F.bias_leaky_relu(x, bias, clamp=4.0)
    assert (
        len(saved) == 1 and saved[0].untyped_storage().data_ptr() == y.untyped_storage().data_ptr()
    )
    eager = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: eager.append(t) or t, lambda t: t):
        torch_f.leaky_relu(x + bias, 0.2).mul(math.sqrt(2)).clamp(-4, 4)
    assert len({t.untyped_storage().data_ptr() for t in eager}) >= 2
