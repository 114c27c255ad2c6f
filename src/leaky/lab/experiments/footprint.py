"""Rough peak memory of one run, from its config alone: checked before a sweep starts.

Each experiment gives an estimate in bytes of its largest run: parameters, their gradients
and the optimizer's state, the activations a training batch keeps for backward, and the
no-grad passes (evaluation chunks, probe batches). Only terms that grow with the settings
are counted; the process itself (Python, torch, the datasets: a few hundred MiB) is not.
The aim is to refuse ``width=10**9`` or ``batch_size=10**9`` with a message instead of an
allocator traceback, not to predict the peak to the byte.

Examples:
    >>> mlp_parameters(40, 10, depth=2, width=64)  # 40*64+64 + 64*64+64 + 64*10+10
    7434
    >>> mlp_training_bytes(40, 10, depth=2, width=64, batch_size=128, optimizer_states=1,
    ...                    no_grad_rows=1000) < 2**20
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from leaky.data.log_mel import MelSettings

__all__ = [
    "CLASSES",
    "EVAL_ROWS",
    "FLOAT_BYTES",
    "INPUT_FEATURES",
    "ModelSizes",
    "classifier_mlp_bytes",
    "mlp_parameters",
    "mlp_training_bytes",
    "model_sizes",
    "training_bytes",
]

FLOAT_BYTES = 4  # float32
# The largest built-in classification task (digits: 8x8 inputs) and class count (10):
# upper bounds, so an estimate never needs to build the dataset.
INPUT_FEATURES = 64
CLASSES = 10
# The most samples a no-grad pass sends at once: evaluation's chunk, more than any
# built-in classification test set or probe batch holds.
EVAL_ROWS = 4096
# Tensors a layer keeps per unit and sample in training: its pre-activation and its output
# (a vanishing MLP of width 256 at batch 100,000 peaked at 1.0 GiB, estimated 1.6 GiB).
_KEPT_PER_UNIT = 2


def mlp_parameters(inputs: int, outputs: int, *, depth: int, width: int) -> int:
    """Weights and biases of :func:`leaky.lab.models.mlp` (PReLU slopes aside)."""
    hidden = (depth - 1) * (width * width + width)
    return inputs * width + width + hidden + width * outputs + outputs


class ModelSizes(NamedTuple):
    """The sizes of one model that :func:`training_bytes` takes, in its order."""

    parameters: int
    units_per_sample: int
    widest_layer: int


def model_sizes(
    build: Callable[[], nn.Module],
    input_shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
) -> ModelSizes:
    """Count what ``build()`` makes by building it and passing one sample through it.

    All of it happens on the meta device: nothing is allocated and no weights are drawn.
    ``units_per_sample`` adds up every distinct tensor that a leaf module takes or gives
    (a view such as Flatten's output counts, and so does a residual sum that feeds the
    next layer), the model's input aside; ``widest_layer`` is the largest of them, the input
    included, since a no-grad pass holds a layer's input beside its output.

    Args:
        build: makes the model (called once, under the meta device).
        input_shape: one sample's shape, without the batch dimension.
        dtype: the samples' dtype (``torch.long`` for token ids).

    Examples:
        >>> from leaky.lab.models import mlp
        >>> model_sizes(lambda: mlp(40, 10, depth=2, width=64), (40,))  # 4 x 64 + 10 units
        ModelSizes(parameters=7434, units_per_sample=266, widest_layer=64)
    """
    seen: dict[int, torch.Tensor] = {}  # by id, kept alive so that no id is reused

    def note(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        for value in (*inputs, output):
            if isinstance(value, torch.Tensor):
                seen[id(value)] = value

    # The builders draw nothing on the meta device; forking keeps torch's random state as it
    # was even if one did, so an estimate never changes a run's numbers.
    with torch.random.fork_rng(devices=[]), torch.device("meta"), torch.no_grad():
        model = build()
        sample = torch.zeros(1, *input_shape, dtype=dtype)
        hooks = [m.register_forward_hook(note) for m in model.modules() if not any(m.children())]
        try:
            model(sample)
        finally:
            for hook in hooks:
                hook.remove()
    widest = max(t.numel() for t in seen.values())
    seen.pop(id(sample), None)
    return ModelSizes(
        parameters=sum(p.numel() for p in model.parameters()),
        units_per_sample=sum(t.numel() for t in seen.values()),
        widest_layer=widest,
    )


def training_bytes(
    parameters: int,
    units_per_sample: int,
    widest_layer: int,
    *,
    batch_size: int,
    optimizer_states: int,
    no_grad_rows: int,
    inputs: int = INPUT_FEATURES,
) -> int:
    """Bytes of a training run of a model with ``parameters`` and ``units_per_sample``.

    Args:
        parameters: learned numbers of the model.
        units_per_sample: activations one sample produces across all layers.
        widest_layer: the most activations one sample produces in one layer.
        batch_size: samples per training step (kept for backward).
        optimizer_states: tensors the optimizer keeps per parameter (SGD 0, momentum 1,
            Adam 2); the gradient is counted besides.
        no_grad_rows: the most samples one no-grad pass (evaluation, probe) sends at once.
        inputs: input numbers per sample (the batch is copied, its indices are int64).
    """
    weights = parameters * (2 + optimizer_states)  # values, gradients, optimizer state
    batch = batch_size * (_KEPT_PER_UNIT * units_per_sample + inputs) + batch_size * 2  # + int64
    no_grad = no_grad_rows * 2 * widest_layer  # without autograd a layer's input and output live
    return FLOAT_BYTES * (weights + batch + no_grad)


def mlp_training_bytes(
    inputs: int,
    outputs: int,
    *,
    depth: int,
    width: int,
    batch_size: int,
    optimizer_states: int,
    no_grad_rows: int,
) -> int:
    """:func:`training_bytes` of :func:`leaky.lab.models.mlp` with these sizes."""
    return training_bytes(
        mlp_parameters(inputs, outputs, depth=depth, width=width),
        depth * width + outputs,
        max(inputs, width, outputs),
        batch_size=batch_size,
        optimizer_states=optimizer_states,
        no_grad_rows=no_grad_rows,
        inputs=inputs,
    )


def classifier_mlp_bytes(config: Any, *, optimizer_states: int) -> int:
    """:func:`mlp_training_bytes` of a config's ``depth`` x ``width`` MLP on its dataset.

    For the experiments that train one MLP classifier per run (dying, slope, init), with
    the largest built-in task's sizes (or FSDD's spectrograms or MNIST's images when the
    config's ``dataset`` is ``fsdd`` or ``mnist``) and an evaluation chunk of
    :data:`EVAL_ROWS` rows.
    """
    inputs = INPUT_FEATURES
    if getattr(config, "dataset", None) == "fsdd":
        inputs = max(inputs, MelSettings().n_mels * MelSettings().frames)
    elif getattr(config, "dataset", None) == "mnist":
        inputs = max(inputs, 28 * 28)
    return mlp_training_bytes(
        inputs,
        CLASSES,
        depth=config.depth,
        width=config.width,
        batch_size=config.batch_size,
        optimizer_states=optimizer_states,
        no_grad_rows=EVAL_ROWS,
    )
