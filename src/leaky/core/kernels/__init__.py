"""Which implementation an op runs: PyTorch's kernels, or leaky's Triton kernels on CUDA.

Every function with an ``impl=`` argument takes one of :data:`IMPLS`:

- ``"auto"``: the Triton kernels for CUDA tensors of a supported dtype when Triton imports,
  PyTorch's path otherwise (silently: Triton is an optional extra, ``leaky[triton]``);
- ``"torch"``: always the PyTorch path;
- ``"triton"``: always the Triton kernels. A CPU tensor is only accepted while Triton's
  interpreter is on (``TRITON_INTERPRET=1`` when the kernels were first imported), which is
  how the tests run them on machines without a GPU.

Nothing here imports Triton; :mod:`leaky.core.kernels.triton_ops` does, on first use.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Literal

import torch

__all__ = ["IMPLS", "TRITON_DTYPES", "Impl", "check_impl", "load_triton_ops", "use_triton"]

Impl = Literal["auto", "torch", "triton"]
IMPLS: tuple[str, ...] = ("auto", "torch", "triton")
# float64 stays on PyTorch's path: the kernels take their scalars as float32.
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_impl(impl: Any) -> str:
    """Validate an ``impl=`` argument.

    Examples:
        >>> check_impl("torch")
        'torch'

    """
    if impl not in IMPLS:
        raise ValueError(f"Expected `impl` to be one of {', '.join(IMPLS)}, but got {impl!r}")
    return impl


@functools.cache
def _load() -> ModuleType | None:
    try:
        from leaky.core.kernels import triton_ops
    except ImportError:  # the optional extra is missing (or broken): PyTorch's path serves
        return None
    return triton_ops


def load_triton_ops() -> ModuleType:
    """The Triton kernels' module, imported on first use; ValueError when Triton is missing."""
    module = _load()
    if module is None:
        raise ValueError(
            "impl='triton' needs the optional Triton package; install it with "
            "pip install 'leaky[triton]', or use impl='auto'"
        )
    return module


def use_triton(impl: str, tensor: torch.Tensor) -> bool:
    """Whether an op given ``impl`` runs its Triton kernels on ``tensor``.

    Examples:
        >>> use_triton("auto", torch.zeros(3))  # a CPU tensor: PyTorch's path
        False

    """
    check_impl(impl)
    if impl == "torch":
        return False
    if impl == "auto":
        return tensor.is_cuda and tensor.dtype in TRITON_DTYPES and _load() is not None
    module = load_triton_ops()
    if tensor.dtype not in TRITON_DTYPES:
        raise TypeError(
            f"Expected a float32, float16 or bfloat16 tensor for impl='triton', but got "
            f"{tensor.dtype}; use impl='auto' (PyTorch's path for {tensor.dtype})"
        )
    if not tensor.is_cuda and not module.INTERPRETED:
        raise ValueError(
            f"impl='triton' runs on CUDA tensors, but got a tensor on {tensor.device}; use "
            "impl='auto', or set TRITON_INTERPRET=1 before leaky's kernels are first imported "
            "to run them in Triton's CPU interpreter"
        )
    return True
