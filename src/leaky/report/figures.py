"""One figure per experiment, drawn from the runs in the store (never from a training loop).

Every function takes the experiment's :class:`~leaky.report.sweeps.StoredSweep` and a message
catalogue and returns a bare matplotlib ``Figure``. Colours come from the spec's activation
(one fixed colour per activation on every figure); all text comes from the catalogue.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from leaky.core.spec import get_spec
from leaky.data import is_file_task, parse_task_spec
from leaky.lab.experiments.base import wilson_interval
from leaky.lab.experiments.born_dead import pooled_counts
from leaky.lab.experiments.fused_memory import VARIANTS
from leaky.lab.experiments.remedies import cell_depth
from leaky.lab.experiments.stats import mean_ci
from leaky.messages import Messages
from leaky.messages.style import ACTIVATION_COLORS, color_for
from leaky.report.sweeps import StoredSweep

__all__ = ["FIGURES", "activation_label", "figure_grid", "finite_values"]

_MARKERS = ("o", "s", "^", "D", "v", "P")


def activation_label(name: str, messages: Messages) -> str:
    """A name for people: the catalogue's term, else the spec's title, else the name.

    Examples:
        >>> from leaky.messages import get_messages
        >>> activation_label("leaky_relu", get_messages("en"))
        'Leaky ReLU'
    """
    if messages.has(f"terms.{name}"):
        return messages.terms(name)
    try:
        return get_spec(name).title
    except ValueError:
        return name


def _base_activation(name: str) -> str:
    # "leaky_relu_0.01" -> "leaky_relu": an experiment's variants keep their activation's colour.
    known = [n for n in ACTIVATION_COLORS if name == n or name.startswith(f"{n}_")]
    return max(known, key=len) if known else name


def finite_values(values: Iterable[float]) -> list[float]:
    """The finite numbers among ``values`` (NaN, infinities and non-numbers left out)."""
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _positive_or_nan(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return np.where(array > 0, array, np.nan)  # a log axis cannot show 0 or NaN


def figure_grid(
    rows: int, cols: int, width: float, height: float, **share: bool
) -> tuple[Figure, np.ndarray]:
    """A bare Figure of rows x cols panels of about width x height inches each.

    Not pyplot: no global backend or figure registry is touched.
    """
    fig = Figure(figsize=(width * cols + 0.8, height * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **share)
    return fig, axes


def _by_layer(run, stat: str, step: int = 0) -> list[float]:
    """One run's per-layer statistic at ``step``, in layer order."""
    rows = sorted(
        (int(layer), value) for s, layer, name, value in run.layers if name == stat and s == step
    )
    return [value for _, value in rows]


def _layer_profile(sweep: StoredSweep, cell: dict, stat: str) -> np.ndarray | None:
    """Per-layer ``stat`` at step 0 of the cell's runs, median over seeds (None: no data)."""
    series = [_by_layer(run, stat) for run in sweep.runs if run.cell == cell]
    series = [s for s in series if s]
    if not series:
        return None
    length = min(len(s) for s in series)
    stacked = np.array([s[:length] for s in series], dtype=float)
    return _positive_or_nan(np.nanmedian(stacked, axis=0) if len(series) > 1 else stacked[0])


def vanishing_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Weight-gradient norm by layer at initialisation, log scale, one panel per depth."""
    config = sweep.config
    depths = sorted({run.cell["depth"] for run in sweep.runs})
    fig, axes = figure_grid(1, len(depths), 4.2, 3.6, sharey=True)
    for ax, depth in zip(axes[0], depths, strict=True):
        for i, activation in enumerate(config.activations):
            cell = {"activation": activation, "depth": depth}
            values = _layer_profile(sweep, cell, "grad_norm")
            if values is None:
                continue
            ax.plot(
                np.arange(1, len(values) + 1),
                values,
                color=color_for(_base_activation(activation)),
                marker=_MARKERS[i % len(_MARKERS)],  # ReLU and Leaky ReLU can share pixels
                markersize=4,
                linewidth=1.8,
                label=activation_label(activation, messages),
            )
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(left=0.5)
        ax.set_title(messages("experiments.vanishing.panel", depth=depth))
        ax.set_xlabel(messages("experiments.vanishing.xlabel"))
    axes[0][0].set_ylabel(messages("experiments.vanishing.ylabel"))
    legend = {}  # from every panel: a panel may lack some activation's runs
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=len(legend))
    fig.suptitle(messages("experiments.vanishing.figure_title"))
    return fig


def _dying_cell(runs, field: str) -> tuple[float, float, float, int]:
    """Mean, 95% t interval and diverged count of one dying cell's runs."""
    chance = next((r.results["chance"] for r in runs if "chance" in r.results), 0.1)
    values = [
        chance
        if field == "test_accuracy" and (r.status == "diverged" or not finite_values([v]))
        else v
        for r in runs
        for v in [r.results.get(field, math.nan)]
    ]
    return (*mean_ci(values), sum(r.status == "diverged" for r in runs))


