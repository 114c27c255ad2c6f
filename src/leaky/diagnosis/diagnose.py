"""A model from a file: build it, feed it, report dead units and gradient flow, or export it.

:func:`diagnose_file` is what ``leaky diagnose models.py:make_model --input-shape 1,28,28``
runs and :func:`export_file` what ``leaky export onnx`` runs; every step is a function of
its own so the Python API can do the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leaky.data import is_file_task, load_user_task
from leaky.data.npz_archive import npz_array_names, read_npz
from leaky.diagnosis.convert import convert
from leaky.diagnosis.export import onnx
from leaky.diagnosis.memory_peak import step_peaks
from leaky.diagnosis.memory_report import MemoryReport, memory_report
from leaky.diagnosis.model_file import (
    build_model,
    first_line,
    load_factory,
    load_weights,
    parse_range,
    parse_shape,
    random_batch,
)
from leaky.diagnosis.monitor import DYING_ABOVE, Monitor, MonitorReport
from leaky.diagnosis.outputs import prediction
from leaky.system.atomic import atomic_path, check_output_file
from leaky.system.byte_sizes import format_bytes
from leaky.system.errors import ParameterError
from leaky.system.machine import available_memory

__all__ = [
    "Diagnosis",
    "diagnose",
    "diagnose_file",
    "export_file",
    "input_batches",
    "load_factory",
    "load_weights",
    "memory_file",
    "parse_shape",
    "prediction",
]


def _load_npz(
    path: str | Path, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:

    path = Path(path)
    if path.is_file() and path.suffix.lower() != ".npz":
        raise ParameterError(
            f"Expected {{data}} to be an .npz file (np.savez(path, x=..., y=...)), got {path}",
            "data",
        )
    names = npz_array_names(path)  # one line for a missing, damaged or non-.npz file
    x_name = "x" if "x" in names else names[0]
    arrays = read_npz(path, [x_name, *(["y"] if "y" in names else [])], max_bytes=max_bytes)
    x, y = arrays[x_name], arrays.get("y")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"Expected numeric inputs in {path}, but {x_name!r} has dtype {x.dtype}")
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"Expected at least one sample in {path}, got shape {x.shape}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{path}: {len(x)} inputs but {len(y)} labels")
    if y is not None and not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{path}: labels 'y' must be numbers, got dtype {y.dtype}")
    return x, y


def _load_arrays(
    data: str | Path, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """An .npz as it is, or the training split of any data the experiments read.

    An .npz may lack labels and hold token ids; a CSV, a folder of MNIST IDX files or
    CIFAR-10 batches, or a ``file:`` spec goes through the experiments' own loaders
    (:mod:`leaky.data.user_task`).
    """
    text = str(data)
    path = Path(text)
    if is_file_task(text) or path.is_dir() or path.suffix.lower() == ".csv":
        dataset = load_user_task(text if is_file_task(text) else f"file:{text}")
        return dataset.x_train.numpy(), dataset.y_train.numpy()
    return _load_npz(data, max_bytes)


def input_batches(
    *,
    input_shape: tuple[int, ...] | None = None,
    data: str | Path | None = None,
    batches: int = 8,
    batch_size: int = 64,
    seed: int = 0,
    max_bytes: int | None = None,
    input_range: tuple[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield ``(x, labels or None)``: random inputs of ``input_shape``, or from ``data``.

    Random inputs are normal floats, or, with ``input_range=(low, high)``, integer token
    ids drawn uniformly from ``low`` to ``high - 1`` (for models that start with an
    ``Embedding``). ``data`` is an ``.npz`` read without unpickling; its arrays may hold at
    most ``max_bytes`` (default ``$LEAKY_MAX_DATA_BYTES``, else 1 GiB), checked from their
    headers before they are read.
    """
    if (input_shape is None) == (data is None):
        raise ParameterError("Give exactly one of {input_shape} and {data}", "input_shape", "data")
    if batches < 1 or batch_size < 1:
        raise ParameterError(
            f"Expected {{batches}} and {{batch_size}} >= 1, got {batches}, {batch_size}",
            "batches",
            "batch_size",
        )
    if input_range is not None and (data is not None or not input_range[0] < input_range[1]):
        raise ParameterError(
            "Expected {input_range} as LOW,HIGH with LOW < HIGH (token ids from LOW to HIGH - 1), "
            f"for random inputs of {{input_shape}}, but got {input_range!r}",
            "input_range",
            "input_shape",
        )
    if input_shape is not None:
        _check_input_fits(input_shape, batch_size)
        generator = torch.Generator().manual_seed(seed)
        shape = (batch_size, *input_shape)
        for _ in range(batches):
            yield random_batch(shape, generator, input_range), None
        return
    x, y = _load_arrays(data, max_bytes)  # type: ignore[arg-type]
    inputs = torch.as_tensor(x)
    if inputs.is_floating_point() or inputs.dtype == torch.bool:
        inputs = inputs.float()
    else:
        inputs = inputs.long()  # integer inputs are token ids (Embedding models)
    targets = None if y is None else torch.as_tensor(y)
    for i in range(batches):
        rows = slice((i * batch_size) % len(x), (i * batch_size) % len(x) + batch_size)
        yield inputs[rows], None if targets is None else targets[rows]


