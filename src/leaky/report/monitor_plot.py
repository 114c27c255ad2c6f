"""The monitor's picture: dead / never-active units per site, gradient norm against depth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from leaky.atomic import atomic_path, ensure_output_dir
from leaky.messages import Messages, get_messages
from leaky.report.style import color_for, figure_style

if TYPE_CHECKING:
    from leaky.monitor.report import MonitorReport

__all__ = ["plot_monitor_report"]


def plot_monitor_report(report: MonitorReport, path: str | Path, lang: str = "en") -> Path:
    """Write the two-panel figure to ``path`` (format from its suffix: .png or .svg)."""
    messages = get_messages(lang)
    target = Path(path)
    if target.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"Expected a .png or .svg path for the plot, but got {str(target)!r}")
    ensure_output_dir(target.parent)
    with figure_style():
        fig = Figure(figsize=(12, 4.8), layout="constrained")  # no pyplot global state
        ax_units, ax_grad = fig.subplots(1, 2)
        _draw_units(ax_units, report, messages)
        _draw_gradients(ax_grad, report, messages)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:].lower())
    return target


def _draw_units(ax: Axes, report: MonitorReport, messages: Messages) -> None:
    names = [f"{row.name} ({row.kind})" for row in report.sites]
    positions = np.arange(len(names))
    inactive = [row.summary.never_active_fraction for row in report.sites]
    dead = [row.summary.dead_fraction or 0.0 for row in report.sites]
    colors = [color_for(row.kind) for row in report.sites]
    ax.bar(
        positions - 0.2,
        inactive,
        width=0.4,
        color=colors,
        alpha=0.4,
        label=messages("monitor.inactive"),
    )
    ax.bar(
        positions + 0.2,
        dead,
        width=0.4,
        color=colors,
        hatch="//",
        edgecolor="black",
        linewidth=0.5,
        label=messages("monitor.dead"),
    )
    saturated = [row.summary.saturated_fraction for row in report.sites]
    if any(value is not None for value in saturated):
        ax.scatter(
            [p for p, v in zip(positions, saturated, strict=True) if v is not None],
            [v for v in saturated if v is not None],
            marker="D",
            color="0.2",
            zorder=3,
            label=messages("monitor.saturated"),
        )
    if not any(inactive) and not any(v for v in saturated if v is not None):
        ax.text(0.5, 0.5, messages("monitor.all_live"), ha="center", transform=ax.transAxes)
    rotation = 45 if len(names) > 3 else 0
    ax.set_xticks(
        positions, names, rotation=rotation, ha="right" if rotation else "center", fontsize=8
    )
    ax.set(
        ylim=(0, 1.05),
        xlim=(-0.7, max(len(names), 3) - 0.3),
        xlabel=messages("monitor.site_xlabel"),
        ylabel=messages("monitor.units_ylabel"),
        title=messages("monitor.units_title"),
    )
    ax.legend(loc="upper right", fontsize=8)


def _draw_gradients(ax: Axes, report: MonitorReport, messages: Messages) -> None:
    norms = [row.grad_norm for row in report.layers if row.grad_norm]
    outputs = [row.summary.output_grad_norm for row in report.sites if row.summary.output_grad_norm]
    if not norms and not outputs:
        ax.text(0.5, 0.5, messages("monitor.no_backward"), ha="center", transform=ax.transAxes)
    if norms:
        ax.semilogy(
            np.arange(1, len(norms) + 1),
            norms,
            marker="o",
            color="0.15",
            label=messages("monitor.weight_grad"),
        )
    if outputs:
        ax.semilogy(
            np.arange(1, len(outputs) + 1),
            outputs,
            marker="s",
            color="0.6",
            linestyle="--",
            label=messages("monitor.output_grad"),
        )
    values = [v for v in (*norms, *outputs) if v > 0]
    if values:
        # At least four decades shown, so that a healthy 2x spread looks flat, not steep.
        low, high = np.log10(min(values)), np.log10(max(values))
        middle = (low + high) / 2
        half = max((high - low) / 2 + 0.3, 2.0)
        ax.set_ylim(10 ** (middle - half), 10 ** (middle + half))
        ax.legend(loc="lower right", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ratio = report.gradient_ratio
    ax.set(
        xlabel=messages("monitor.depth_xlabel"),
        ylabel=messages("monitor.grad_ylabel"),
        title=messages(
            "monitor.grad_title",
            verdict=report.verdict,
            ratio="-" if ratio is None else f"{ratio:.2g}",
        ),
    )