def dying_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """The whole grid: dead fraction (top) and test accuracy (bottom) per activation.

    Each panel is a heatmap over learning rate (columns) and bias shift (rows); every cell
    reads its mean and 95% interval over seeds, and a dagger with the number of diverged
    runs (counted as chance in the accuracy).
    """
    config = sweep.config
    shifts, lrs = list(config.bias_shifts), list(config.lrs)
    activations = [
        a for a in config.activations if any(r.cell["activation"] == a for r in sweep.runs)
    ]
    rows = (
        ("final_dead_fraction", "experiments.dying.row_dead", "Reds"),
        ("test_accuracy", "experiments.dying.row_accuracy", "Greens"),
    )
    fig, axes = figure_grid(
        2, max(1, len(activations)), 0.9 * len(lrs) + 1.6, 0.7 * len(shifts) + 1.4
    )
    for r, (field, label, colormap) in enumerate(rows):
        for c, activation in enumerate(activations):
            ax = axes[r][c]
            grid = np.full((len(shifts), len(lrs)), np.nan)
            for i, shift in enumerate(shifts):
                for j, lr in enumerate(lrs):
                    cell = {"activation": activation, "lr": lr, "bias_shift": shift}
                    runs = [run for run in sweep.runs if run.cell == cell]
                    if not runs:
                        continue
                    mean, low, high, diverged = _dying_cell(runs, field)
                    grid[i, j] = mean
                    text = f"{mean:.2f}" if math.isfinite(mean) else "–"
                    if math.isfinite(low):  # fractions: a t interval is shown within [0, 1]
                        text += f"\n[{max(low, 0.0):.2f}, {min(high, 1.0):.2f}]"
                    if diverged:
                        text += f"\n† {diverged}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8)
            ax.imshow(grid, cmap=colormap, vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
            ax.set_yticks(range(len(shifts)), [f"{b:g}" for b in shifts])
            if r == 0:
                ax.set_title(activation_label(activation, messages))
            if r == len(rows) - 1:
                ax.set_xlabel(messages("experiments.dying.xlabel"))
            if c == 0:
                ax.set_ylabel(f"{messages(label)}\n{messages('experiments.dying.ylabel')}")
    fig.suptitle(messages("experiments.dying.figure_title"))
    return fig


def _shade(color: str, amount: float) -> tuple[float, float, float]:
    # Mix a colour with white (amount 0: the colour, 1: white): widths of one activation.
    return tuple(c + (1 - c) * amount for c in to_rgb(color))  # type: ignore[return-value]


def born_dead_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """P(born dead) against depth, one line per width (He normal solid, RAI dashed), 95% bands."""
    by_init = pooled_counts(sweep.runs)
    pooled: dict[tuple[str, int, int], list[int]] = defaultdict(lambda: [0, 0])
    for (activation, _, width, depth), (dead, n) in by_init.items():
        pooled[(activation, width, depth)][0] += dead
        pooled[(activation, width, depth)][1] += n
    fig, axes = figure_grid(1, 1, 7.0, 4.2)
    ax = axes[0][0]
    widths = sorted({w for a, _, w, _ in by_init if a == "relu"})
    inits = sorted({i for a, i, _, _ in by_init if a == "relu"})  # "he", then "rai"
    for init in inits:
        for i, width in enumerate(widths):
            depths = sorted(d for a, n, w, d in by_init if (a, n, w) == ("relu", init, width))
            if not depths:
                continue
            counts = [by_init[("relu", init, width, d)] for d in depths]
            p = [dead / n for dead, n in counts]
            low, high = zip(*(wilson_interval(dead, n) for dead, n in counts), strict=True)
            color = _shade(color_for("relu"), 0.6 * i / max(1, len(widths) - 1))
            rai = init == "rai"
            ax.fill_between(depths, low, high, color=color, alpha=0.12 if rai else 0.25, lw=0)
            ax.plot(
                depths,
                p,
                color=color,
                marker=_MARKERS[i % len(_MARKERS)],
                linewidth=1.5 if rai else 2,
                linestyle="--" if rai else "-",
                label=messages(
                    f"experiments.born-dead.legend_relu{'_rai' if rai else ''}", width=width
                ),
            )
    leaky: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # depth -> pooled over widths
    for (activation, _, depth), (dead, n) in pooled.items():
        if activation == "leaky_relu":
            leaky[depth][0] += dead
            leaky[depth][1] += n
    if leaky:
        depths = sorted(leaky)
        low, high = zip(*(wilson_interval(*leaky[d]) for d in depths), strict=True)
        ax.fill_between(depths, low, high, color=color_for("leaky_relu"), alpha=0.25, linewidth=0)
        ax.plot(
            depths,
            [leaky[d][0] / leaky[d][1] for d in depths],
            color=color_for("leaky_relu"),
            marker="o",
            linewidth=2,
            label=messages("experiments.born-dead.legend_leaky"),
        )
    ax.set_xticks(sorted({d for _, _, d in pooled}))
    ax.set(
        xlabel=messages("experiments.born-dead.xlabel"),
        ylabel=messages("experiments.born-dead.ylabel"),
        ylim=(-0.03, 1.03),
        title=messages("experiments.born-dead.figure_title"),
    )
    ax.legend(loc="upper left", fontsize=8, ncol=2 if len(inits) > 1 else 1)
    return fig


def _task_title(task: str) -> str:
    # A user's data by its file or folder name, not the whole spec.

    return Path(parse_task_spec(task).path).name if is_file_task(task) else task


def accuracy_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Per task: each activation's mean with its 95% t interval and the single seeds."""
    config = sweep.config
    tasks = [t for t in config.tasks if any(run.cell["task"] == t for run in sweep.runs)]
    fig, axes = figure_grid(1, max(1, len(tasks)), 3.3, 3.8)
    for ax, task in zip(axes[0], tasks, strict=False):
        metric = "accuracy"
        # The speech tasks also run speech_activations (tanh): drawn where they ran.
        every = (*config.activations, *getattr(config, "speech_activations", ()))
        activations = [
            a
            for a in dict.fromkeys(every)
            if a in config.activations
            or any(r.cell == {"task": task, "activation": a} for r in sweep.runs)
        ]
        for x, activation in enumerate(activations):
            runs = [r for r in sweep.runs if r.cell == {"task": task, "activation": activation}]
            if not runs:
                continue
            metric = runs[0].results.get("metric", metric)
            values = finite_values(r.results.get("value", math.nan) for r in runs)
            if not values:  # every seed diverged: nothing to draw (the page says so)
                continue
            color = color_for(_base_activation(activation))
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(x + np.asarray(jitter), values, s=12, color=color, alpha=0.45, zorder=2)
            mean, low, high = mean_ci(values)
            if math.isfinite(mean):
                error = [[mean - low], [high - mean]] if math.isfinite(low) else None
                ax.errorbar(
                    [x + 0.3],
                    [mean],
                    yerr=error,
                    fmt="o",
                    color=color,
                    capsize=5,
                    markersize=7,
                    linewidth=2,
                    zorder=3,
                )
        ax.set_xticks(
            range(len(activations)),
            [activation_label(a, messages) for a in activations],
        )
        if len(activations) > 3:  # four names side by side touch: slant them
            for label in ax.get_xticklabels():
                label.set(rotation=25, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.5, len(activations) - 0.3)
        ax.set_title(_task_title(task))
        ax.set_ylabel(messages(f"experiments.accuracy.ylabel_{metric}"))
        ax.margins(y=0.25)
        if metric == "accuracy":  # a t interval from few seeds can pass 1; accuracy cannot
            low, high = ax.get_ylim()
            ax.set_ylim(max(low, 0.0), min(high, 1.0))
    fig.suptitle(messages("experiments.accuracy.figure_title"))
    return fig


def slope_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Accuracy (mean, 95% band, seeds) and dead units after training against the slope."""
    by_slope: dict[float, list] = defaultdict(list)
    for run in sweep.runs:
        by_slope[run.cell["negative_slope"]].append(run)
    slopes = sorted(by_slope)
    fig, axes = figure_grid(1, 2, 4.6, 3.8, sharex=True)
    ax_acc, ax_dead = axes[0]
    color = color_for("leaky_relu")
    stats = [
        mean_ci(finite_values(r.results.get("test_accuracy") for r in by_slope[s])) for s in slopes
    ]
    means, lows, highs = (np.array(v, dtype=float) for v in zip(*stats, strict=True))
    ax_acc.fill_between(slopes, lows, highs, color=color, alpha=0.2, linewidth=0)
    ax_acc.plot(slopes, means, color=color, marker="o", linewidth=2)
    for s in slopes:
        values = finite_values(r.results.get("test_accuracy") for r in by_slope[s])
        ax_acc.scatter([s] * len(values), values, s=10, color=color, alpha=0.45)
    dead = [
        statistics.fmean(v)
        if (v := finite_values(r.results.get("dead_fraction") for r in by_slope[s]))
        else math.nan
        for s in slopes
    ]
    ax_dead.plot(slopes, dead, color=color, marker="o", linewidth=2)
    if 0.0 in by_slope:  # slope 0 is ReLU: mark it in ReLU's colour
        ax_acc.plot([0.0], [means[slopes.index(0.0)]], "o", color=color_for("relu"), zorder=3)
        ax_dead.plot([0.0], [dead[slopes.index(0.0)]], "o", color=color_for("relu"), zorder=3)
    labels = {
        0.0: messages("experiments.slope.tick_relu"),
        1.0: messages("experiments.slope.tick_linear"),
    }
    for ax in (ax_acc, ax_dead):
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xticks(slopes, [labels.get(s, f"{s:g}") for s in slopes])
        ax.set_xlabel(messages("experiments.slope.xlabel"))
    ax_acc.set_ylabel(messages("experiments.slope.ylabel_accuracy"))
    ax_dead.set_ylabel(messages("experiments.slope.ylabel_dead"))
    ax_dead.set_ylim(0.0, max(0.1, *finite_values(dead)) * 1.15 if finite_values(dead) else 1.0)
    for line in ax_dead.lines:  # markers at exactly 0 stay whole on the axis
        line.set_clip_on(False)
    fig.suptitle(messages("experiments.slope.figure_title"))
    return fig


def init_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Activation std by layer at initialisation, Kaiming solid and Xavier dashed."""
    config = sweep.config
    activations = [
        a for a in config.activations if any(r.cell["activation"] == a for r in sweep.runs)
    ]
    fig, axes = figure_grid(1, max(1, len(activations)), 4.6, 3.8, sharey=True)
    styles = {"kaiming": "-", "xavier": "--", "torch": ":"}
    for ax, activation in zip(axes[0], activations, strict=False):
        for init in config.inits:
            cell = {"activation": activation, "init": init}
            values = _layer_profile(sweep, cell, "activation_std")
            if values is None:
                continue
            ax.plot(
                np.arange(1, len(values) + 1),
                values,
                color=color_for(_base_activation(activation)),
                linestyle=styles.get(init, "-"),
                linewidth=2,
                label=messages(f"experiments.init.legend_{init}"),
            )
        ax.set_yscale("log")
        ax.set_title(activation_label(activation, messages))
        ax.set_xlabel(messages("experiments.init.xlabel"))
        ax.legend(loc="lower left", fontsize=9)
    axes[0][0].set_ylabel(messages("experiments.init.ylabel"))
    fig.suptitle(messages("experiments.init.figure_title", depth=config.depth))
    return fig


def fused_memory_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Kept-for-backward memory per network and variant, relative to the in-place pair."""
    saved = {(r.cell["network"], r.cell["variant"]): r.results["saved_mib"] for r in sweep.runs}
    networks = [n for n in sweep.config.networks if any(k[0] == n for k in saved)]
    fig, axes = figure_grid(1, 1, 7.5, 4.2)
    ax = axes[0][0]
    width = 0.8 / len(VARIANTS)
    for i, variant in enumerate(VARIANTS):
        relu = variant.startswith("relu")
        baseline = "relu-inplace" if relu else "torch-inplace"
        xs, ratios, mib = [], [], []
        for j, network in enumerate(networks):
            if (network, variant) in saved and (network, baseline) in saved:
                xs.append(j + (i - (len(VARIANTS) - 1) / 2) * width)
                ratios.append(saved[(network, variant)] / saved[(network, baseline)])
                mib.append(saved[(network, variant)])
        color = color_for("relu" if relu else "leaky_relu")
        fused = variant.endswith("fused")
        bars = ax.bar(
            xs,
            ratios,
            width * 0.92,
            color=color if fused else _shade(color, 0.55),
            hatch="" if fused or variant.endswith("inplace") else "//",
            edgecolor="white",
            label=messages(f"experiments.fused-memory.variant_{variant}"),
        )
        ax.bar_label(bars, labels=[f"{m:.0f} MiB" for m in mib], fontsize=7, padding=2)
    ax.axhline(1.0, color="0.3", linewidth=1, linestyle=":")
    ax.set_xticks(range(len(networks)))
    ax.set_xticklabels([n.upper() if n == "dcgan" else "ResNet" for n in networks])
    ax.set_ylim(0, 1.6)
    ax.set(
        ylabel=messages("experiments.fused-memory.ylabel"),
        title=messages("experiments.fused-memory.figure_title"),
    )
    fig.legend(loc="outside lower center", fontsize=8, ncol=3)
    return fig


_REMEDY_STYLES = {
    "relu_lr/10": ":",
    "relu_redo": "--",
    "relu_to_leaky": "-.",
    "leaky_relu_0.2": "--",
}
_REMEDY_ORDER = (
    "relu",
    "relu_lr/10",
    "leaky_relu_0.01",
    "leaky_relu_0.2",
    "prelu",
    "relu_redo",
    "relu_to_leaky",
)


def remedies_figure(sweep: StoredSweep, messages: Messages) -> Figure:
    """Dead fraction over training where ReLU dies most (left); accuracy there and healthy."""
    groups: dict[tuple[str, tuple], list] = defaultdict(list)
    for run in sweep.runs:
        c = run.cell
        groups[(c["activation"], (c["lr"], c["bias_shift"], cell_depth(run)))].append(run)
    present = {a for a, _ in groups}
    variants = [n for n in _REMEDY_ORDER if n in present] + sorted(present - set(_REMEDY_ORDER))
    relu = {cell: _dying_cell(runs, "final_dead_fraction") for (a, cell), runs in
            groups.items() if a == "relu"}  # fmt: skip
    fig, axes = figure_grid(1, 2, 5.6, 4.4)
    left, right = axes[0]
    if not relu:
        return fig

    # The cell where ReLU lost the most units, and the one where it lost the fewest.
    def dead(cell: tuple) -> float:
        return relu[cell][0] if math.isfinite(relu[cell][0]) else -1.0

    def words(cell: tuple) -> str:
        lr, shift, depth = cell
        return messages("experiments.remedies.cell", lr=lr, bias_shift=shift, depth=depth)

    worst, best = max(relu, key=dead), min(relu, key=dead)
    for name in variants:
        steps: dict[int, list[float]] = defaultdict(list)
        for run in groups.get((name, worst), []):
            for step, metric, value in run.metrics:
                if metric == "dead_fraction":
                    steps[step].append(value)
        if not steps:
            continue
        xs = sorted(steps)
        left.plot(
            xs,
            [statistics.fmean(steps[x]) for x in xs],
            color=color_for(_base_activation(name)),
            linestyle=_REMEDY_STYLES.get(name, "-"),
            linewidth=2,
            label=activation_label(name, messages),
        )
    left.set(
        xlabel=messages("experiments.remedies.xlabel"),
        ylabel=messages("experiments.remedies.ylabel"),
        ylim=(-0.03, 1.03),
        title=messages("experiments.remedies.left_title", cell=words(worst)),
    )
    cells = [(worst, "dying_cell", "o")] + ([(best, "healthy_cell", "s")] if best != worst else [])
    for offset, (cell, label, marker) in zip((-0.15, 0.15), cells, strict=False):
        for i, name in enumerate(variants):
            runs = groups.get((name, cell), [])
            if not runs:
                continue
            mean, low, high, _ = _dying_cell(runs, "test_accuracy")
            err = [[mean - low], [high - mean]] if math.isfinite(low) else None
            right.errorbar(
                [i + offset],
                [mean],
                yerr=err,
                fmt=marker,
                color=color_for(_base_activation(name)),
                mfc="white" if label == "healthy_cell" else None,
                capsize=3,
                label=None if i else messages(f"experiments.remedies.{label}", cell=words(cell)),
            )
    right.set_xticks(range(len(variants)))
    right.set_xticklabels([activation_label(n, messages) for n in variants], rotation=30,
                          ha="right", fontsize=8)  # fmt: skip
    right.set(
        ylabel=messages("experiments.remedies.accuracy_label"),
        title=messages("experiments.remedies.right_title"),
    )
    left.legend(fontsize=8)
    handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(messages("experiments.remedies.figure_title"))
    return fig


FIGURES: dict[str, Callable[[StoredSweep, Messages], Figure]] = {
    "vanishing": vanishing_figure,
    "dying": dying_figure,
    "remedies": remedies_figure,
    "born-dead": born_dead_figure,
    "accuracy": accuracy_figure,
    "slope": slope_figure,
    "init": init_figure,
    "fused-memory": fused_memory_figure,
}