def _check_input_fits(input_shape: tuple[int, ...], batch_size: int) -> None:
    # One float32 batch; the model's activations take several times more, so a batch must
    # fit in a quarter of the memory available, or the allocator fails with a traceback.
    need = 4 * batch_size * math.prod(input_shape)
    available = available_memory()
    if available is not None and 4 * need > available:
        shape = ",".join(map(str, input_shape))
        raise ParameterError(
            f"A batch of {batch_size} random inputs of shape {shape} takes "
            f"{format_bytes(need)}, more than a quarter of the {format_bytes(available)} "
            "available here; use a smaller {batch_size} or {input_shape}",
            "batch_size",
            "input_shape",
        )


def _loss(output: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    if labels is None:
        # A fixed random projection: unlike mean(output^2) it does not go flat after a
        # normalisation layer, so every layer gets a gradient to measure.
        weights = torch.randn(output.shape[1:], generator=torch.Generator().manual_seed(0))
        return (output.float() * weights.to(output.device)).sum() / len(output)
    integer = not labels.is_floating_point() or bool((labels == labels.round()).all())
    if output.dim() == 2 and labels.dim() == 1 and integer:
        classes = output.shape[1]
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(
                f"Labels 'y' must be class indices in [0, {classes - 1}] for a model with "
                f"{classes} outputs, but range from {int(labels.min())} to {int(labels.max())}"
            )
        return torch.nn.functional.cross_entropy(output.float(), labels.long())
    if labels.numel() != output.numel():
        raise ValueError(
            f"Targets 'y' of shape {tuple(labels.shape)} fit neither class labels nor the "
            f"model's output of shape {tuple(output.shape)}"
        )
    return torch.nn.functional.mse_loss(output.float(), labels.float().view_as(output))


def diagnose(
    model: torch.nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor | None]],
    **monitor_options: Any,
) -> MonitorReport:
    """Run the batches through ``model`` with a :class:`Monitor` and a backward pass each.

    ``monitor_options`` go to :class:`leaky.diagnosis.monitor.Monitor` (``unit_dim=2`` to say where
    the units are; by default each site's is inferred from the layer that produced it).
    The loss is cross-entropy for integer labels and an ``(N, classes)`` output, the mean
    squared error for other targets, and a fixed random projection of the output when there
    are no labels (any scalar gives gradients to inspect). The model is put in train mode.
    """
    model.train()
    with Monitor(model, **monitor_options) as monitor:
        for x, labels in batches:
            try:
                output = model(x)
            except (Exception, SystemExit) as error:
                raise ValueError(
                    f"The model failed on inputs of shape {tuple(x.shape)} and dtype "
                    f"{x.dtype}: {first_line(error)}"
                ) from error
            output = prediction(output)
            loss = _loss(output, labels)
            model.zero_grad(set_to_none=True)
            if loss.requires_grad:
                try:
                    loss.backward()
                except (Exception, SystemExit) as error:
                    raise ValueError(f"The backward pass failed: {first_line(error)}") from error
    return monitor.report()


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose_file` found, and the files it wrote."""

    report: MonitorReport
    written: list[Path]


def diagnose_file(
    model: str,
    *,
    input_shape: str | tuple[int, ...] | None = None,
    data: str | Path | None = None,
    weights: str | Path | None = None,
    batches: int = 8,
    batch_size: int = 64,
    seed: int = 0,
    input_range: str | tuple[int, int] | None = None,
    unit_dim: int | None = None,
    dying_above: float = DYING_ABOVE,
    json_out: str | Path | None = None,
    plot_out: str | Path | None = None,
) -> Diagnosis:
    """Diagnose the model ``FILE.py:FACTORY`` on random inputs or the user's data.

    Builds the model, loads ``weights`` if given (``weights_only``), runs ``batches``
    forward and backward passes of random normal inputs of ``input_shape`` (one sample,
    ``"1,28,28"`` or a tuple), of token ids in ``input_range`` (``"0,50257"``: from 0 to
    50,256) or of ``data``, and reports. ``json_out`` (``.json``) and
    ``plot_out`` (``.png`` / ``.svg``) are checked before anything runs and written whole
    at the end, so a failed diagnosis leaves no file and no empty folder.
    """
    outputs = [
        check_output_file(path, suffixes=suffixes, parameter=name)
        for name, path, suffixes in (
            ("json_out", json_out, (".json",)),
            ("plot_out", plot_out, (".png", ".svg")),
        )
        if path is not None
    ]
    if (input_shape is None) == (data is None):
        raise ParameterError("Give exactly one of {input_shape} and {data}", "input_shape", "data")
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    net = build_model(load_factory(model))
    if weights is not None:
        load_weights(net, weights)
    if isinstance(input_range, str):
        input_range = parse_range(input_range)
    inputs = input_batches(
        input_shape=shape,
        data=data,
        batches=batches,
        batch_size=batch_size,
        seed=seed,
        input_range=input_range,
    )
    report = diagnose(net, inputs, unit_dim=unit_dim, dying_above=dying_above)
    written = []
    if json_out is not None:
        with atomic_path(outputs[0]) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        written.append(outputs[0])
    if plot_out is not None:
        written.append(report.plot(outputs[-1]))
    return Diagnosis(report, written)


@dataclass
class MemoryFile:
    """What :func:`memory_file` measured, and the files it wrote."""

    report: MemoryReport
    written: list[Path]


def memory_file(
    model: str,
    *,
    input_shape: str | tuple[int, ...],
    batch_size: int = 64,
    seed: int = 0,
    input_range: str | tuple[int, int] | None = None,
    weights: str | Path | None = None,
    peak: bool = True,
    device: str = "cpu",
    json_out: str | Path | None = None,
) -> MemoryFile:
    """What would leaky save on the model ``FILE.py:FACTORY``? Measured, per module.

    One forward and backward of the model as it is and of its leaky copy, on a batch of
    ``batch_size`` random inputs of ``input_shape`` (token ids with ``input_range``),
    counting what autograd keeps per module (:func:`leaky.diagnosis.memory_report.memory_report`);
    with ``peak``, a training step's peak memory of each, in a fresh process each
    (:func:`leaky.diagnosis.memory_peak.step_peaks`). ``device="cuda"`` runs both on the
    GPU (the peak: the CUDA allocator's). ``json_out`` is checked first and written whole
    at the end.
    """
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"Expected {{device}} cpu or cuda, but got {device!r}", "device")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            "{device} cuda needs a GPU, but CUDA is not available on this machine; nothing "
            "was measured (use {device} cpu)",
            "device",
        )
    target = None
    if json_out is not None:
        target = check_output_file(json_out, suffixes=(".json",), parameter="json_out")
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    if isinstance(input_range, str):
        input_range = parse_range(input_range)
    ((x, _),) = input_batches(
        input_shape=shape, batches=1, batch_size=batch_size, seed=seed, input_range=input_range
    )
    net = build_model(load_factory(model))
    if weights is not None:
        load_weights(net, weights)
    net.train().to(device)
    try:
        report = memory_report(net, x.to(device), seed=seed)
    except (Exception, SystemExit) as error:
        raise ValueError(
            f"The model failed on inputs of shape {tuple(x.shape)} and dtype {x.dtype}: "
            f"{first_line(error)}"
        ) from error
    if peak:
        report.peaks = step_peaks(
            model,
            input_shape=shape,
            batch_size=batch_size,
            seed=seed,
            input_range=input_range,
            weights=None if weights is None else str(weights),
            device=device,
        )
        where = "the CUDA allocator's peak" if device == "cuda" else "Linux's VmHWM"
        report.peak_method = f"a training step in a fresh process each, {where}"
    written = []
    if target is not None:
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        written.append(target)
    return MemoryFile(report, written)


def export_file(
    model: str,
    input_shape: str | tuple[int, ...],
    out_path: str | Path,
    *,
    batch_size: int = 1,
    weights: str | Path | None = None,
    convert_to: str | None = None,
) -> Path:
    """Export the model ``FILE.py:FACTORY`` to ``out_path`` as ONNX of standard operators.

    ``convert_to`` swaps the model's ReLUs for that activation first
    (:func:`leaky.convert.convert`), before ``weights`` load, so weights trained on the
    converted model fit. The example input is seeded random normal of ``batch_size`` x
    ``input_shape``. The folders ``out_path`` needs are made, and removed again if the
    export fails.
    """
    target = check_output_file(out_path, suffixes=(".onnx",), parameter="out_path")
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    net = build_model(load_factory(model))
    if convert_to is not None:
        convert(net, convert_to)
    if weights is not None:
        load_weights(net, weights)
    example = torch.randn((batch_size, *shape), generator=torch.Generator().manual_seed(0))
    return onnx(net, example, target, make_folders=True)
