"""The monitor's cheap passes agree with the plain, slow way of computing the same thing."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from leaky.diagnosis.monitor import reductions, site_stats
from leaky.diagnosis.monitor.layer_stats import LayerGradientStatistics
from leaky.diagnosis.monitor.metric import Metric
from leaky.diagnosis.monitor.reductions import (
    count_per_unit,
    histogram_counts,
    peak_per_unit,
    reduce_per_unit,
    squared_norm,
    squared_norm_and_nonfinite,
)
from leaky.diagnosis.monitor.site_stats import SiteStatistics

EDGE = [0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, math.inf, -math.inf, math.nan, 3e38, -3e38]


def _reference_histogram(values: np.ndarray, bins: int, low: float, high: float) -> list[int]:
    counts = [0] * (bins + 2)
    width = (high - low) / bins
    for v in values.astype(np.float64):
        if math.isnan(v) or v >= high:
            counts[bins + 1] += 1
        elif v < low:
            counts[0] += 1
        else:
            counts[1 + min(int((v - low) // width), bins - 1)] += 1
    return counts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(EDGE) | st.floats(-10, 10, width=32), min_size=1, max_size=60),
    st.sampled_from(["gt", "ne", "le", "ge"]),
)
def test_counts_match_a_bool_count(values, compare):
    y = torch.tensor(values, dtype=torch.float32).reshape(-1, 1).repeat(1, 3)
    y[:, 1] = -y[:, 1]
    expected = getattr(torch, compare)(y, 0.5).sum(dim=0)
    got = count_per_unit(compare, y, 0.5, [0], samples=y.shape[0])
    assert got.dtype == torch.int64
    assert got.tolist() == expected.tolist()


def test_counts_beyond_float32_exactness_count_in_integers(monkeypatch):
    monkeypatch.setattr(reductions, "EXACT_FLOAT_COUNT", 4)
    y = torch.tensor([[1.0, -1.0], [2.0, 3.0], [0.0, 4.0], [5.0, 6.0], [-1.0, 7.0]])
    assert count_per_unit("gt", y, 0.0, [0], samples=5).tolist() == [3, 4]


def test_counts_over_channels_of_a_non_contiguous_convolution_output():
    y = torch.randn(4, 6, 5, 3).transpose(1, 3)  # units in dimension 3 now, not contiguous
    expected = (y > 0).sum(dim=(0, 1, 2))
    assert count_per_unit("gt", y, 0.0, [0, 1, 2], samples=60).tolist() == expected.tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_squared_norm_matches_float64_numpy(dtype):
    t = torch.randn(257, 33).to(dtype)
    expected = float(np.sum(t.double().numpy() ** 2))
    assert float(squared_norm(t)) == pytest.approx(expected, rel=1e-5)
    assert float(squared_norm(t.t())) == pytest.approx(expected, rel=1e-5)  # non-contiguous


def test_squared_norm_of_an_empty_tensor_is_zero():
    assert float(squared_norm(torch.empty(0, 4))) == 0.0
    sq, bad = squared_norm_and_nonfinite(torch.empty(0))
    assert float(sq) == 0.0 and int(bad) == 0


@pytest.mark.parametrize(
    ("values", "nonfinite"),
    [
        ([1.0, 2.0], 0),
        ([1.0, math.nan], 1),
        ([math.inf, 1.0], 1),
        ([-math.inf, 1.0], 1),
        ([3e38, 3e38], 0),  # the squares overflow float32, the values are finite
        ([3e38, math.nan], 1),
    ],
)
def test_nonfinite_is_exact_even_when_the_squares_overflow(values, nonfinite):
    _, bad = squared_norm_and_nonfinite(torch.tensor(values))
    assert int(bad) == nonfinite
    assert reductions.host_squared_norm_and_nonfinite(torch.tensor(values))[1] == bool(nonfinite)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(EDGE) | st.floats(-6, 6, width=32), min_size=1, max_size=80))
def test_histogram_matches_a_reference_on_edge_values(values):
    # Bins are 1 wide: a value a rounding error below an edge may land on either side.
    assume(all(not math.isfinite(v) or v == round(v) or abs(v - round(v)) > 1e-4 for v in values))
    y = torch.tensor(values, dtype=torch.float32)
    got = histogram_counts(y, 8, (-4.0, 4.0), 0).tolist()
    assert got == _reference_histogram(y.numpy(), 8, -4.0, 4.0)
    assert sum(got) == len(values)


def test_histogram_of_a_large_vector_reads_an_even_stride():
    y = torch.arange(1000, dtype=torch.float32) / 250.0 - 2.0
    counts = histogram_counts(y, 4, (-2.0, 2.0), max_elements=100)
    assert counts.sum() == 100  # one value in ten
    assert counts.tolist() == [0, 25, 25, 25, 25, 0]


@pytest.mark.parametrize("scratch", [None, reductions.Scratch()])
def test_histogram_of_a_large_batch_reads_every_kth_sample_whole(scratch):
    # 10 samples of 6 values; sample i holds the value i everywhere.
    y = torch.arange(10, dtype=torch.float32).view(10, 1, 1).expand(10, 2, 3).contiguous()
    counts = histogram_counts(y, 10, (0.0, 10.0), max_elements=20, scratch=scratch)
    # 3 whole samples fit: every 4th sample (0, 4, 8), every unit of each.
    assert counts.tolist() == [0, 6, 0, 0, 0, 6, 0, 0, 0, 6, 0, 0]


def test_histogram_of_one_sample_larger_than_the_limit_strides_through_it():
    y = torch.arange(40, dtype=torch.float32).view(1, 40)
    counts = histogram_counts(y, 4, (0.0, 40.0), max_elements=10)
    assert counts.tolist() == [0, 3, 2, 3, 2, 0]  # values 0, 4, 8, ..., 36


def test_a_sample_larger_than_the_limit_is_read_as_whole_rows_from_every_place():
    # y[n, c, h, :] = h: every k-th row of the last dimension, k odd, so the rows read
    # come from every h (an even k would read h = 0 and 2 only).
    y = torch.arange(4, dtype=torch.float32).view(1, 1, 4, 1).expand(2, 4, 4, 8).contiguous()
    part = reductions.sample_values(y, 64)
    assert part.numel() <= 64 and part.shape[-1] == 8
    assert sorted(set(part[:, 0].tolist())) == [0.0, 1.0, 2.0, 3.0]
    assert (part == part[:, :1]).all()  # each row read whole


@pytest.mark.parametrize("kind", ["leaky_relu", "relu", "tanh"])
def test_moments_read_through_the_scratch_buffer_equal_those_without(kind):
    generator = torch.Generator().manual_seed(0)
    with_scratch, without = (
        SiteStatistics(kind, every=1, scratch=scratch, dormant_tau=0.5)
        for scratch in (reductions.Scratch(), None)
    )
    for _ in range(3):
        scale = torch.linspace(0.1, 2.0, 5).view(5, 1, 1)
        x = torch.randn(64, 5, 6, 6, generator=generator) * scale
        y = torch_f.leaky_relu(x) if kind == "leaky_relu" else getattr(torch, kind)(x)
        with_scratch.update(x, y)
        without.update(x, y)
    got, expected = with_scratch.compute(), without.compute()
    assert torch.equal(with_scratch.abs_total, without.abs_total)
    assert got.dormant_units == expected.dormant_units and got.histogram == expected.histogram
    assert (got.mean, got.std, got.near_zero_fraction) == (
        expected.mean,
        expected.std,
        expected.near_zero_fraction,
    )


def test_the_near_zero_share_is_read_from_the_histograms_values():
    # 8 samples of 2 values, at most 4 read: samples 0 and 4, which hold the near-zero ones.
    y = torch.ones(8, 2)
    y[0, 0] = y[4, 1] = 0.001
    for limit, expected in ((4, 2 / 4), (0, 2 / 16)):
        stats = SiteStatistics("leaky_relu", unit_dim=-1, hist_max_elements=limit)
        stats.update(y, y)
        summary = stats.compute()
        assert summary.near_zero_fraction == expected
        assert sum(summary.histogram) == (4 if limit else 16)


def test_extremes_and_nonfinite_batches_survive_folding_and_reset():
    stats = SiteStatistics("leaky_relu")
    for i in range(150):  # more than one fold of pending batches
        y = torch.full((2, 3), float(i))
        if i in (10, 100):
            y[0, 0] = math.nan if i == 10 else math.inf
        stats.update(y, y)
    summary = stats.compute()
    assert summary.nonfinite_batches == 2
    assert math.isnan(summary.minimum)  # NaN propagates, as it always did
    stats.reset()
    y = torch.tensor([[-2.0, 5.0, 1.0]])
    stats.update(y, y)
    summary = stats.compute()
    assert (summary.minimum, summary.maximum, summary.nonfinite_batches) == (-2.0, 5.0, 0)


def test_merging_sites_folds_both_pending_extremes():
    a, b = SiteStatistics("relu"), SiteStatistics("relu")
    a.update(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.0]]))
    b.update(torch.tensor([[-7.0, 9.0]]), torch.tensor([[0.0, 9.0]]))
    a.merge(b)
    summary = a.compute()
    assert (summary.minimum, summary.maximum) == (0.0, 9.0)


@pytest.mark.parametrize("max_elements", [1, 5, 12, 1000])
def test_counts_through_a_small_scratch_read_every_slice(max_elements):
    scratch = reductions.Scratch(max_elements)
    y = torch.randn(7, 3, 2)
    y[2, 1, 0] = math.nan
    expected = (y > 0).sum(dim=(0, 2))
    for _ in range(2):  # the buffer is reused, its old contents never leak into a count
        got = count_per_unit("gt", y, 0.0, [0, 2], samples=14, scratch=scratch)
        assert got.tolist() == expected.tolist()
    assert scratch.take(1, torch.device("cpu")).numel() == 1


def test_counts_of_an_empty_batch_through_a_scratch_are_zero():
    got = count_per_unit("gt", torch.empty(0, 4), 0.0, [0], samples=0, scratch=reductions.Scratch())
    assert got.tolist() == [0, 0, 0, 0]


def test_units_in_the_first_dimension_are_never_sliced_apart():
    y = torch.tensor([[1.0, 2.0, -1.0], [-1.0, -2.0, 3.0]])  # units: the rows
    got = count_per_unit("gt", y, 0.0, [1], samples=3, scratch=reductions.Scratch(2))
    assert got.tolist() == [2, 1]


@pytest.fixture(params=["one call", "memory order", "batch first"])
def reduce_path(request, monkeypatch):
    """Each of reduce_per_unit's paths: small tensors in one call, large ones in memory
    order, small feature maps batch first (here: every tensor that path can take)."""
    monkeypatch.setattr(reductions, "_SHORT_ROWS", 10**9 if request.param == "batch first" else 0)
    if request.param == "memory order":
        monkeypatch.setattr(reductions, "_ONE_CALL_BYTES", 0)
    return request.param


LAYOUTS = {
    "contiguous": lambda t: t,
    "channels_last": lambda t: t.to(memory_format=torch.channels_last),
    "transposed": lambda t: t.transpose(0, 3).contiguous().transpose(0, 3),
    "sliced": lambda t: t[:, :, ::2],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("reduce", ["sum", "amax", "amin"])
@pytest.mark.parametrize("unit_dim", [0, 1, 3])
def test_reduce_per_unit_matches_float64_numpy_in_every_layout(
    layout, reduce, unit_dim, reduce_path
):
    t = LAYOUTS[layout](torch.randn(5, 6, 4, 3))
    dims = [d for d in range(4) if d != unit_dim]
    expected = getattr(np, {"sum": "sum", "amax": "max", "amin": "min"}[reduce])(
        t.double().numpy(), axis=tuple(dims)
    )
    got = reduce_per_unit(reduce, t, dims)
    assert got.shape == (t.shape[unit_dim],)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [31, 32, 37, 64])
@pytest.mark.parametrize("reduce", ["sum", "amax", "amin"])
def test_long_rows_reduced_in_blocks_match_float64_numpy(rows, reduce, reduce_path):
    # Rows of 600 float32 (2,400 bytes): extremes are reduced 16 rows at a time, then the rest.
    t = torch.randn(rows, 600)
    t[-1, 5] = 99.0 if reduce != "amin" else -99.0  # in the rows after the last block
    numpy_name = {"sum": "sum", "amax": "max", "amin": "min"}[reduce]
    expected = getattr(np, numpy_name)(t.double().numpy(), axis=0)
    got = reduce_per_unit(reduce, t, [0])
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_reduce_per_unit_of_a_single_sample_and_of_an_empty_batch(reduce_path):
    t = torch.tensor([[[1.0, -2.0], [3.0, 4.0]]])  # one sample, 2 units, 2 positions
    assert reduce_per_unit("amax", t, [0, 2]).tolist() == [1.0, 4.0]
    assert reduce_per_unit("sum", torch.empty(0, 3, 2), [0, 2]).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(IndexError):  # as torch: no maximum of nothing
        reduce_per_unit("amax", torch.empty(0, 3), [0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(EDGE) | st.floats(-10, 10, width=32), min_size=1, max_size=60))
def test_peaks_ignore_nan_and_decide_firing_as_a_count_does(values):
    y = torch.tensor(values, dtype=torch.float32).reshape(-1, 1).repeat(1, 3)
    y[:, 1] = -y[:, 1]
    y[0, 2] = math.nan  # unit 2 always holds a NaN
    fired = (y > 0).sum(dim=0) > 0  # NaN is not above 0
    finite = y.numpy()[~np.isnan(y.numpy())]
    expected = np.nanmax(y.numpy(), axis=0, initial=-np.inf, where=~np.isnan(y.numpy()))
    peaks, largest = peak_per_unit(y, [0])
    assert (peaks > 0).tolist() == fired.tolist()
    assert peaks.tolist() == expected.tolist()
    assert float(largest) == (finite.max() if finite.size else -math.inf)


def test_a_unit_that_fired_once_beside_nan_is_not_never_active():
    stats = SiteStatistics("leaky_relu")
    y = torch.tensor([[math.nan, -1.0], [2.0, -3.0]])
    stats.update(y, y, torch.nn.LeakyReLU())
    summary = stats.compute()
    assert summary.never_active_units == [1]
    assert summary.nonfinite_batches == 1


@pytest.mark.parametrize(
    ("shape", "dims"),
    [((2, 3, 0, 2), [0, 2, 3]), ((2, 0, 1), [0, 2]), ((2, 0, 1, 1), [0, 2, 3]), ((0, 4), [0])],
)
def test_reduce_per_unit_of_empty_tensors_sums_as_torch_does(shape, dims, reduce_path):
    t = torch.empty(shape)
    assert reduce_per_unit("sum", t, dims).tolist() == t.sum(dims).tolist()


@pytest.mark.parametrize("dims", [[-1, 0], [-1], [1], [], [-2]])
def test_reduce_per_unit_takes_negative_and_no_dims_as_torch_does(dims, reduce_path):
    t = torch.randn(3, 4)
    expected = t.sum(dims)
    got = reduce_per_unit("sum", t, dims)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


def test_a_sigmoid_site_with_an_empty_spatial_dimension_counts_nothing():
    stats = SiteStatistics("sigmoid")
    y = torch.empty(2, 3, 0, 2)
    stats.update(y, y)  # counted through the per-unit sums, which see no value
    summary = stats.compute()
    assert (summary.units, summary.samples, summary.saturated_units) == (3, 0, None)


def test_one_unit_from_a_vector_and_from_a_column_folds_as_one_site():
    stats = SiteStatistics("relu")
    stats.update(torch.tensor([-1.0, -2.0]), torch.tensor([0.0, 0.0]))
    stats.update(torch.tensor([[3.0], [-1.0]]), torch.tensor([[3.0], [0.0]]))
    summary = stats.compute()
    assert summary.never_active_units == [] and summary.maximum == 3.0


@settings(deadline=None)
@given(
    st.lists(st.sampled_from(EDGE) | st.floats(-3, 1, width=32), min_size=24, max_size=24),
    st.integers(1, 6),
)
def test_reading_until_every_unit_fired_counts_as_a_bool_count_does(values, batches):
    # 12 units, batches of 2 samples; units 0-9 fire in the first batch, 10 and 11 take the
    # edge values (NaN, +-0.0, subnormals, +-inf) across the later ones, between moment
    # batches.
    stats = SiteStatistics("relu", unit_dim=-1, every=16)
    outputs = [torch.cat([torch.ones(2, 10), -torch.ones(2, 2)], dim=1)]
    for i in range(batches):
        y = torch.ones(2, 12)
        y[:, 10:] = torch.tensor(values[4 * i : 4 * i + 4], dtype=torch.float32).view(2, 2)
        outputs.append(y)
    for y in outputs:
        stats.update(y, y)
    fired = (torch.cat(outputs) > 0).any(dim=0)  # NaN is not above 0
    assert stats.compute().never_active_units == torch.nonzero(~fired).flatten().tolist()


def test_a_site_reads_nothing_between_moment_batches_once_every_unit_has_fired():
    stats = SiteStatistics("relu", unit_dim=-1, every=16)
    for y in ([[1.0, -1.0, 0.0]], [[-1.0, 2.0, -1.0]], [[0.0, 0.0, 3.0]]):  # all fired by now
        stats.update(torch.tensor(y), torch.tensor(y))
    read = AssertionError("read")
    with (
        mock.patch.object(site_stats, "peak_per_unit", side_effect=read),
        mock.patch.object(site_stats, "reduce_per_unit", side_effect=read),
        mock.patch.object(torch, "amax", side_effect=read),  # a repeated shape's direct read
    ):
        for _ in range(12):  # up to the next moment batch (the 17th call): nothing read
            y = torch.full((2, 3), -5.0)
            assert stats.update(y, y) is False
    summary = stats.compute()
    assert summary.never_active_units == [] and summary.samples == 3 + 12 * 2


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
# Values each dtype holds, and positives too small for the narrower ones (they round to 0).
PEAK_VALUES = [*EDGE, 1e-300, 1e-40, 1e-9, -1e-300, 0.5]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(DTYPES),
            st.lists(st.sampled_from(PEAK_VALUES), min_size=6, max_size=6),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([1, 4, 16]),
)
def test_running_peaks_equal_the_float64_maximum_across_dtypes_and_reads(batches, every):
    # Batches of 2 samples x 3 units whose dtype changes as it likes, the states read (folded)
    # after some of them: a unit that never fired peaks at its largest non-NaN value, as
    # float64 sees the values each batch held; one that fired peaks above 0 but perhaps
    # below that (reading stops once every unit has fired); never-active units are those
    # never above 0.
    stats = SiteStatistics("leaky_relu", unit_dim=-1, every=every)
    seen = []
    for dtype, values, read_states in batches:
        y = torch.tensor(values, dtype=torch.float64).view(2, 3).to(dtype)
        stats.update(y, y, torch.nn.LeakyReLU())
        seen.append(y.double())
        if read_states:
            stats.state()
    held = torch.cat(seen)
    expected = held.masked_fill(held.isnan(), -math.inf).amax(0)
    peak = stats.state()["peak"]
    assert torch.equal(peak > 0, expected > 0) and bool((peak <= expected).all())
    assert torch.equal(peak[expected <= 0], expected[expected <= 0])
    never = torch.nonzero(~(held > 0).any(0)).flatten().tolist()
    assert stats.compute().never_active_units == never


def test_merging_mid_window_goes_on_from_the_merged_peaks():
    # Site a has seen unit 0 fire; b merges into it mid-window, then both go on.
    a, b = SiteStatistics("relu", unit_dim=-1), SiteStatistics("relu", unit_dim=-1)
    a.update(torch.tensor([[1.0, -1.0, -1.0]]), torch.tensor([[1.0, -1.0, -1.0]]))
    b.update(torch.tensor([[-1.0, 2.0, -1.0]]), torch.tensor([[-1.0, 2.0, -1.0]]))
    a.merge(b)
    y = torch.tensor([[-1.0, -1.0, -2.0]])
    a.update(y, y)
    assert a.state()["peak"].tolist() == [1.0, 2.0, -1.0]
    assert a.compute().never_active_units == [2]


class _Folded(Metric):
    # One state per reduction, each also fed host numbers.
    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("low", torch.tensor(math.inf, dtype=torch.float64), "min")
        self.add_state("high", torch.tensor(-math.inf, dtype=torch.float64), "max")


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=8))
@settings(max_examples=200, deadline=None)
def test_host_numbers_fold_as_the_tensor_states_would(values):
    on_host, in_tensors = _Folded(), _Folded()
    for value in values:
        for name in ("total", "low", "high"):
            on_host.add_on_host(name, value)
        one = torch.tensor(value, dtype=torch.float64)
        in_tensors.total.add_(one)
        torch.minimum(in_tensors.low, one, out=in_tensors.low)
        torch.maximum(in_tensors.high, one, out=in_tensors.high)
    got, expected = on_host.state(), in_tensors.state()
    for name in ("total", "low", "high"):
        # The same float64 additions in the same order: equal, NaN where torch has NaN.
        assert torch.equal(got[name], expected[name]) or (
            got[name].isnan() and expected[name].isnan()
        ), (name, got[name], expected[name])


def test_host_numbers_are_folded_before_merging_moving_and_dropped_on_reset():
    a, b = _Folded(), _Folded()
    a.add_on_host("total", 2.0)
    b.add_on_host("total", 3.0)
    b.add_on_host("high", 7.0)
    a.merge(b)  # both sides' host numbers are in the merged states
    assert (float(a.total), float(a.high)) == (5.0, 7.0)
    a.add_on_host("low", -1.0)
    a.to("cpu")
    assert float(a.low) == -1.0
    a.add_on_host("total", 100.0)
    a.reset()
    assert float(a.state()["total"]) == 0.0


def test_gradient_norms_read_on_the_host_equal_the_tensor_reduction():
    torch.manual_seed(0)
    grads = [torch.randn(33, 17) for _ in range(3)] + [torch.randn(17, 33).t()]
    grads.append(torch.tensor([1.0, math.inf]))
    layer = LayerGradientStatistics()
    for g in grads:
        layer.update(g)
    expected = sum(float(g.double().square().sum()) for g in grads[:-1])
    assert layer.compute() == math.inf
    assert layer.nonfinite_passes_count() == 1
    layer.reset()
    for g in grads[:-1]:
        layer.update(g)
    assert layer.compute() == pytest.approx(math.sqrt(expected / 4), rel=1e-6)
