"""Export a model to ONNX as standard operators only (``LeakyRelu``, ``PRelu``, ...).

The Leaky ReLU family in :mod:`leaky.nn` runs through custom autograd Functions so that
backward keeps less memory. Inference needs none of that, so :func:`onnx` exports a copy of
the model in which every ``leaky`` module is swapped for its plain PyTorch equivalent, with
the same weights:

==============================  ===========================================  ====================
module                          exported as (PyTorch)                        ONNX operators
==============================  ===========================================  ====================
``leaky.nn.LeakyReLU``          ``torch.nn.LeakyReLU``                       ``LeakyRelu``
``leaky.nn.PReLU``              ``torch.nn.PReLU``                           ``PRelu``
``leaky.nn.RReLU`` (eval)       ``torch.nn.LeakyReLU((lower + upper) / 2)``  ``LeakyRelu``
``BatchNormLeakyReLU{1,2,3}d``  ``BatchNorm{1,2,3}d``, ``LeakyReLU``         ``BatchNormalization``,
                                                                             ``LeakyRelu``
``leaky.nn.BiasLeakyReLU``      ``x + b``, ``leaky_relu``, ``* gain``        ``Add``, ``LeakyRelu``,
                                                                             ``Mul`` (``Clip``)
==============================  ===========================================  ====================

Why a module swap rather than teaching the exporter about the autograd Functions (a
``symbolic`` method)? The ``symbolic`` hook belongs to the TorchScript exporter, which
PyTorch deprecates; the default exporter since PyTorch 2.9 (``torch.export``, ``dynamo=True``)
would need a translation table keyed on the Functions' internals instead. After the swap the
graph is one that PyTorch itself exports with its own modules, so it stays standard ONNX
whatever exporter runs it, and the swap happens on a copy, so the caller's model is never
touched. ``torch.nn.RReLU`` is swapped too: PyTorch's default exporter has no ONNX
translation for it. Activations called as functions in a ``forward``
(``leaky.core.functional.leaky_relu(x)``) are not modules to swap; with the copy's parameters
frozen they take their plain PyTorch path, which exports the same way.

The model is exported for inference (``eval()`` mode: BatchNorm uses its running statistics,
RReLU its mean slope, Dropout is off) with the example input's shapes fixed. The exporter's
optimizer then folds a BatchNorm that follows a convolution into the convolution's weights, so
a ``Conv -> BatchNormLeakyReLU2d`` block becomes ``Conv`` + ``LeakyRelu``; a fused module with
no convolution before it keeps its ``BatchNormalization``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as torch_f

from leaky.diagnosis.fuse import unfuse_batch_norm
from leaky.nn.modules import BiasLeakyReLU
from leaky.nn.modules import LeakyReLU as LeakyLeakyReLU
from leaky.nn.modules import PReLU as LeakyPReLU
from leaky.system.atomic import atomic_path, check_output_file
from leaky.system.errors import MissingExtraError

__all__ = ["BiasLeakyReLUGraph", "node_types", "onnx", "plain_torch_copy"]

_INSTALL_HINT = "install the ONNX extra: pip install 'leaky[onnx]'"


class BiasLeakyReLUGraph(torch.nn.Module):
    r""":class:`leaky.nn.BiasLeakyReLU` written as plain PyTorch operations, for export.

    .. math::
        y = \operatorname{clamp}(\text{gain} \cdot \text{LeakyReLU}(x + b), -c, c)

    The same function as the fused module (up to rounding: the fused op applies the gain
    before the activation, which is exact in real numbers for gain > 0), in the order that
    reads as the formula: ``Add``, ``LeakyRelu``, ``Mul`` and, with a clamp, ``Clip``.

    Examples:
        >>> fused = BiasLeakyReLU(2, gain=2.0)
        >>> with torch.no_grad():
        ...     _ = fused.bias.fill_(0.5)
        >>> BiasLeakyReLUGraph(fused)(torch.tensor([[-1.5, 1.0]])).detach()
        tensor([[-0.4000,  3.0000]])
    """

    def __init__(self, fused: BiasLeakyReLU) -> None:
        super().__init__()
        self.bias = None if fused.bias is None else torch.nn.Parameter(fused.bias.detach().clone())
        self.negative_slope = fused.negative_slope
        self.gain = fused.gain
        self.clamp = fused.clamp
        self.dim = fused.dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Add the bias, apply Leaky ReLU, the gain and the clamp, one op each."""
        y = input
        if self.bias is not None:
            shape = [1] * input.dim()
            shape[self.dim] = -1
            y = y + self.bias.view(shape)
        y = torch_f.leaky_relu(y, self.negative_slope)
        if self.gain != 1.0:
            y = y * self.gain
        if self.clamp is not None:
            y = torch.clamp(y, -self.clamp, self.clamp)
        return y


def _plain(module: torch.nn.Module) -> torch.nn.Module | None:
    """The plain PyTorch module computing what ``module`` computes in eval mode, or None."""
    if isinstance(module, BiasLeakyReLU):
        return BiasLeakyReLUGraph(module)
    if isinstance(module, torch.nn.RReLU):  # leaky's and PyTorch's: eval mode's mean slope
        return torch.nn.LeakyReLU((module.lower + module.upper) / 2)
    if isinstance(module, LeakyLeakyReLU):
        return torch.nn.LeakyReLU(module.negative_slope)
    if isinstance(module, LeakyPReLU):
        weight = module.weight
        plain = torch.nn.PReLU(module.num_parameters, device=weight.device, dtype=weight.dtype)
        plain.load_state_dict(module.state_dict())
        return plain
    return None


