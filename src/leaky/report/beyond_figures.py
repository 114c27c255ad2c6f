"""The figures of "Beyond the article": the published claims about rectifiers, on real digits.

As :mod:`leaky.report.figures`, one function per experiment that takes its
:class:`~leaky.report.sweeps.StoredSweep` and a message catalogue and returns a bare
matplotlib ``Figure``; each names the data its runs read (the full MNIST, or the split of
its test set) in its title.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from leaky.lab.experiments.dying import accuracy_or_chance, chance_of
from leaky.lab.experiments.rectifiers import label, prelu_slopes
from leaky.lab.experiments.saturation import saturation_by_layer
from leaky.lab.experiments.stats import mean_ci
from leaky.messages import Messages
from leaky.messages.style import color_for
from leaky.report.figures import figure_grid, finite_values
from leaky.report.sweeps import StoredSweep

__all__ = [
    "BEYOND_FIGURES",
    "data_named",
    "init_depth_figure",
    "rectifiers_figure",
    "saturation_figure",
]

_MODEL_MARKERS = {"mlp": "o", "cnn": "s"}


def data_named(sweep: StoredSweep) -> str:
    """What the sweep's runs trained on, as they recorded it (the first run's words)."""
    return next((str(r.results["data"]) for r in sweep.runs if "data" in r.results), "")


def _suptitle(fig: Figure, title: str, sweep: StoredSweep, width: int) -> None:
    # The figure's title over the data it was drawn from, wrapped to the figure's width.
    fig.suptitle("\n".join([title, *textwrap.wrap(data_named(sweep), width)]), fontsize=10)


def _name(activation: str, messages: Messages) -> str:
    # The very leaky ReLU has no spec row of its own: its name comes from the catalogue.
    if activation == "very_leaky_relu":
        return messages("experiments.rectifiers.very_leaky")
    return label(activation)


def _rectifier_color(name: str) -> str:
    # The very leaky ReLU is a Leaky ReLU: its colour, drawn hollow.
    return color_for("leaky_relu" if name == "very_leaky_relu" else name)


def _points(
    ax: Axes,
    sweep: StoredSweep,
    result: str,
    activations: list[str],
    models: list[str],
    messages: Messages,
) -> None:
    # Per rectifier and model: each seed (small dots) and the mean with its 95% t interval.
    offsets = np.linspace(-0.18, 0.18, len(models)) if len(models) > 1 else [0.0]
    for x, activation in enumerate(activations):
        for offset, model in zip(offsets, models, strict=True):
            values = finite_values(
                r.results.get(result, math.nan)
                for r in sweep.runs
                if r.cell == {"model": model, "activation": activation}
            )
            if not values:
                continue
            color = _rectifier_color(activation)
            hollow = activation == "very_leaky_relu"
            ax.scatter([x + offset] * len(values), values, s=9, color=color, alpha=0.35)
            mean, low, high = mean_ci(values)
            error = [[mean - low], [high - mean]] if math.isfinite(low) else None
            ax.errorbar(
                [x + offset],
                [mean],
                yerr=error,
                fmt=_MODEL_MARKERS.get(model, "o"),
                color=color,
                mfc="white" if hollow else color,
                capsize=4,
                markersize=6,
                label=model.upper() if x == 0 else None,
            )
    ax.set_xticks(range(len(activations)), [_name(a, messages) for a in activations])
    for tick in ax.get_xticklabels():
        tick.set(rotation=25, ha="right", rotation_mode="anchor")


def rectifiers_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Test accuracy, train - test gap, and PReLU's learned slope by layer, MLP and CNN."""
    config = sweep.config
    present = {(r.cell["model"], r.cell["activation"]) for r in sweep.runs}
    models = [m for m in config.models if any(m == p[0] for p in present)]
    activations = [a for a in config.activations if any(a == p[1] for p in present)]
    fig, axes = figure_grid(1, 3, 4.2, 3.9)
    accuracy, gap, slopes = axes[0]
    key = "experiments.rectifiers"
    _points(accuracy, sweep, "test_accuracy", activations, models, messages)
    accuracy.set_title(messages(f"{key}.accuracy_title"))
    low, high = accuracy.get_ylim()
    accuracy.set_ylim(max(low, 0.0), min(high, 1.0))
    _points(gap, sweep, "gap", activations, models, messages)
    gap.axhline(0.0, color="#999999", linewidth=0.8)
    gap.set_title(messages(f"{key}.gap_title"))
    for model in models:
        by_layer = prelu_slopes(sweep.runs, model)
        if not by_layer:
            continue
        layers = list(by_layer)
        stats = [mean_ci(list(by_layer[k].values())) for k in layers]
        means = [m for m, _, _ in stats]
        slopes.plot(
            layers,
            means,
            marker=_MODEL_MARKERS.get(model, "o"),
            color=color_for("prelu"),
            linestyle="-" if model == "mlp" else "--",
            label=model.upper(),
        )
        lows = [lo if math.isfinite(lo) else m for m, lo, _ in stats]
        highs = [hi if math.isfinite(hi) else m for m, _, hi in stats]
        slopes.fill_between(layers, lows, highs, color=color_for("prelu"), alpha=0.15)
        slopes.set_xticks(layers)
    slopes.axhline(0.25, color="#999999", linewidth=0.8, linestyle=":")  # where they start
    slopes.set(
        title=messages(f"{key}.slopes_title"),
        xlabel=messages(f"{key}.slopes_xlabel"),
        ylabel=messages(f"{key}.slopes_ylabel"),
    )
    for ax in (accuracy, slopes):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    _suptitle(fig, messages(f"{key}.figure_title"), sweep, 160)
    return fig


