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

from typing import Any

__all__ = [
    "CLASSES",
    "EVAL_ROWS",
    "FLOAT_BYTES",
    "INPUT_FEATURES",
    "classifier_mlp_bytes",
    "mlp_parameters",
    "mlp_training_bytes",
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
    the largest built-in task's sizes (or FSDD's spectrograms when the config's
    ``dataset`` is ``fsdd``) and an evaluation chunk of :data:`EVAL_ROWS` rows.
    """
    inputs = INPUT_FEATURES
    if getattr(config, "dataset", None) == "fsdd":
        from leaky.data.log_mel import MelSettings

        inputs = max(inputs, MelSettings().n_mels * MelSettings().frames)
    return mlp_training_bytes(
        inputs,
        CLASSES,
        depth=config.depth,
        width=config.width,
        batch_size=config.batch_size,
        optimizer_states=optimizer_states,
        no_grad_rows=EVAL_ROWS,
    )
