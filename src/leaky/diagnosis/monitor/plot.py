"""The monitor's picture: units per site, weight gradients per layer, dL/dy per site.

Three panels, each with its own x axis in forward order (the order in which sites and
layers first ran): layers and activation sites are different things, so their gradient
norms are not drawn against one shared index.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from leaky.messages import Messages, get_messages
from leaky.messages.style import color_for, figure_style
from leaky.system.atomic import atomic_path, ensure_output_dir

if TYPE_CHECKING:
    from leaky.diagnosis.monitor.report import MonitorReport

__all__ = ["monitor_figure", "plot_monitor_report"]


def monitor_figure(report: MonitorReport, lang: str = "en") -> Figure:
    """The three-panel figure: units per site, |dL/dW| per layer, |dL/dy| per site."""
    messages = get_messages(lang)
    fig = Figure(figsize=(16, 5.2), layout="constrained")  # no pyplot global state
    ax_units, ax_weights, ax_outputs = fig.subplots(1, 3)
    _draw_units(ax_units, report, messages)
    _draw_weight_gradients(ax_weights, report, messages)
    _draw_output_gradients(ax_outputs, report, messages)
    return fig


def plot_monitor_report(report: MonitorReport, path: str | Path, lang: str = "en") -> Path:
    """Write the three-panel figure to ``path`` (format from its suffix: .png or .svg)."""
    target = Path(path)
    if target.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"Expected a .png or .svg path for the plot, but got {str(target)!r}")
    ensure_output_dir(target.parent)
    with figure_style():
        fig = monitor_figure(report, lang)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:].lower())
    return target


def _name_ticks(ax: Axes, names: list[str]) -> None:
    rotation = 45 if len(names) > 3 else 0
    ax.set_xticks(
        np.arange(len(names)),
        names,
        rotation=rotation,
        ha="right" if rotation else "center",
        fontsize=8,
    )
    ax.set_xlim(-0.7, max(len(names), 3) - 0.3)


def _log_limits(ax: Axes, values: list[float]) -> None:
    values = [v for v in values if v > 0 and np.isfinite(v)]
    if values:
        # At least four decades shown, so that a healthy 2x spread looks flat, not steep.
        low, high = np.log10(min(values)), np.log10(max(values))
        middle = (low + high) / 2
        half = max((high - low) / 2 + 0.3, 2.0)
        ax.set_ylim(10 ** (middle - half), 10 ** (middle + half))


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
            label=messages("monitor.saturated", margin=f"{report.saturation_margin:.0%}"),
        )
    if not any(inactive) and not any(v for v in saturated if v is not None):
        ax.text(0.5, 0.5, messages("monitor.all_live"), ha="center", transform=ax.transAxes)
    _name_ticks(ax, names)
    ax.set(
        ylim=(0, 1.05),
        xlabel=messages("monitor.site_xlabel"),
        ylabel=messages("monitor.units_ylabel"),
        title=messages("monitor.units_title"),
    )
    ax.legend(loc="upper right", fontsize=8)


def _draw_weight_gradients(ax: Axes, report: MonitorReport, messages: Messages) -> None:
    rows = [row for row in report.layers if row.grad_norm is not None]
    if rows:
        ax.semilogy(
            np.arange(len(rows)),
            [row.grad_norm for row in rows],
            marker="o",
            color="0.15",
            label=messages("monitor.weight_grad"),
        )
        _log_limits(ax, [row.grad_norm for row in rows])  # type: ignore[misc]
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, messages("monitor.no_backward"), ha="center", transform=ax.transAxes)
    _name_ticks(ax, [row.name for row in rows])
    ratio = report.gradient_ratio
    ax.set(
        xlabel=messages("monitor.layer_xlabel"),
        ylabel=messages("monitor.grad_ylabel"),
        title=messages(
            "monitor.grad_title",
            verdict=report.verdict,
            ratio="-" if ratio is None else f"{ratio:.2g}",
        ),
    )


def _draw_output_gradients(ax: Axes, report: MonitorReport, messages: Messages) -> None:
    rows = [row for row in report.sites if row.summary.output_grad_norm is not None]
    if rows:
        norms = [row.summary.output_grad_norm for row in rows]
        ax.semilogy(
            np.arange(len(rows)),
            norms,
            marker="s",
            color="0.45",
            linestyle="--",
            label=messages("monitor.output_grad"),
        )
        _log_limits(ax, norms)  # type: ignore[arg-type]
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, messages("monitor.no_backward"), ha="center", transform=ax.transAxes)
    _name_ticks(ax, [f"{row.name} ({row.kind})" for row in rows])
    ax.set(
        xlabel=messages("monitor.site_xlabel"),
        ylabel=messages("monitor.grad_ylabel"),
        title=messages("monitor.output_grad_title"),
    )
