"""The few passes over a tensor the monitor's statistics make, each as cheap as it can be.

Measured on one CPU thread (``python examples/monitor_reduction_ops.py``, "in cache" and
"from memory" columns), a 256 x 1024 float32 output: ``torch.gt(y, 0)`` into a bool tensor
took about 280 us, the same comparison written as 0.0 / 1.0 into a float32 tensor 67 us (147
from memory), and its per-unit sum is exact while a batch holds fewer than 2**24 samples per
unit. A gradient's norm and a NaN / inf check were two passes (``vector_norm`` and
``aminmax``); the squared norm alone tells both apart from the rare case where it is not
finite, which is then looked at again.

Whether a unit fired at all needs no count: its largest output is above zero: one
read-only per-unit ``amax`` replaces a comparison written out and summed.

A forward hook reads the output its layer has just written. Up to a few MiB that output is
still in the cache, where one ``amax`` / ``sum`` call over all reduced dimensions is the
fastest; beyond that it is not, and reducing in memory order is faster: a convolution's
output over each channel's contiguous ``H * W`` first, then the batch, and long rows in
blocks of 16 (one call down every row at once walks as many pages at once). Measured right
after the layer wrote the tensor (``python examples/monitor_reduction_ops.py --threads 2``,
the "after its layer" column, 2 threads, this project's 2-core CPU, medians of 61 calls that
move by tens of percent between runs): per-unit ``amax`` of a 256 x 1024 Linear output (1 MiB)
59 us in one call against 159 us in blocks, of an 8 x 64 x 32 x 32 convolution output (2 MiB)
45 against 118 us; of a 2048 x 1024 one (8 MiB) 520 against 424 us, of a 64 x 128 x 16 x 16
one (8 MiB) 478 against 354 us. :func:`reduce_per_unit` therefore makes one call
up to :data:`_ONE_CALL_BYTES` (4 MiB: a 1024 x 1024 output still read faster in one call,
276 against 337 us) and reads larger tensors in memory order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "EXACT_FLOAT_COUNT",
    "Scratch",
    "count_all",
    "count_per_unit",
    "has_nonfinite",
    "histogram_counts",
    "host_squared_norm_and_nonfinite",
    "peak_per_unit",
    "reduce_per_unit",
    "reduces_in_one_call",
    "sample_values",
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


def _unit_dim(t: torch.Tensor, dims: Sequence[int]) -> int | None:
    # The one dimension not reduced over, if there is exactly one (negative dims count
    # from the end; no dims means every dimension, as in torch).
    reduced = {d % t.dim() for d in dims} if t.dim() else set()
    kept = [d for d in range(t.dim()) if d not in reduced]
    return kept[0] if len(kept) == 1 and len(reduced) == len(dims) > 0 else None


# A convolution's output whose feature maps hold fewer values than this is reduced over its
# batch dimension first, which reads whole rows of (units x positions), then over each
# unit's positions: reducing every unit's short run of positions first is the slow case of
# torch's CPU reductions. After its layer, 2 threads (``python
# examples/monitor_reduction_ops.py --threads 2``, "small feature maps"): per-unit amax of
# 8 x 512 x 4 x 4 118 us in one call, 53 us batch first; of 8 x 128 x 8 x 8 15 against 27 us.
_SHORT_ROWS = 64

# Up to this many bytes a tensor is reduced in one call (it is still in the cache after
# the layer that wrote it); larger ones in memory order (see the module's docstring).
_ONE_CALL_BYTES = 4 << 20


def reduces_in_one_call(t: torch.Tensor, dims: Sequence[int]) -> bool:
    """Whether :func:`reduce_per_unit` reduces ``t`` over ``dims`` in one plain ``torch`` call.

    It does for anything that is not reduced to one dimension (its units), for an empty
    tensor, and for a tensor of at most :data:`_ONE_CALL_BYTES` that is not a small
    feature map. For given ``dims`` the answer depends only on the tensor's shape, dtype
    and whether it is contiguous, so a caller that sees the same kind again may decide once.

    Examples:
        >>> reduces_in_one_call(torch.zeros(256, 1024), [0])
        True
        >>> reduces_in_one_call(torch.zeros(8, 512, 4, 4), [0, 2, 3])  # a small feature map
        False
    """
    unit = _unit_dim(t, dims)
    if unit is None or not t.numel():
        return True
    if t.is_contiguous():
        before, after = math.prod(t.shape[:unit]), math.prod(t.shape[unit + 1 :])
        if before > 1 and 1 < after < _SHORT_ROWS:
            return False
    return t.numel() * t.element_size() <= _ONE_CALL_BYTES


def reduce_per_unit(reduce: str, t: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``t.<reduce>(dims)`` (``"sum"``, ``"amax"`` or ``"amin"``), a large ``t`` in memory order.

    A contiguous tensor whose units each hold fewer than :data:`_SHORT_ROWS` values per
    sample (a small feature map) is reduced over the batch first, whatever its size. Else a
    tensor of at most :data:`_ONE_CALL_BYTES` is reduced in one call, always a new
    tensor; a larger one whose ``dims`` leave one dimension (the units) is read in memory
    order: a contiguous tensor viewed as ``(before, units, after)`` and reduced over its
    contiguous last dimension first, then its first; a tensor whose units are innermost in
    memory (channels_last) as ``(rest, units)``. Anything else (an empty tensor included) is
    reduced as given: ``amax`` / ``amin`` of an empty tensor raise, as ``torch``'s do.

    Examples:
        >>> t = torch.arange(24.0).view(2, 3, 4)
        >>> reduce_per_unit("sum", t, [0, 2]).tolist()
        [60.0, 92.0, 124.0]
        >>> reduce_per_unit("amax", t.permute(0, 2, 1).contiguous().permute(0, 2, 1), [0, 2])
        tensor([15., 19., 23.])
    """
    if reduces_in_one_call(t, dims):
        return getattr(t, reduce)(list(dims))
    unit = _unit_dim(t, dims)
    assert unit is not None  # reduces_in_one_call said so
    units = t.shape[unit]
    before, after = math.prod(t.shape[:unit]), math.prod(t.shape[unit + 1 :])
    if t.is_contiguous() and before > 1 and 1 < after < _SHORT_ROWS:
        # Small feature maps: the batch first (whole rows), then each unit's few values.
        across = getattr(t.view(before, -1), reduce)(0)
        return getattr(across.view(units, after), reduce)(1)
    if t.dim() > 2 and unit != t.dim() - 1 and t.stride(unit) == 1:
        inner = t.movedim(unit, -1)
        if inner.is_contiguous():  # units innermost in memory: channels_last
            return _reduce_rows(reduce, inner.reshape(-1, units))
    if not t.is_contiguous():
        return getattr(t, reduce)(list(dims))
    # Units last (a Linear's output): no inner reduction.
    out = t.view((before, units) if after == 1 else (before, units, after))
    if after > 1:
        out = getattr(out, reduce)(-1)  # a new tensor
    elif before == 1:
        return out.view(units).clone()  # never a view of the input
    return _reduce_rows(reduce, out) if before != 1 else out.view(units)


