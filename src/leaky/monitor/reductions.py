"""The few passes over a tensor the monitor's statistics make, each as cheap as it can be.

Measured on one CPU thread (``python examples/monitor_reduction_ops.py``), a 256 x 1024
float32 output: ``torch.gt(y, 0)`` into a bool tensor took about 265 us and its per-unit
``sum`` 97 us, while the same comparison written as 0.0 / 1.0 into a float32 tensor took 50 us
and its sum 50 us, exact while a batch holds fewer than 2**24 samples per unit. A gradient's
norm and a NaN / inf check were two passes (``vector_norm`` and ``aminmax``); the squared norm
alone tells both apart from the rare case where it is not finite, which is then looked at again.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "EXACT_FLOAT_COUNT",
    "Scratch",
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


class Scratch:
    """Buffers that every count and histogram of one monitor write into, grown as needed.

    A full-size temporary per site and batch costs more than its own pass on the CPU: each
    one is a fresh mapping from the allocator, page-faulted in and handed back, which also
    slows the model's own allocations around it. A count reads whole samples of a batch,
    at most ``max_elements`` values at a time (16 MiB of float32 by default), through this
    buffer, so it holds as many floats as the largest monitored output or that limit,
    whichever is smaller (more only where one sample alone is larger, or the units lie in
    the first dimension); a histogram adds its sample's values, as float32 and int64. Other
    devices' caching allocators already reuse memory: there every call gets a new tensor.

    Examples:
        >>> scratch = Scratch(max_elements=8)
        >>> scratch.take(6, torch.device("cpu")).shape, scratch.take(3, torch.device("cpu")).shape
        (torch.Size([6]), torch.Size([3]))
    """

    def __init__(self, max_elements: int = 1 << 22) -> None:
        self.max_elements = max_elements
        self._buffers: dict[torch.dtype, torch.Tensor] = {}

    def take(
        self, numel: int, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """A 1-D tensor of ``numel`` elements (its contents are garbage)."""
        if device.type != "cpu":
            return torch.empty(numel, dtype=dtype, device=device)
        buffer = self._buffers.get(dtype)
        if buffer is None or buffer.numel() < numel:
            buffer = self._buffers[dtype] = torch.empty(numel, dtype=dtype)
        return buffer[:numel]


def count_per_unit(
    compare: str,
    y: torch.Tensor,
    other: float,
    dims: Sequence[int],
    samples: int,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """Per unit, how many values of ``y`` satisfy ``y <compare> other`` (int64 counts).

    ``compare`` is a ``torch`` comparison (``"gt"``, ``"ne"``, ``"le"``, ``"ge"``),
    ``dims`` the dimensions summed over (all but the unit's) and ``samples`` how many
    values each unit has in ``y``. The comparison writes 0.0 / 1.0 into a float32 tensor,
    which compares and sums several times faster than a bool tensor, and is exact while
    ``samples`` is below :data:`EXACT_FLOAT_COUNT`; larger batches count in integers.
    With a :class:`Scratch`, the float32 tensor is the scratch's, read in slices of the
    first dimension when ``y`` is larger than it.

    Examples:
        >>> y = torch.tensor([[1.0, -1.0], [2.0, 0.0], [-3.0, 0.5]])
        >>> count_per_unit("gt", y, 0.0, [0], samples=3).tolist()
        [2, 1]
        >>> count_per_unit("gt", y, 0.0, [0], samples=3, scratch=Scratch(2)).tolist()
        [2, 1]
    """
    op = getattr(torch, compare)
    if not dims:
        return op(y, other).long()
    dims = list(dims)
    if samples >= EXACT_FLOAT_COUNT:
        return op(y, other).sum(dim=dims, dtype=torch.int64)
    if scratch is None or not y.numel():
        return op(y, other, out=torch.empty_like(y, dtype=torch.float32)).sum(dims).long()
    # Slices of the first dimension add up per unit only when it is summed over.
    step = y.shape[0]
    if 0 in dims and y.numel() > scratch.max_elements:
        step = max(1, scratch.max_elements // max(1, y[0].numel()))
    counts = None
    for start in range(0, y.shape[0], step):
        part = y[start : start + step]
        marks = scratch.take(part.numel(), y.device).view(part.shape)
        partial = op(part, other, out=marks).sum(dims)
        counts = partial if counts is None else counts.add_(partial)
    assert counts is not None  # y holds at least one row: dims is not empty
    return counts.long()


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


def _sample(y: torch.Tensor, max_elements: int) -> torch.Tensor:
    # Every k-th sample of the batch (dimension 0), whole: all units, and only the rows
    # read are touched in memory. A single sample larger than that: an even flat stride.
    if not max_elements or y.numel() <= max_elements:
        return y
    per_sample = y[0].numel() if y.dim() >= 2 else 0
    if 0 < per_sample <= max_elements:
        fit = max_elements // per_sample  # whole samples that fit
        return y[:: -(-y.shape[0] // fit)]
    flat = y.reshape(-1)
    return flat[:: -(-flat.numel() // max_elements)]


def histogram_counts(
    y: torch.Tensor,
    bins: int,
    hist_range: tuple[float, float],
    max_elements: int,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """Counts in ``bins + 2`` bins: below ``hist_range``, the bins, above it (and NaN).

    A tensor of more than ``max_elements`` values (0: no limit) is read in part: every
    k-th sample of its first dimension, whole, at most ``max_elements`` values, or an even
    stride through a single sample larger than that. The histogram is then an estimate of
    the distribution (as in TensorBoard). With a :class:`Scratch`, nothing is allocated
    beyond the counts.

    Examples:
        >>> histogram_counts(torch.tensor([-9.0, 0.1, 0.6, 9.0]), 2, (0.0, 1.0), 0).tolist()
        [1, 1, 1, 1]
    """
    part = _sample(y, max_elements)
    low, high = hist_range
    scale = bins / (high - low)
    if scratch is None:
        index = torch.empty(part.shape, dtype=torch.float32, device=y.device)
        whole = torch.empty(part.numel(), dtype=torch.int64, device=y.device)
    else:
        index = scratch.take(part.numel(), y.device).view(part.shape)
        whole = scratch.take(part.numel(), y.device, torch.int64)
    # (y - low) * scale + 1, clamped to [0, bins + 1]: truncation is then the floor, and
    # values below the range land in bin 0, values at or above its top in bin bins + 1.
    torch.mul(part, scale, out=index)
    index.add_(1.0 - low * scale).clamp_(0, bins + 1).nan_to_num_(nan=bins + 1)
    whole.copy_(index.view(-1))  # float -> int64 truncates
    return torch.bincount(whole, minlength=bins + 2)
