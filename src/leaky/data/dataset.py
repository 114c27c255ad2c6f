"""The one shape every task has: train and test tensors, and what they mean."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

__all__ = ["Dataset", "Task"]

Task = Literal["classification", "regression", "language"]


@dataclass(frozen=True)
class Dataset:
    """Train / test tensors of one task.

    ``x_*`` are float32 (token ids, int64, for ``"language"``), ``y_*`` int64 class labels
    (``"classification"``, ``"language"``) or float32 targets (``"regression"``).

    Examples:
        >>> d = Dataset("toy", torch.zeros(4, 2), torch.zeros(4, dtype=torch.long),
        ...             torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), 2,
        ...             "classification", "a toy", "made up")
        >>> d.input_shape, d.sizes
        ((2,), (4, 2))
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None
    task: Task
    description: str
    source: str
    vocabulary: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(
                    f"{self.name}: {len(x)} {split} inputs but {len(y)} {split} targets"
                )
        if self.y_train.dim() != 1 or self.y_test.dim() != 1:
            raise ValueError(
                f"{self.name}: expected one target per sample (1-D), got shapes "
                f"{tuple(self.y_train.shape)} and {tuple(self.y_test.shape)}"
            )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"{self.name}: train inputs of shape {tuple(self.x_train.shape[1:])} but test "
                f"inputs of shape {tuple(self.x_test.shape[1:])}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""
        return tuple(self.x_train.shape[1:])

    @property
    def sizes(self) -> tuple[int, int]:
        """(train samples, test samples)."""
        return len(self.x_train), len(self.x_test)