# Rows reduced together when they are long: ``amax`` / ``amin`` of (rows, units) over its
# rows in one call walks down every row at once, one page per row, which the hardware
# prefetches badly once rows are pages long and out of the cache (2048 x 1024 float32 after
# its layer: 520 us, against 424 us for blocks of 16 rows reduced first). Sums are left
# alone: they read a count's marks just written, still in the cache, where the blocks are
# slower.
_ROW_BLOCK = 16
_LONG_ROW_BYTES = 2048
_COMBINE = {"amax": torch.maximum, "amin": torch.minimum}


def _reduce_rows(reduce: str, rows: torch.Tensor) -> torch.Tensor:
    # A contiguous (rows, units) tensor reduced over its rows.
    n, units = rows.shape
    long = units * rows.element_size() >= _LONG_ROW_BYTES
    if reduce not in _COMBINE or not long or n < 2 * _ROW_BLOCK:
        return getattr(rows, reduce)(0)
    head = n - n % _ROW_BLOCK
    whole = rows if head == n else rows[:head]
    blocks = getattr(whole.view(-1, _ROW_BLOCK, units), reduce)(1)
    out = getattr(blocks, reduce)(0)
    if head < n:
        out = _COMBINE[reduce](out, getattr(rows[head:], reduce)(0))
    return out


