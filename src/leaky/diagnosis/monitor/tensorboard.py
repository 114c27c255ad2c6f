"""Write a monitor report to TensorBoard: per-site scalars and histograms, per-layer norms.

Works with any writer that has TensorBoard's ``SummaryWriter`` methods (``add_scalar``,
``add_histogram_raw``, ``flush``), so nothing here imports ``tensorboard``: the monitor
runs without it, and only the code that makes a writer needs it.

Tags, with ``prefix`` ``"monitor"`` by default (a site or layer is named as in the report):

==========================================  ==============================================
tag                                         value
==========================================  ==============================================
``monitor/<site>/dead_fraction``            units whose local gradient was 0 on every sample
                                            (activations that can die only)
``monitor/<site>/never_active_fraction``    units whose output was <= 0 on every sample
``monitor/<site>/saturated_fraction``       outputs near a saturating bound (bounded
                                            activations only)
``monitor/<site>/output_grad_norm``         RMS of the gradient norm at the output
``monitor/<site>/activations``              histogram of the outputs (the monitor's bins)
``monitor/<layer>/grad_norm``               RMS of the weight-gradient norm
``monitor/gradient_ratio``                  first layer's gradient norm over the last's
==========================================  ==============================================

Statistics that do not apply or were not seen (no backward pass yet) are left out rather
than written as zeros.
"""

from __future__ import annotations

import math
from typing import Any

from leaky.diagnosis.monitor.report import MonitorReport
from leaky.diagnosis.monitor.site_stats import SiteSummary

__all__ = ["check_writer", "log_report"]

_WRITER_METHODS = ("add_scalar", "add_histogram_raw", "flush")


def check_writer(writer: Any) -> None:
    """Check that ``writer`` is a TensorBoard ``SummaryWriter`` (or quacks like one).

    Examples:
        >>> check_writer("runs/")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: Expected a TensorBoard writer (...SummaryWriter), but got str; make one ...
    """
    if not all(callable(getattr(writer, name, None)) for name in _WRITER_METHODS):
        raise TypeError(
            "Expected a TensorBoard writer (torch.utils.tensorboard.SummaryWriter), but got "
            f"{type(writer).__name__}; make one with SummaryWriter(log_dir)"
        )


def _scalar(writer: Any, tag: str, value: float | None, step: int) -> None:
    if value is not None:
        writer.add_scalar(tag, float(value), step)


def _finite_or(value: float, fallback: float) -> float:
    return value if math.isfinite(value) else fallback


def _histogram(writer: Any, tag: str, summary: SiteSummary, step: int) -> None:
    # The monitor's counts: below the range, its bins, above it (NaN included). TensorBoard
    # buckets are (previous limit, limit]; the two outer ones end at the range's ends and
    # at the largest output.
    counts = summary.histogram
    bins = len(counts) - 2
    total = sum(counts)
    if bins < 1 or total == 0:
        return
    low, high = summary.histogram_range
    limits = [low + (high - low) * i / bins for i in range(bins + 1)]
    limits.append(max(high, _finite_or(summary.maximum, high)))
    if counts[-1] and limits[-1] == high:  # everything above the range must sit above it
        limits[-1] = math.nextafter(high, math.inf)
    mean = _finite_or(summary.mean, 0.0)
    std = _finite_or(summary.std, 0.0)
    writer.add_histogram_raw(
        tag,
        min=min(low, _finite_or(summary.minimum, low)),
        max=limits[-1],
        num=total,
        sum=mean * total,
        sum_squares=(std * std + mean * mean) * total,
        bucket_limits=limits,
        bucket_counts=list(counts),
        global_step=step,
    )


def log_report(writer: Any, report: MonitorReport, step: int, prefix: str = "monitor") -> None:
    """Write ``report`` to ``writer`` at ``step`` under ``prefix`` (tags: module docstring).

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``.
        report: what :meth:`leaky.diagnosis.monitor.Monitor.report` returned.
        step: the global step of every value written.
        prefix: the first part of every tag. Default: ``"monitor"``

    Examples:
        >>> import torch
        >>> from leaky.diagnosis.monitor import Monitor
        >>> class Recorder:
        ...     def __init__(self): self.tags = []
        ...     def add_scalar(self, tag, value, step): self.tags.append(tag)
        ...     def add_histogram_raw(self, tag, **kw): self.tags.append(tag)
        ...     def flush(self): pass
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
        >>> with Monitor(model) as monitor:
        ...     model(torch.randn(8, 3)).sum().backward()
        >>> writer = Recorder()
        >>> log_report(writer, monitor.report(), step=1)
        >>> writer.tags  # doctest: +NORMALIZE_WHITESPACE
        ['monitor/1/dead_fraction', 'monitor/1/never_active_fraction',
         'monitor/1/output_grad_norm', 'monitor/1/activations', 'monitor/0/grad_norm']
    """
    check_writer(writer)
    for site in report.sites:
        tag, summary = f"{prefix}/{site.name}", site.summary
        _scalar(writer, f"{tag}/dead_fraction", summary.dead_fraction, step)
        _scalar(writer, f"{tag}/never_active_fraction", summary.never_active_fraction, step)
        _scalar(writer, f"{tag}/saturated_fraction", summary.saturated_fraction, step)
        _scalar(writer, f"{tag}/output_grad_norm", summary.output_grad_norm, step)
        _histogram(writer, f"{tag}/activations", summary, step)
    for layer in report.layers:
        _scalar(writer, f"{prefix}/{layer.name}/grad_norm", layer.grad_norm, step)
    _scalar(writer, f"{prefix}/gradient_ratio", report.gradient_ratio, step)
    writer.flush()
