"""What autograd keeps for backward: the distinct storages its saved tensors live in.

Two saved tensors that are views of one storage (an op's output and the next op's input,
say) cost its bytes once, so the count is by storage, not by tensor.

Examples:
    >>> import torch
    >>> x = torch.randn(1000, requires_grad=True)
    >>> with saved_storages() as kept:
    ...     y = torch.sigmoid(x * 2.0)  # mul keeps nothing (a constant factor), sigmoid y
    >>> sum(kept.values())
    4000
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["saved_storages"]


@contextmanager
def saved_storages() -> Iterator[dict[int, int]]:
    """Within the block, record each storage autograd saves: its address -> its bytes.

    The tensors are kept as autograd would keep them (nothing is copied or moved), so a
    backward pass after the block works as usual.
    """
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield storages