def peak_per_unit(y: torch.Tensor, dims: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per unit, the largest value of a non-empty ``y`` that is not NaN, and the largest of those.

    A unit whose values are all NaN peaks at ``-inf``. NaN is masked as ``-inf`` before the
    pass. On the CPU a site reads a plain ``amax`` first and comes here only for a batch
    that held NaN (see ``SiteStatistics``); other devices come here every time, since
    deciding would wait for the device.

    Examples:
        >>> y = torch.tensor([[1.0, -1.0, float("nan")], [2.0, 0.0, 3.0]])
        >>> peaks, largest = peak_per_unit(y, [0])
        >>> peaks.tolist(), float(largest)
        ([2.0, 0.0, 3.0], 3.0)
    """
    peaks = reduce_per_unit("amax", y.masked_fill(y.isnan(), -math.inf), dims)
    return peaks, peaks.amax()


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
        marks = op(y, other, out=torch.empty_like(y, dtype=torch.float32))
        return reduce_per_unit("sum", marks, dims).long()
    # Slices of the first dimension add up per unit only when it is summed over.
    step = y.shape[0]
    if 0 in dims and y.numel() > scratch.max_elements:
        step = max(1, scratch.max_elements // max(1, y[0].numel()))
    counts = None
    for start in range(0, y.shape[0], step):
        part = y[start : start + step]
        marks = scratch.take(part.numel(), y.device).view(part.shape)
        partial = reduce_per_unit("sum", op(part, other, out=marks), dims)
        counts = partial if counts is None else counts.add_(partial)
    assert counts is not None  # y holds at least one row: dims is not empty
    return counts.long()


def count_all(
    compare: str, y: torch.Tensor, other: float, scratch: Scratch | None = None
) -> torch.Tensor:
    """How many values of ``y`` satisfy ``y <compare> other``, as a 0-dim int64 tensor.

    As :func:`count_per_unit` but over the whole tensor: with a :class:`Scratch` the
    comparison writes 0.0 / 1.0 into its float32 buffer, a slice at a time (each slice
    below :data:`EXACT_FLOAT_COUNT`, so its sum is exact), which on the CPU is about four
    times faster than summing a freshly allocated bool tensor.

    Examples:
        >>> y = torch.tensor([[0.0, 0.5], [0.001, -2.0]])
        >>> int(count_all("le", y.abs(), 0.01)), int(count_all("le", y.abs(), 0.01, Scratch(3)))
        (2, 2)
    """
    op = getattr(torch, compare)
    flat = y.reshape(-1)
    if scratch is None:
        return op(flat, other).sum()
    step = min(scratch.max_elements, EXACT_FLOAT_COUNT - 1)
    if flat.numel() <= step:  # one slice: no split
        return op(flat, other, out=scratch.take(flat.numel(), y.device)).sum().long()
    counts = [
        op(part, other, out=scratch.take(part.numel(), y.device)).sum() for part in flat.split(step)
    ]
    return (counts[0] if len(counts) == 1 else torch.stack(counts).sum()).long()


def squared_norm(t: torch.Tensor) -> torch.Tensor:
    """Sum of squares of ``t`` as a 0-dim tensor, accumulated in at least float32.

    A float32 or float64 tensor in memory order: one BLAS dot, in its own dtype. Anything
    else: its norm, squared in float64.

    Examples:
        >>> float(squared_norm(torch.tensor([3.0, 4.0])))
        25.0
    """
    if t.dtype in (torch.float32, torch.float64) and t.is_contiguous() and t.numel():
        flat = t.view(-1)
        return torch.dot(flat, flat)  # one pass, BLAS
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32  # no f16 overflow
    return torch.linalg.vector_norm(t, dtype=acc).double().square_()


def squared_norm_and_nonfinite(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squares, 1 if ``t`` holds NaN or inf else 0), as tensors on ``t``'s device.

    Both are read every time: deciding whether the second read is needed would wait for the
    device (on the CPU, :func:`host_squared_norm_and_nonfinite` decides it).

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
    return sq, has_nonfinite(*torch.aminmax(t))


def host_squared_norm_and_nonfinite(t: torch.Tensor) -> tuple[float, bool]:
    """(sum of squares, whether it held NaN or inf) of a CPU tensor, reading it once if it can.

    Any NaN or inf in ``t`` makes the sum of squares non-finite; a finite sum therefore
    proves there is none. A non-finite sum can also come from finite values too large to
    square, so only then is ``t`` read again for its extremes.

    Examples:
        >>> host_squared_norm_and_nonfinite(torch.tensor([3.0, 4.0]))
        (25.0, False)
    """
    sq = squared_norm(t).item() if t.numel() else 0.0
    if math.isfinite(sq):
        return sq, False
    return sq, bool(has_nonfinite(*torch.aminmax(t)))


def sample_values(y: torch.Tensor, max_elements: int) -> torch.Tensor:
    """``y``, or a regular sample of at most ``max_elements`` of its values (0: all of them).

    Every k-th sample of the batch (dimension 0), whole: all units, and only the rows read
    are touched in memory. Where a single sample is larger than that, every k-th row of
    the last dimension (k odd, so that a row's place in a power-of-two grid varies), each
    read whole; failing that, an even stride through the values.

    Examples:
        >>> sample_values(torch.zeros(8, 3), 6).shape
        torch.Size([2, 3])
        >>> sample_values(torch.zeros(2, 4, 4, 8), 64).shape
        torch.Size([7, 8])
    """
    if not max_elements or y.numel() <= max_elements:
        return y
    per_sample = y[0].numel() if y.dim() >= 2 else 0
    if 0 < per_sample <= max_elements:
        fit = max_elements // per_sample  # whole samples that fit
        return y[:: -(-y.shape[0] // fit)]
    row = y.shape[-1] if y.dim() >= 2 else 0
    if 0 < row <= max_elements and y.is_contiguous():
        rows = y.view(-1, row)
        step = -(-rows.shape[0] // (max_elements // row))
        return rows[:: step + 1 - step % 2]
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

    A tensor of more than ``max_elements`` values (0: no limit) is read in part, as
    :func:`sample_values` picks it. The histogram is then an estimate of the distribution
    (as in TensorBoard). With a :class:`Scratch`, nothing is allocated beyond the counts.

    Examples:
        >>> histogram_counts(torch.tensor([-9.0, 0.1, 0.6, 9.0]), 2, (0.0, 1.0), 0).tolist()
        [1, 1, 1, 1]
    """
    part = sample_values(y, max_elements)
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