def plain_torch_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` for inference in which no ``leaky`` module is left.

    The copy is in eval mode with its parameters frozen; fused BatchNorm + Leaky ReLU
    modules become ``torch.nn`` BatchNorm and Leaky ReLU (:func:`leaky.fuse.unfuse_batch_norm`)
    and each activation module its ``torch.nn`` equivalent (see the table in
    :mod:`leaky.diagnosis.export`). A module used in several places stays one module.

    Examples:
        >>> from leaky import nn
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), nn.RReLU(0.1, 0.3), nn.PReLU(3))
        >>> plain_torch_copy(model)
        Sequential(
          (0): Linear(in_features=2, out_features=3, bias=True)
          (1): LeakyReLU(negative_slope=0.2)
          (2): PReLU(num_parameters=3)
        )
        >>> type(model[1]).__module__  # the model itself is left alone
        'leaky.nn.modules'
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
    # In a Sequential of its own, so that a model that is itself one leaky module is
    # swapped like any child.
    holder = torch.nn.Sequential(copy.deepcopy(model))
    unfuse_batch_norm(holder)
    swapped: dict[int, torch.nn.Module] = {}
    for parent in list(holder.modules()):
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) not in swapped:
                plain = _plain(child)
                if plain is None:
                    continue
                swapped[id(child)] = plain
            parent._modules[name] = swapped[id(child)]
    copied = holder[0]
    copied.eval()
    for parameter in copied.parameters():
        parameter.requires_grad_(False)
    return copied


def _import_onnx() -> Any:
    try:
        importlib.import_module("onnxscript")  # the default exporter's translation library
        return importlib.import_module("onnx")
    except ImportError as error:
        raise MissingExtraError(f"ONNX export needs {error.name}: {_INSTALL_HINT}") from None


def _as_arguments(example_input: Any) -> tuple[torch.Tensor, ...]:
    arguments = example_input if isinstance(example_input, tuple) else (example_input,)
    if not arguments or not all(isinstance(a, torch.Tensor) for a in arguments):
        kinds = ", ".join(type(a).__name__ for a in arguments) or "an empty tuple"
        raise TypeError(
            "Expected `example_input` to be a tensor or a tuple of tensors (the model's "
            f"positional arguments), but got {kinds}"
        )
    return tuple(a.detach() for a in arguments)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    # The exporter logs which optional libraries (torchvision) it skips and warns about its
    # own internals: nothing a user can act on, so it is kept out of their output.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def onnx(
    model: torch.nn.Module,
    example_input: Any,
    path: str | os.PathLike[str],
    *,
    make_folders: bool = False,
) -> Path:
    """Write ``model`` as a checked ONNX file made of standard operators only.

    Runs :func:`plain_torch_copy` (the model itself is left as it is), checks that the
    copy runs on ``example_input``, exports it with PyTorch's default exporter
    (``torch.onnx.export(..., dynamo=True)``), and checks the result with
    ``onnx.checker.check_model(full_check=True)`` before it replaces ``path``: a failed
    export leaves no file behind. The input shapes are those of ``example_input``.

    Args:
        model: the model; exported in eval mode.
        example_input: a tensor, or a tuple of tensors for a ``forward`` of several arguments.
        path: the ``.onnx`` file to write; its folder must exist, unless ``make_folders``.
        make_folders: make the folders ``path`` needs (and remove them again if the
            export fails). Default: ``False``

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``model`` is not a module, or ``example_input`` not tensors.
        ValueError: the folder of ``path`` is missing, the model fails on ``example_input``
            (a wrong shape), or the exporter cannot translate the model.
        ImportError: ``onnx`` or ``onnxscript`` is not installed.

    Examples:
        >>> import tempfile
        >>> from leaky import nn
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), nn.LeakyReLU(0.2))
        >>> target = Path(tempfile.mkdtemp()) / "model.onnx"
        >>> path = onnx(model, torch.randn(1, 4), target)  # doctest: +SKIP
        >>> node_types(path)  # doctest: +SKIP
        ['Gemm', 'LeakyRelu']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}")
    arguments = _as_arguments(example_input)
    target = check_output_file(path, make_folders=make_folders)
    onnx_lib = _import_onnx()
    plain = plain_torch_copy(model)
    try:
        with torch.no_grad():
            plain(*arguments)
    except Exception as error:
        shapes = ", ".join(str(tuple(a.shape)) for a in arguments)
        raise ValueError(
            f"The model fails on an example input of shape {shapes}: {_first_line(error)}; "
            "give an input of the shape the model expects"
        ) from error
    with _quiet_exporter():
        try:
            program = torch.onnx.export(plain, arguments, dynamo=True, verbose=False)
        except Exception as error:  # torch.export or the translation cannot follow the model
            raise ValueError(f"Cannot export the model to ONNX: {_first_line(error)}") from error
    with atomic_path(target) as tmp:
        # One file: protobuf's 2 GiB limit applies (larger models need external data).
        program.save(tmp, external_data=False)
        onnx_lib.checker.check_model(str(tmp), full_check=True)
    return target


def node_types(path: str | os.PathLike[str]) -> list[str]:
    """The operator types in an ONNX file's main graph, each once, in graph order.

    See :func:`onnx` for an example.
    """
    graph = _import_onnx().load(str(path), load_external_data=False).graph
    return list(dict.fromkeys(node.op_type for node in graph.node))