def saturation_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Saturated share of each hidden layer over training, per activation; test accuracy."""
    key = "experiments.saturation"
    activations = [
        a for a in sweep.config.activations if any(r.cell["activation"] == a for r in sweep.runs)
    ]
    fig, axes = figure_grid(1, len(activations) + 1, 3.4, 3.6)
    panels, accuracy = axes[0][:-1], axes[0][-1]
    colormap = colormaps["viridis"]
    for ax, activation in zip(panels, activations, strict=True):
        runs = [r for r in sweep.runs if r.cell["activation"] == activation]
        curves: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in runs:
            for layer, points in saturation_by_layer(run).items():
                for step, value in points:
                    curves[layer][step].append(value)
        layers = sorted(curves)
        for layer in layers:
            steps = sorted(curves[layer])
            ax.plot(
                steps,
                [statistics.fmean(curves[layer][x]) for x in steps],
                color=colormap(layer / (len(layers) + 1)),
                linewidth=2.2 if layer == layers[-1] else 1.2,
                label=messages(f"{key}.layer", layer=layer),
            )
        ax.set(
            title=label(activation),
            xlabel=messages(f"{key}.xlabel"),
            ylim=(-0.03, 1.03),
        )
        ax.set_ylabel(messages(f"{key}.ylabel"))
    if panels.size:
        panels[0].legend(fontsize=7)
    for x, activation in enumerate(activations):
        values = finite_values(
            r.results.get("test_accuracy", math.nan)
            for r in sweep.runs
            if r.cell["activation"] == activation
        )
        if not values:
            continue
        color = color_for(activation)
        accuracy.scatter([x] * len(values), values, s=10, color=color, alpha=0.4)
        mean, low, high = mean_ci(values)
        error = [[mean - low], [high - mean]] if math.isfinite(low) else None
        accuracy.errorbar([x + 0.15], [mean], yerr=error, fmt="o", color=color, capsize=4)
    accuracy.set_xticks(range(len(activations)), [label(a) for a in activations])
    accuracy.set(title=messages(f"{key}.accuracy_title"), ylim=(0.0, 1.0))
    _suptitle(fig, messages(f"{key}.figure_title"), sweep, 160)
    return fig


def init_depth_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Test accuracy after training against depth, Kaiming solid and Xavier dashed."""
    key = "experiments.init-depth"
    fig, axes = figure_grid(1, 1, 5.6, 3.9)
    ax = axes[0][0]
    groups: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    chance = chance_of(sweep.runs)  # a diverged run counts as guessing, as in the finding
    for run in sweep.runs:
        c = run.cell
        groups[(c["activation"], c["init"])][int(c["depth"])].append(
            accuracy_or_chance(run, chance)
        )
    for (activation, init), by_depth in sorted(groups.items()):
        depths = sorted(by_depth)
        stats = [mean_ci(by_depth[d]) for d in depths]
        color = color_for(activation)
        style = "-" if init == "kaiming" else "--"
        ax.plot(
            depths,
            [m for m, _, _ in stats],
            style,
            marker="o",
            color=color,
            label=messages(
                f"{key}.legend",
                activation=label(activation),
                init=messages(f"experiments.init.legend_{init}"),
            ),
        )
        lows = [lo if math.isfinite(lo) else m for m, lo, _ in stats]
        highs = [hi if math.isfinite(hi) else m for m, _, hi in stats]
        ax.fill_between(depths, lows, highs, color=color, alpha=0.12 if init == "kaiming" else 0.06)
        for depth in depths:
            ax.scatter([depth] * len(by_depth[depth]), by_depth[depth], s=8, color=color, alpha=0.3)
    ax.set(xlabel=messages(f"{key}.xlabel"), ylabel=messages(f"{key}.ylabel"), ylim=(0.0, 1.0))
    ax.legend(fontsize=8)
    _suptitle(fig, messages(f"{key}.figure_title"), sweep, 80)
    return fig


BEYOND_FIGURES: dict[str, Callable[[StoredSweep, Messages], Figure]] = {
    "rectifiers": rectifiers_figure,
    "saturation": saturation_figure,
    "init-depth": init_depth_figure,
}
