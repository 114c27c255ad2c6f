"""The few passes over a tensor the monitor's statistics make, each as cheap as it can be.

Measured on one CPU thread (``examples/monitor_profile.py``), a 256 x 1024 float32 output:
``torch.gt(y, 0)`` into a new bool tensor took about 230 us and its per-unit ``sum`` 100 us,
while the same comparison written as 0.0 / 1.0 into a float tensor took 55 us and its sum
50 us, exact while a batch holds fewer than 2**24 samples per unit. A gradient's norm and a
NaN / inf check were two passes (``vector_norm`` and ``aminmax``); the squared norm alone
tells both apart from the rare case where it is not finite, which is then looked at again.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "EXACT_FLOAT_COUNT",
    "count_per_unit",
    "has_nonfinite",
    "histogram_counts",
    "squared_norm",
    "squared_norm_and_nonfinite",
]

# Integers up to 2**24 are exact in float32: counts of fewer 0/1 values sum exactly.
EXACT_FLOAT_COUNT = 2**24


def has_nonfinite(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """1 where a tensor's min or max (NaN propagates through both) is not finite, else 0.

    ``low`` and ``high`` may hold the extremes of several tensors, one per element.

    Examples:
        >>> int(has_nonfinite(*torch.aminmax(torch.tensor([1.0, float("nan")]))))
        1
    """
    return torch.isfinite(low).logical_and_(torch.isfinite(high)).logical_not_().long()


def count_per_unit(
    compare: str, y: torch.Tensor, other: float, dims: Sequence[int], samples: int
) -> torch.Tensor:
    """Per unit, how many values of ``y`` satisfy ``y <compare> other`` (int64 counts).

    ``compare`` is a ``torch`` comparison (``"gt"``, ``"ne"``, ``"le"``, ``"ge"``),
    ``dims`` the dimensions summed over (all but the unit's) and ``samples`` how many
    values each unit has in ``y``. The comparison writes 0.0 / 1.0 into a float32 tensor,
    which compares and sums several times faster than a bool tensor, and is exact while
    ``samples`` is below :data:`EXACT_FLOAT_COUNT`; larger batches count in integers.

    Examples:
        >>> y = torch.tensor([[1.0, -1.0], [2.0, 0.0], [-3.0, 0.5]])
        >>> count_per_unit("gt", y, 0.0, [0], samples=3).tolist()
        [2, 1]
    """
    op = getattr(torch, compare)
    if not dims:
        return op(y, other).long()
    if samples >= EXACT_FLOAT_COUNT:
        return op(y, other).sum(dim=list(dims), dtype=torch.int64)
    marks = torch.empty(y.shape, dtype=torch.float32, device=y.device)
    op(y, other, out=marks)
    return marks.sum(dim=list(dims)).long()


def squared_norm(t: torch.Tensor) -> torch.Tensor:
    """Sum of squares of ``t`` as a 0-dim float64 tensor, accumulated in at least float32.

    Examples:
        >>> float(squared_norm(torch.tensor([3.0, 4.0])))
        25.0
    """
    if t.dtype in (torch.float32, torch.float64) and t.is_contiguous() and t.numel():
        flat = t.view(-1)
        return torch.dot(flat, flat).double()  # one pass, BLAS
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32  # no f16 overflow
    return torch.linalg.vector_norm(t, dtype=acc).double().square_()


def squared_norm_and_nonfinite(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squares, 1 if ``t`` holds NaN or inf else 0), reading ``t`` once if it can.

    Any NaN or inf in ``t`` makes the sum of squares non-finite; a finite sum therefore
    proves there is none. A non-finite sum can also come from finite values too large to
    square, so only then is ``t`` read again for its extremes. On the CPU that decision is
    free; on a GPU it would wait for the device, so there both are read every time.

    Examples:
        >>> sq, bad = squared_norm_and_nonfinite(torch.tensor([3.0, float("inf")]))
        >>> float(sq), int(bad)
        (inf, 1)
        >>> sq, bad = squared_norm_and_nonfinite(torch.tensor([3e30, 4e30]))  # overflows
        >>> int(bad)
        0
    """
    sq = squared_norm(t)
    if not t.numel():
        return sq, torch.zeros((), dtype=torch.int64, device=t.device)
    if t.device.type == "cpu" and bool(torch.isfinite(sq)):
        return sq, torch.zeros((), dtype=torch.int64)
    return sq, has_nonfinite(*torch.aminmax(t))


def histogram_counts(
    y: torch.Tensor, bins: int, hist_range: tuple[float, float], max_elements: int
) -> torch.Tensor:
    """Counts in ``bins + 2`` bins: below ``hist_range``, the bins, above it (and NaN).

    Large tensors are read at an even stride, at most ``max_elements`` values (0: all):
    the histogram is then an estimate of the distribution (as in TensorBoard).

    Examples:
        >>> histogram_counts(torch.tensor([-9.0, 0.1, 0.6, 9.0]), 2, (0.0, 1.0), 0).tolist()
        [1, 1, 1, 1]
    """
    flat = y.reshape(-1)
    stride = -(-flat.numel() // max_elements) if max_elements else 1
    if stride > 1:
        flat = flat[::stride]
    low, high = hist_range
    scale = bins / (high - low)
    # (y - low) * scale + 1, clamped to [0, bins + 1]: truncation is then the floor, and
    # values below the range land in bin 0, values at or above its top in bin bins + 1.
    index = torch.mul(flat, scale, out=flat.new_empty(flat.shape, dtype=torch.float32))
    index.add_(1.0 - low * scale).clamp_(0, bins + 1).nan_to_num_(nan=bins + 1)
    return torch.bincount(index.to(torch.int64), minlength=bins + 2)
