"""The monitor's picture: dead / never-active units per site, gradient norm against depth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from leaky.atomic import atomic_path, ensure_output_dir
from leaky.report.messages import get_messages
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
        fig, (ax_units, ax_grad) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
        names = [row.name for row in report.sites]
        positions = np.arange(len(names))
        inactive = [row.summary.never_active_fraction for row in report.sites]
        dead = [row.summary.dead_fraction or 0.0 for row in report.sites]
        colors = [color_for(row.kind) for row in report.sites]
        ax_units.bar(
            positions, inactive, color=colors, alpha=0.35, label=messages("monitor.inactive")
        )
        ax_units.bar(
            positions,
            dead,
            color=colors,
            hatch="//",
            edgecolor="black",
            linewidth=0.5,
            label=messages("monitor.dead"),
        )
        saturated = [row.summary.saturated_fraction for row in report.sites]
        if any(value is not None for value in saturated):
            ax_units.scatter(
                [p for p, v in zip(positions, saturated, strict=True) if v is not None],
                [v for v in saturated if v is not None],
                marker="D",
                color="0.2",
                zorder=3,
                label=messages("monitor.saturated"),
            )
        if not any(inactive) and not any(v for v in saturated if v is not None):
            ax_units.text(
                0.5, 0.5, messages("monitor.all_live"), ha="center", transform=ax_units.transAxes
            )
        ax_units.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
        ax_units.set(
            ylim=(0, 1.02),
            ylabel=messages("monitor.units_ylabel"),
            title=messages("monitor.units_title"),
        )
        ax_units.legend(loc="upper right")
        norms = [(row.name, row.grad_norm) for row in report.layers if row.grad_norm]
        if norms:
            depth = np.arange(1, len(norms) + 1)
            ax_grad.semilogy(depth, [n for _, n in norms], marker="o", color="0.2")
            if len(norms) <= 25:
                ax_grad.set_xticks(
                    depth, [n for n, _ in norms], rotation=45, ha="right", fontsize=8
                )
        else:
            ax_grad.text(
                0.5, 0.5, messages("monitor.no_backward"), ha="center", transform=ax_grad.transAxes
            )
        ax_grad.set(
            xlabel=messages("monitor.depth_xlabel"),
            ylabel=messages("monitor.grad_ylabel"),
            title=messages("monitor.grad_title", verdict=report.verdict),
        )
        try:
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=target.suffix[1:].lower())
        finally:
            plt.close(fig)
    return target
