"""Argument checks shared by the functional ops: errors that name the argument and the fix."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["check_number", "check_tensor"]


def check_tensor(x: Any, name: str = "input") -> None:
    """Require a floating-point tensor.

    Examples:
        >>> check_tensor(torch.zeros(2))
        >>> check_tensor([1.0])
        Traceback (most recent call last):
        ...
        TypeError: Expected `input` to be a torch.Tensor, but got list

    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"Expected `{name}` to be a floating-point tensor, but got dtype {x.dtype}; "
            f"convert it first, for example with `{name}.float()`"
        )


def check_number(value: Any, name: str) -> float:
    """Require a finite real number (not a bool) and return it as a float.

    Examples:
        >>> check_number(1, "eps")
        1.0

    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Expected `{name}` to be a real number, but got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Expected `{name}` to be a finite number, but got {value}")
    return value
