"""The order in which a model's leaf modules run, from one forward pass on an example input.

Registration order (``model.named_modules()``) is the order in which ``__init__`` assigned
the modules, not the order ``forward`` calls them: torchvision's squeeze-excitation block
registers ``fc1, fc2, relu`` and calls ``fc1, relu, fc2``; a ResNet block calls one ``relu``
module twice. :func:`trace_leaf_calls` records the real order with forward pre-hooks.

The pass leaves no trace on the model: it runs without gradients, in the model's own
train / eval mode, and puts back every buffer (BatchNorm's running statistics) and the
random number generators (dropout) afterwards.

Examples:
    >>> from torch import nn
    >>> class Gate(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2, self.relu = nn.Linear(4, 2), nn.Linear(2, 4), nn.ReLU()
    ...     def forward(self, x):
    ...         return self.fc2(self.relu(self.fc1(x)))
    >>> [call.name for call in trace_leaf_calls(Gate(), torch.zeros(1, 4))]
    ['fc1', 'relu', 'fc2']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["LeafCall", "run_untouched", "trace_leaf_calls"]


@dataclass(frozen=True)
class LeafCall:
    """One call of a leaf module (a module without children) during the forward pass.

    Attributes:
        name: the module's qualified name (its first one, if it sits in several places).
        module: the module object.
        count: how many times this module object had been called before (0 the first time).
    """

    name: str
    module: torch.nn.Module
    count: int


def trace_leaf_calls(model: torch.nn.Module, example_input: Any) -> list[LeafCall]:
    """Run ``model`` once on ``example_input`` and return its leaf module calls in order.

    Args:
        model: any module.
        example_input: what the model's ``forward`` takes: a tensor, a tuple of
            positional arguments, or a dict of keyword arguments.

    Raises:
        ValueError: when the forward pass on ``example_input`` fails (the message says
            how).

    Only modules called through ``module(...)`` are seen: a child whose weight the parent
    uses directly (``nn.MultiheadAttention``'s ``out_proj``) is not called, so it is not
    listed. (PyTorch's fused transformer fast path, which would skip the submodules, is
    not taken while hooks are attached.)
    """
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    calls: list[LeafCall] = []
    counts: dict[int, int] = {}

    def record(module: torch.nn.Module, _args: Any) -> None:
        key = id(module)
        calls.append(LeafCall(names.get(key, type(module).__name__), module, counts.get(key, 0)))
        counts[key] = counts.get(key, 0) + 1

    leaves = {id(m): m for m in model.modules() if next(iter(m.children()), None) is None}
    handles = [m.register_forward_pre_hook(record) for m in leaves.values()]
    try:
        run_untouched(model, example_input)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def run_untouched(model: torch.nn.Module, example_input: Any) -> None:
    """One forward pass without gradients that leaves no trace on the model.

    BatchNorm's running statistics and the random number generators are put back
    afterwards; the model stays in its own train / eval mode. A forward pass that fails
    raises a ``ValueError`` that says the input is the problem.
    """
    with _untouched(model), torch.no_grad():
        _call(model, example_input)


def _call(model: torch.nn.Module, example_input: Any) -> None:
    try:
        if isinstance(example_input, Mapping):
            model(**example_input)
        elif isinstance(example_input, tuple):
            model(*example_input)
        else:
            model(example_input)
    except Exception as error:  # the model's own code: any failure means a bad input
        raise ValueError(
            "Expected `example_input` to be an input the model's forward accepts (a tensor, "
            "a tuple of positional arguments or a dict of keyword arguments), but the forward "
            f"pass raised {type(error).__name__}: {error}"
        ) from error


@contextmanager
def _untouched(model: torch.nn.Module) -> Iterator[None]:
    # A forward pass in training mode updates BatchNorm's running statistics and draws
    # dropout masks from the global generators: put both back so that tracing changes
    # nothing the user can see.
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cuda_devices = sorted(
        {t.device.index or 0 for t in (*model.parameters(), *model.buffers()) if t.is_cuda}
    )
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
