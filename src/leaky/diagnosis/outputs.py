"""The tensor a model's output predicts with, whatever the model wraps it in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["prediction"]


def prediction(output: Any) -> torch.Tensor:
    """The tensor a model's output predicts with, whatever it is wrapped in.

    A tensor; ``logits`` of a dict or dataclass (Hugging Face's ``ModelOutput``), else its
    first tensor; the first tensor of a tuple or list (``(logits, extras...)``).

    Examples:
        >>> prediction({"hidden": torch.zeros(1), "logits": torch.ones(2)})
        tensor([1., 1.])
        >>> prediction((torch.zeros(2), None))
        tensor([0., 0.])
    """
    if isinstance(output, torch.Tensor):
        return output
    if dataclasses.is_dataclass(output) and not isinstance(output, Mapping):
        output = {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    if isinstance(output, Mapping):
        if isinstance(output.get("logits"), torch.Tensor):
            return output["logits"]
        output = list(output.values())
    if isinstance(output, tuple | list):
        first = next((item for item in output if isinstance(item, torch.Tensor)), None)
        if first is not None:
            return first
    raise ValueError(
        "Expected the model to return a tensor (or a tuple, dict or dataclass holding one, "
        f"such as Hugging Face's ModelOutput with logits), got {type(output).__name__}"
    )
