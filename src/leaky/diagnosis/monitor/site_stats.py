"""Per-site, per-unit statistics of one activation over a window of batches.

Memory does not grow with the number of batches: every state is a count, a sum or an
extreme, merged with a declared reduction (see :class:`leaky.diagnosis.monitor.metric.Metric`).
The values a batch's histogram and near-zero share read wait, a few batches at a time, in
a buffer of at most 65,536 values per site, and are counted when it fills or whenever the
states are read, so every count read is complete.
A unit is a feature of a 2-D output ``(N, F)`` and a channel of a convolution's output
``(N, C, *)``; ``unit_dim`` says which dimension holds the units (the monitor infers it
from the layer that produced the activation's input: the last dimension after a
``Linear``, dimension 1 after a convolution or batch norm).

Saturation. A bounded activation (a spec row with ``output_range``: sigmoid, tanh,
hardtanh, hardsigmoid, ReLU6 at its top) is saturated where its output lies within
``saturation_margin`` (default 5%) of the width of its range from a saturating bound:
sigmoid outputs below 0.05 or above 0.95 (|x| > 2.94, where sigmoid' is below a fifth of
its maximum 1/4), tanh outputs beyond +-0.9. This is what Glorot and Bengio (2010) saw in
sigmoid networks: top-layer outputs pushed to 0, where almost no gradient passes. Every
output is counted, per unit, as an exact integer.

Definitions of a unit that stopped contributing, each in :class:`SiteSummary`:

- *never active*: its output was <= 0 for every sample of the window;
- *dead*: its local gradient was 0 for every sample (a ReLU unit never active is dead; a
  Leaky ReLU, or a PReLU with a non-zero slope, always passes gradient and cannot die: it
  can sit on its negative side and learn only through its slope, which *never active*
  and *dormant* still show);
- *τ-dormant* (Sokar et al. 2023, "The Dormant Neuron Phenomenon in Deep Reinforcement
  Learning", ReDo): a unit's score is its mean |output| divided by the mean of that over
  its site's units, and the unit is dormant when the score is at most τ (``dormant_tau``).
  τ = 0 counts only units whose output is exactly 0 throughout (for ReLU, the never-active
  ones); a small positive τ also counts units that fire rarely or weakly next to their
  layer (the paper's experiments use τ = 0.025 and 0.1). Scale-free: multiplying a layer's
  outputs by a constant changes no score. Read, like the moments, on every ``every``-th
  batch;
- *near zero* (a site's rate, not a unit's): the share of its outputs with |output| at most
  ``near_zero`` (default 0.01), as activation-statistics tools report it; absolute, so it
  depends on the outputs' scale, unlike τ-dormant. Read on the same batches, from the
  values the histogram reads (all of them up to ``hist_max_elements`` per batch, a regular
  sample beyond).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky.core.spec import get_spec
from leaky.diagnosis.monitor.layer_stats import add_squared_norm
from leaky.diagnosis.monitor.metric import Metric
from leaky.diagnosis.monitor.reductions import (
    Scratch,
    count_all,
    count_per_unit,
    has_nonfinite,
    histogram_counts,
    peak_per_unit,
    reduce_per_unit,
    reduces_in_one_call,
    sample_values,
    squared_norm,
)
from leaky.diagnosis.monitor.sites import local_derivative, slope_is_never_zero

__all__ = ["SiteStatistics", "SiteSummary", "check_every"]

# Off the CPU: batches whose per-unit peaks and (min, max) wait before being folded into the
# states, and at most this many pending peak values (the CPU folds each batch at once).
_FOLD_EXTREMES = 64
_FOLD_PEAK_VALUES = 1 << 20
# The values a batch's histogram and near-zero count read (a sample of at most
# hist_max_elements) wait in a buffer of this many values per site, copied there in one op,
# and are counted together when it is full or the states are read: the eight small ops of
# those counts cost more than the values they read, once per batch.
_HELD_VALUES = 1 << 16
# Activations that never output a negative value: their outputs are their own magnitude.
_NEVER_NEGATIVE = frozenset({"relu", "relu6", "sigmoid", "hardsigmoid"})


@dataclass(frozen=True)
class SiteSummary:
    """What :meth:`SiteStatistics.compute` returns for one site."""

    kind: str
    units: int
    samples: int  # samples per unit (batch x spatial positions) seen in the window
    never_active: int  # units whose output was <= 0 for every sample
    dead: int | None  # units whose local gradient was 0 for every sample (None: cannot die)
    saturated_fraction: float | None  # fraction of outputs near a saturating bound; None: n/a
    mean: float
    std: float
    minimum: float  # the extremes and non-finite batches: read with the moments
    maximum: float
    histogram: list[int]  # counts: below range, the bins, above range (see hist_max_elements)
    histogram_range: tuple[float, float]
    output_grad_norm: float | None  # RMS over backward passes of ||dL/dy||
    never_active_units: list[int]
    dead_units: list[int]
    dormant_units: list[int] = field(default_factory=list)  # τ-dormant (see the module doc)
    dormant_tau: float = 0.025
    near_zero_fraction: float | None = None  # share of |y| <= near_zero (histogram's values)
    near_zero: float = 0.01
    saturated_units: int | None = None  # units with over half their outputs near a bound
    nonfinite_batches: int = 0  # batches read with the moments whose outputs held NaN or inf
    grad_nonfinite_passes: int = 0  # backward passes whose dL/dy held NaN or inf
    unit_dim: int | None = None  # dimension of the output that held the units
    unit_dim_from: str = "default"  # why: the producing layer's type, "given" or "default"

    @property
    def never_active_fraction(self) -> float:
        """Fraction of units never active in the window."""
        return self.never_active / self.units if self.units else 0.0

    @property
    def dead_fraction(self) -> float | None:
        """Fraction of dead units (None when this activation cannot die)."""
        return None if self.dead is None else (self.dead / self.units if self.units else 0.0)

    @property
    def dormant_fraction(self) -> float:
        """Fraction of τ-dormant units (ReDo's score, at most ``dormant_tau``)."""
        return len(self.dormant_units) / self.units if self.units else 0.0


def check_every(every: int) -> int:
    """``every`` if it is a whole number >= 1, else a ``ValueError`` / ``TypeError``."""
    if isinstance(every, bool) or not isinstance(every, int):
        raise TypeError(f"Expected `every` to be an integer, but got {every!r}")
    if every < 1:
        raise ValueError(
            f"Expected `every` to be at least 1 (1 reads every batch), but got {every}"
        )
    return every


class SiteStatistics(Metric):
    """Counts and moments of one activation site, updated once per forward (and backward).

    What is read when. The unit counts are exact: whether each unit fired (an output above
    0) and, where that needs the derivative, passed gradient, and the per-unit counts near a
    saturating bound, from every value of every call; the sample count too. Every
    ``every``-th call (the first of a window included) reads everything: each unit's
    largest output, the extremes (the minimum, which shows NaN, and the largest output,
    which ignores it) and whether the outputs held NaN or inf, the moments (mean, std), the
    histogram and the gradient at the output; so extremes, non-finite batches, moments,
    histogram and gradient norms come from a regular sample of the batches when ``every`` >
    1. In between, on the CPU, a site whose units have all fired in this window reads
    nothing until the next such call (once fired, nothing later in the window changes
    that); until then it reads every unit, which on the CPU costs less than gathering the
    ones left. Other devices read every call, since knowing whether all fired would wait
    for the device.

    Args:
        kind: spec name of the activation (``"relu"``, ``"sigmoid"``, ...).
        unit_dim: dimension of the output that holds the units. Default: 1
        saturation_margin: an output within this fraction of the activation's output range
            from a saturating bound counts as saturated. Default: 0.05
        unit_dim_from: why ``unit_dim`` holds the units (shown in the report).
            Default: ``"default"``
        bins: histogram bins between ``hist_range`` (0: no histogram). Default: 40
        hist_range: fixed histogram range, so windows and ranks merge. Default: (-4, 4)
        hist_max_elements: a batch with more values is histogrammed (and its near-zero
            share read) from every k-th sample, whole, or every k-th row of a sample larger
            than that (an estimate of the distribution); 0 reads every value.
            Default: 16384
        every: read the extremes, the moments, the histogram and the output gradient on
            every ``every``-th call only. Default: 1
        scratch: a buffer the per-unit counts write into (shared by a monitor's sites,
            see :class:`leaky.diagnosis.monitor.reductions.Scratch`). Default: None (a new tensor
            per count)
        count_active: also count, per unit, the outputs above 0 (state ``active``: the
            unit's firing rate is ``active / samples``): a comparison and a sum per call. Whether
            a unit fired at all needs no count. Default: False
        dormant_tau: τ of the τ-dormant definition (see the module's docstring).
            Default: 0.025
        near_zero: an output with |output| at most this counts as near zero. Default: 0.01

    Examples:
        >>> stats = SiteStatistics("relu")
        >>> x = torch.tensor([[-1.0, 2.0], [-3.0, 0.5]])
        >>> stats.update(x, torch.relu(x))
        True
        >>> summary = stats.compute()
        >>> summary.never_active_units, summary.dead_units
        ([0], [0])
    """

    def __init__(
        self,
        kind: str,
        *,
        unit_dim: int = 1,
        saturation_margin: float = 0.05,
        unit_dim_from: str = "default",
        bins: int = 40,
        hist_range: tuple[float, float] = (-4.0, 4.0),
        hist_max_elements: int = 16384,
        every: int = 1,
        scratch: Scratch | None = None,
        count_active: bool = False,
        dormant_tau: float = 0.025,
        near_zero: float = 0.01,
    ) -> None:
        super().__init__()
        if not (isinstance(near_zero, int | float) and 0 <= near_zero < math.inf):
            raise ValueError(f"Expected near_zero to be a number >= 0, but got {near_zero!r}")
        self.near_zero = float(near_zero)
        if not 0 <= dormant_tau < 1:
            raise ValueError(
                f"Expected dormant_tau in [0, 1) (a unit's mean |output| over its layer's "
                f"mean), but got {dormant_tau}"
            )
        self.dormant_tau = dormant_tau
        self.scratch = scratch
        self.count_active = count_active
        self.hist_max_elements = hist_max_elements
        if not 0 <= saturation_margin < 0.5:
            raise ValueError(
                f"Expected saturation_margin in [0, 0.5) (a fraction of the output range), "
                f"but got {saturation_margin}"
            )
        self.every = check_every(every)
        spec = get_spec(kind)
        self.spec = spec
        self.kind = spec.name
        self.unit_dim = unit_dim
        self.unit_dim_from = unit_dim_from
        self.resolved_unit_dim: int | None = None
        self.saturation_margin = saturation_margin
        self.bins = bins
        self.hist_range = hist_range
        self.units: int | None = None
        self.can_die = True
        self.tracks_saturation = spec.saturates and spec.output_range is not None
        self._calls = 0  # calls in this window: which ones read the moments
        # (min, max, per-unit peaks) of batches not yet folded into the states; min and max
        # are None for a batch that did not read its extremes (see update)
        self._extremes: list[tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]] = []
        self._pending_peaks = 0  # values in the pending peaks
        # Sampled outputs not yet in the histogram and near-zero count: the first
        # `_held_count` values of `_held` (see _hold_values).
        self._held: torch.Tensor | None = None
        self._held_count = 0
        self._extremes_read = False  # a batch of this window has read its extremes
        # On the CPU, as of the last batch read: whether every unit has fired in this
        # window, and whether every unit has passed gradient.
        self._all_fired = False
        self._all_passed = False
        # On the CPU: `peak` and the batches' peaks since, merged in the outputs' dtype (see
        # _running_peak), a spare buffer of its shape, and the last (shape, dtype,
        # contiguity) that reduce_per_unit reads in one call.
        self._run: torch.Tensor | None = None
        self._spare: torch.Tensor | None = None
        self._one_call: tuple[torch.Size, torch.dtype, bool] | None = None
        # Between moment batches only the per-unit peaks are read, and nothing once every
        # unit has fired (see update).
        self._lean = False
        self._rank = 0  # dimensions of the outputs
        self._dims: list[int] = []  # the dimensions reduced per unit
        # Numbers known from shapes are host counts: no tensor op per batch.
        self.add_state("samples", 0, "sum")
        self.add_state("elements", 0, "sum")  # values read for the moments and histogram
        self.add_state("always_passing", 0, "sum")  # samples whose slope is never 0
        self.add_state("grad_passes", 0, "sum")
        self.add_state("total", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("total_sq", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("minimum", torch.tensor(math.inf, dtype=torch.float64), "min")
        self.add_state("maximum", torch.tensor(-math.inf, dtype=torch.float64), "max")
        self.add_state("histogram", torch.zeros(bins + 2, dtype=torch.int64), "sum")
        self.add_state("grad_sq", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("nonfinite_batches", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("near_zero_count", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("near_zero_read", 0, "sum")  # the values near_zero_count looked at
        self.add_state("grad_nonfinite_passes", torch.zeros((), dtype=torch.int64), "sum")

    def _unit_states(self, units: int, device: torch.device) -> None:
        self.units = units
        self.to(device)  # every state lives where the activations are
        # Each unit's largest output (NaN aside): it fired where that is above 0.
        self.add_state(
            "peak", torch.full((units,), -math.inf, dtype=torch.float64, device=device), "max"
        )
        # nonzero_grad counts only calls that need the derivative: a ReLU passes gradient
        # where it fired, and a slope that is never 0 passes it on every sample.
        zeros = torch.zeros(units, dtype=torch.int64, device=device)
        for name in ("active",) * self.count_active + ("nonzero_grad", "saturated"):
            self.add_state(name, zeros, "sum")
        # Each unit's sum of |output| over the batches that read the moments: ReDo's score.
        self.add_state("abs_total", torch.zeros(units, dtype=torch.float64, device=device), "sum")

    def reset(self) -> None:
        """Start a new window (the next call reads the moments again)."""
        super().reset()
        self._extremes.clear()
        self._pending_peaks = 0
        self._held_count = 0
        self._calls = 0
        self._extremes_read = False
        self._all_fired = False
        self._all_passed = False
        self._lean = False
        self._run = self._spare = None

    def _fold_pending(self) -> None:
        # What batches left to count later: the held values, then the peaks and extremes.
        self._count_held()
        self._fold_extremes()
        self._fold_run()

    def _fold_run(self) -> None:
        # The running peaks into `peak` (widening to float64 is exact); the next CPU batch
        # starts them again from `peak`, which a merge may have changed by then.
        if self._run is not None:
            torch.maximum(self.peak, self._run, out=self.peak)
            self._run = self._spare = None

    def _running_peak(self, dtype: torch.dtype) -> torch.Tensor:
        # `peak` in the outputs' dtype, where that holds each of its values exactly (as when
        # every batch so far had this dtype): merging a batch's peaks there is one op, where
        # a float64 merge also converted them, and a new tensor each batch cost more again
        # (right after a 256 x 1024 Linear, 2 threads: 126 against 216 us per site, with
        # the read). Else `peak`'s own float64 copy.
        run = self._run
        if run is not None and torch.promote_types(run.dtype, dtype) == run.dtype:
            return run
        self._fold_run()
        run = self.peak.to(dtype, copy=True)
        if not torch.equal(run.double(), self.peak):
            run = self.peak.clone()
        self._run, self._spare = run, torch.empty_like(run)
        return run

    def _fold_extremes(self) -> None:
        # Per-batch peaks and (min, max) pairs not yet in the states: each unit's peak, the
        # extremes, and how many of the batches that read them held NaN or inf.
        if not self._extremes:
            return
        pending, device = self._extremes, self.minimum.device
        # Stacked in the outputs' dtype, then converted once: one op, not one per batch.
        peaks = torch.stack([p for _, _, p in pending]).to(device, self.peak.dtype)
        read = [(low, high) for low, high, _ in pending if high is not None]  # set together
        self._extremes, self._pending_peaks = [], 0
        torch.maximum(self.peak, peaks.amax(0), out=self.peak)
        if read:
            lows = torch.stack([low for low, _ in read]).double().to(device)
            highs = torch.stack([high for _, high in read]).double().to(device)
            torch.minimum(self.minimum, lows.min(), out=self.minimum)
            torch.maximum(self.maximum, highs.max(), out=self.maximum)
            self.nonfinite_batches.add_(has_nonfinite(lows, highs).sum())

    def to(self, device: torch.device | str) -> SiteStatistics:
        """Move every state to ``device``."""
        self._fold_pending()
        self._held = None  # made again where the next values are
        super().to(device)
        self._all_fired = False  # found again from the states at the next batch read
        self._lean = False
        return self

    def state(self) -> dict[str, torch.Tensor]:
        """The current local states (this rank only)."""
        self._fold_pending()
        return super().state()

    def merge(self, other: Metric) -> None:
        """Fold another site's states into this one."""
        self._fold_pending()
        if isinstance(other, SiteStatistics):
            other._fold_pending()
        super().merge(other)

    def units_of(self, y: torch.Tensor) -> int:
        """How many units an output of this shape has."""
        return self._reduce_dims(y)[0]

    def _reduce_dims(self, y: torch.Tensor) -> tuple[int, list[int]]:
        if y.dim() < 2:
            return 1, list(range(y.dim()))
        unit_dim = self.unit_dim % y.dim()
        return y.shape[unit_dim], [d for d in range(y.dim()) if d != unit_dim]

    def update(
        self, x: torch.Tensor, y: torch.Tensor, module: torch.nn.Module | None = None, **params: Any
    ) -> bool:
        """Add one forward call: input ``x`` and output ``y`` of the activation.

        Returns whether this call read the moments (and so should read its gradient).
        """
        if self._lean and self._calls % self.every and not params and self._same_units(y):
            # Between moment batches a lean site reads only its units' peaks, until every
            # unit has fired, then nothing: the shortest path, run at nearly every call.
            per_unit = y.numel() // self.units  # type: ignore[operator]
            self.samples += per_unit
            if not self.can_die:
                self.always_passing += per_unit
            self._calls += 1
            if per_unit and not self._all_fired:
                self._fold_on_host(y.detach(), self._dims, False)
            return False
        x, y = x.detach(), y.detach()
        if y.is_meta:  # shapes only, no values to count
            return False
        units, dims = self._reduce_dims(y)
        if self.units is None:
            self.resolved_unit_dim = self.unit_dim % y.dim() if y.dim() >= 2 else None
            self._rank = y.dim()
            self._dims = dims
            self._unit_states(units, y.device)
        elif units != self.units:
            raise ValueError(
                f"Expected {self.units} units at this {self.kind} site (as in earlier batches), "
                f"but got an output of shape {tuple(y.shape)}"
            )
        per_unit = y.numel() // units if units else 0
        self.samples += per_unit
        read = self._calls % self.every == 0
        self._calls += 1
        cpu = y.device.type == "cpu"
        if y.numel():
            self._read_peaks(y, dims, read or not self._extremes_read, cpu)
        if self.count_active:
            self.active.add_(count_per_unit("gt", y, 0.0, dims, per_unit, self.scratch))
        # Rectifiers with a non-zero slope below zero always pass gradient; ReLU passes it
        # exactly where it fired (read from `peak` in compute); everything else needs its
        # derivative, until (on the CPU) every unit has passed some: only whether a unit
        # ever did is used, so the count may then stop until the next moment batch.
        self.can_die = not slope_is_never_zero(self.kind, module, **params)
        if not self.can_die:
            self.always_passing += per_unit
        elif self.kind != "relu" and (read or not cpu or not self._all_passed):
            derivative = local_derivative(self.kind, x, y, module, **params)
            self.nonzero_grad.add_(
                count_per_unit("ne", derivative, 0.0, dims, per_unit, self.scratch)
            )
            self._all_passed = cpu and bool(self.nonzero_grad.gt(0).all())
        if self.tracks_saturation:
            # The two ends are disjoint (the margin is under half the range): counts add.
            for compare, bound in self._saturating_bounds(module, params):
                self.saturated.add_(count_per_unit(compare, y, bound, dims, per_unit, self.scratch))
        if read:
            self._read_moments(y, dims)
        # Lean between moment batches: on the CPU, no count is asked for every value and
        # whether a unit can pass gradient needs no derivative; the units' peaks are then
        # all a call reads, until every unit has fired. The module's options (a Leaky
        # ReLU's slope) are read again at the next moment batch, not at every call.
        self._lean = (
            cpu
            and self._extremes_read
            and not self.count_active
            and not self.tracks_saturation
            and (not self.can_die or self.kind == "relu" or self._all_passed)
        )
        return read

    def _same_units(self, y: torch.Tensor) -> bool:
        # A CPU tensor (so not meta: it has values) of this site's rank and unit count.
        unit_dim = self.resolved_unit_dim
        return (
            y.is_cpu
            and unit_dim is not None
            and y.dim() == self._rank
            and y.shape[unit_dim] == self.units
        )

    def _read_peaks(self, y: torch.Tensor, dims: list[int], extremes: bool, cpu: bool) -> None:
        # Which units fired, and on ``extremes`` batches the batch's min, max and NaN / inf.
        # A unit has fired in this window once its largest output is above 0, and nothing
        # later in the window changes that: on the CPU a site whose units have all fired
        # reads nothing more until the next batch that reads the extremes. Gathering only
        # the units left was no cheaper than reading every unit, right after the layer, at
        # any size measured (``python examples/monitor_reduction_ops.py --threads 2``:
        # 1/64 of a 2048 x 1024 output's units gathered 460 us, every unit 443 us).
        # Elsewhere every batch is read, since knowing whether all fired would wait for the
        # device.
        if cpu and not extremes and self._all_fired:
            return
        self._extremes_read = self._extremes_read or extremes
        if cpu:
            self._fold_on_host(y, dims, extremes)
            return
        # One read-only pass each for the per-unit peaks and the minimum (which shows NaN;
        # the peaks ignore it). One peak per unit whatever the shape: a 1-D output's 0-dim
        # peak and an (N, 1) output's (1,) are the same site's single unit.
        peaks, largest = peak_per_unit(y, dims)
        low = y.amin() if extremes else None
        peaks = peaks.reshape(-1)
        # Elsewhere folding is a handful of tiny ops, done for many batches at once.
        self._extremes.append((low, largest if extremes else None, peaks))
        self._pending_peaks += peaks.numel()
        if len(self._extremes) >= _FOLD_EXTREMES or self._pending_peaks >= _FOLD_PEAK_VALUES:
            self._fold_extremes()

    def _fold_on_host(self, y: torch.Tensor, dims: list[int], extremes: bool) -> None:
        # On the CPU a batch's peaks go straight into the running peaks, and one number
        # tells whether they held NaN (the running peaks never do, so the smallest merged
        # peak is NaN only then) and whether every unit has now fired (it is above 0). A
        # batch with NaN is read again with NaN as -inf. Its extremes are compared as
        # numbers, which reading costs nothing there. Each op runs right after the layer,
        # where the first call of each kind costs tens of microseconds whatever it reads:
        # the fewer, the better (a tensor of the same kind as the last is read with
        # torch.amax at once, without reduce_per_unit's deciding again).
        kind = (y.shape, y.dtype, y.is_contiguous())
        if kind == self._one_call:
            peaks = torch.amax(y, dims)
        else:
            self._one_call = kind if reduces_in_one_call(y, dims) else None
            peaks = reduce_per_unit("amax", y, dims)
        run = self._running_peak(y.dtype)
        merged = torch.maximum(run, peaks, out=self._spare)
        least = merged.amin().item()
        if math.isnan(least):
            peaks = peak_per_unit(y, dims)[0]
            torch.maximum(run, peaks, out=merged)
            least = merged.amin().item()
        self._run, self._spare = merged, run
        self._all_fired = least > 0
        if not extremes:
            return
        lowest, highest = y.amin().item(), peaks.amax().item()
        self.add_on_host("minimum", lowest)  # NaN stays NaN, as torch.minimum keeps it
        self.add_on_host("maximum", highest)
        if not (math.isfinite(lowest) and math.isfinite(highest)):
            self.add_on_host("nonfinite_batches", 1)

    def _read_moments(self, y: torch.Tensor, dims: list[int]) -> None:
        # Per-batch sums in the tensor's precision (accurate enough for one batch), folded
        # into float64 states; no float64 copy of the activations is ever made.
        acc = torch.float64 if y.dtype == torch.float64 else torch.float32  # no f16 overflow
        self.elements += y.numel()
        if not y.numel():  # nothing to add; an empty histogram is all zeros
            return
        # Outputs of an activation that is never negative are their own magnitude, and
        # their per-unit sums add up to the total: one pass gives both. Others' |y| is
        # written into the scratch buffer: a fresh full-size tensor costs more.
        never_negative = self.spec.name in _NEVER_NEGATIVE
        magnitude = y if never_negative else self._magnitude(y)
        if magnitude.dtype in (torch.float16, torch.bfloat16):  # no half-precision overflow
            magnitude = magnitude.float()
        per_unit = reduce_per_unit("sum", magnitude, dims).reshape(-1)
        self.abs_total.add_(per_unit)
        total = per_unit.sum(dtype=acc) if never_negative else y.sum(dtype=acc)
        self.add_sum("total", total)
        self.add_sum("total_sq", squared_norm(y))
        # The near-zero share and the histogram are read from the same values: all of them,
        # or every k-th sample beyond hist_max_elements (see histogram_counts).
        part = sample_values(y, self.hist_max_elements)
        self.near_zero_read += part.numel()
        self._hold_values(part)

    def _hold_values(self, part: torch.Tensor) -> None:
        # Copy a batch's sampled values into the buffer (room for up to 16 such samples),
        # counting what it held first when they do not fit or differ in dtype or device.
        # A sample larger than _HELD_VALUES (hist_max_elements 0 or above it) is counted
        # at once.
        held, n = self._held, part.numel()
        if n > _HELD_VALUES:
            self._count_values(part)
            return
        if (
            held is None
            or n > held.numel()
            or (held.dtype, held.device) != (part.dtype, part.device)
        ):
            self._count_held()
            size = min(_HELD_VALUES, 16 * n)
            held = self._held = torch.empty(size, dtype=part.dtype, device=part.device)
        elif self._held_count + n > held.numel():
            self._count_held()
        held[self._held_count : self._held_count + n].view(part.shape).copy_(part)
        self._held_count += n

    def _count_held(self) -> None:
        if self._held is not None and self._held_count:
            values, self._held_count = self._held[: self._held_count], 0
            self._count_values(values)

    def _count_values(self, values: torch.Tensor) -> None:
        # The near-zero count and the histogram of sampled outputs.
        near = values if self.spec.name in _NEVER_NEGATIVE else values.abs()
        self.add_sum("near_zero_count", count_all("le", near, self.near_zero, self.scratch))
        if self.bins:
            self.histogram.add_(
                histogram_counts(values, self.bins, self.hist_range, 0, self.scratch)
            )

    def _magnitude(self, y: torch.Tensor) -> torch.Tensor:
        # |y|, into the scratch buffer where there is one (the reduction reads it at once).
        if self.scratch is None or y.dtype not in (torch.float32, torch.float64):
            return y.abs()
        return torch.abs(y, out=self.scratch.take(y.numel(), y.device, y.dtype).view(y.shape))

    def _saturating_bounds(
        self, module: torch.nn.Module | None, params: dict[str, Any]
    ) -> list[tuple[str, float]]:
        # (comparison, bound) per saturating end: outputs within the margin of that end.
        spec = self.spec
        options = {
            key: params.get(key, getattr(module, key, default) if module is not None else default)
            for key, default in spec.defaults.items()
        }
        low, high = spec.output_range(**options)  # type: ignore[misc]
        margin = self.saturation_margin * (high - low)
        low_end, high_end = spec.saturating_ends
        return [("le", low + margin)] * bool(low_end) + [("ge", high - margin)] * bool(high_end)

    def update_grad(self, grad_output: torch.Tensor) -> None:
        """Add one backward pass: the gradient arriving at the activation's output."""
        self.grad_passes += 1
        add_squared_norm(self, grad_output.detach(), "grad_sq", "grad_nonfinite_passes")

    def compute(self) -> SiteSummary:
        """Summarise the window (reduced across ranks when distributed)."""
        s = self.synced()
        units = self.units or 0
        samples = int(s["samples"])
        elements = int(s["elements"])
        mean = float(s["total"]) / elements if elements else math.nan
        var = float(s["total_sq"]) / elements - mean * mean if elements else math.nan
        if units and samples:
            fired = s["peak"] > 0
            never = torch.nonzero(~fired).flatten().tolist()
            passing = s["nonzero_grad"] + s["always_passing"]
            if self.kind == "relu":
                passing = passing + fired
            dead = torch.nonzero(passing == 0).flatten().tolist()
            dormant = _dormant(s["abs_total"], self.dormant_tau) if elements else []
        else:  # no samples in the window: nothing can be said about any unit
            never, dead, dormant = [], [], []
        saturated, saturated_units = None, None
        if self.tracks_saturation and units and samples:
            saturated = float(s["saturated"].double().mean()) / samples
            saturated_units = int((2 * s["saturated"] > samples).sum())
        passes = int(s["grad_passes"])
        return SiteSummary(
            kind=self.kind,
            units=units,
            samples=samples,
            never_active=len(never),
            dead=len(dead) if self.can_die and samples else None,
            saturated_fraction=saturated,
            mean=mean,
            std=math.sqrt(max(var, 0.0)) if elements else math.nan,
            minimum=float(s["minimum"]),
            maximum=float(s["maximum"]),
            histogram=s["histogram"].tolist(),
            histogram_range=self.hist_range,
            output_grad_norm=math.sqrt(float(s["grad_sq"]) / passes) if passes else None,
            never_active_units=never,
            dead_units=dead if self.can_die else [],
            dormant_units=dormant,
            dormant_tau=self.dormant_tau,
            near_zero_fraction=(
                int(s["near_zero_count"]) / int(s["near_zero_read"])
                if int(s["near_zero_read"])
                else None
            ),
            near_zero=self.near_zero,
            saturated_units=saturated_units,
            nonfinite_batches=int(s["nonfinite_batches"]),
            grad_nonfinite_passes=int(s["grad_nonfinite_passes"]),
            unit_dim=self.resolved_unit_dim,
            unit_dim_from=self.unit_dim_from,
        )


def _dormant(abs_total: torch.Tensor, tau: float) -> list[int]:
    """Units whose mean |output| is at most ``tau`` times their site's mean of it.

    Every unit saw the same samples, so sums stand for means. A site whose outputs were
    all 0 has every unit dormant.

    Examples:
        >>> _dormant(torch.tensor([0.0, 1.0, 2.0, 0.05], dtype=torch.float64), 0.1)
        [0, 3]
    """
    layer_mean = float(abs_total.mean())
    if layer_mean == 0:
        return list(range(abs_total.numel()))
    return torch.nonzero(abs_total / layer_mean <= tau).flatten().tolist()
