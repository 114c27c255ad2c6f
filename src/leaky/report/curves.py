"""The first picture: each activation and its derivative, side by side.

ReLU's flat zero gradient below zero (where a unit can die), Leaky ReLU's small slope,
PReLU at its initial slope, and the saturating sigmoid and tanh. Every value comes from
the float64 reference functions of the spec table.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from leaky.core.spec import ActivationSpec, get_spec
from leaky.messages import Messages, get_messages
from leaky.messages.figure_files import check_formats, figure_language, save_figure
from leaky.messages.style import LINE_STYLES, color_for, figure_style

__all__ = ["DEFAULT_SLOPES", "CurveRow", "curve_rows", "format_curve_table", "write_curves"]

DEFAULT_SLOPES: tuple[float, ...] = (0.01, 0.1, 0.3)


@dataclass(frozen=True)
class CurveRow:
    """One curve of the picture and one row of the table."""

    spec: ActivationSpec
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    variant: int = 0  # index among curves of the same activation (line style)

    def f(self, x: np.ndarray) -> np.ndarray:
        """Reference value f(x)."""
        return self.spec.forward(x, **self.params)

    def df(self, x: np.ndarray) -> np.ndarray:
        """Reference derivative f'(x)."""
        return self.spec.derivative(x, **self.params)

    def can_die(self, messages: Messages) -> str:
        """Say whether a unit with this activation can stop learning for good."""
        slope = self.spec.negative_slope(**self.params)
        if self.spec.can_die or slope == 0.0:
            return messages("curves.die_yes")
        if self.spec.saturates:
            return messages("curves.die_saturates")
        if self.spec.name == "prelu":
            return messages("curves.die_no_learned", slope=f"{slope:g}")
        return messages("curves.die_no", slope=f"{slope:g}")


def _check_slopes(slopes: Sequence[float]) -> tuple[float, ...]:
    checked = []
    for slope in slopes:
        if isinstance(slope, bool) or not isinstance(slope, int | float) or not np.isfinite(slope):
            raise ValueError(f"Expected every slope to be a finite number, but got {slope!r}")
        if slope < 0:
            raise ValueError(f"Expected every slope to be >= 0, but got {slope}")
        checked.append(float(slope))
    if not checked:
        raise ValueError("Expected at least one Leaky ReLU slope, e.g. 0.01,0.1,0.3")
    return tuple(dict.fromkeys(checked))


def curve_rows(slopes: Sequence[float] = DEFAULT_SLOPES, lang: str = "en") -> list[CurveRow]:
    """The curves to draw: ReLU, Leaky ReLU per slope, PReLU at init, sigmoid, tanh.

    Examples:
        >>> [row.label for row in curve_rows([0.1])]
        ['ReLU', 'Leaky ReLU (a=0.1)', 'PReLU (a=0.25 at init)', 'sigmoid', 'tanh']
    """
    messages = get_messages(lang)
    prelu = get_spec("prelu")
    rows = [CurveRow(get_spec("relu"), "ReLU")]
    rows += [
        CurveRow(
            get_spec("leaky_relu"),
            messages("curves.label_leaky", slope=f"{a:g}"),
            {"negative_slope": a},
            i,
        )
        for i, a in enumerate(_check_slopes(slopes))
    ]
    init = prelu.defaults["init"]
    rows.append(CurveRow(prelu, messages("curves.label_prelu", slope=f"{init:g}"), {"init": init}))
    rows += [CurveRow(get_spec(name), messages.terms(name)) for name in ("sigmoid", "tanh")]
    return rows


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


def format_curve_table(rows: Sequence[CurveRow], lang: str = "en") -> str:
    """Format a plain-text table: name, f(-2), f(2), f'(-2), f'(2), can a unit die.

    Examples:
        >>> print(format_curve_table(curve_rows([0.01])[:2]))  # doctest: +NORMALIZE_WHITESPACE
        activation                f(-2)   f(2)    f'(-2)  f'(2)   can a unit die?
        ReLU                      0       2       0       1       yes: f'(x) = 0 for every x <= 0
        Leaky ReLU (a=0.01)       -0.02   2       0.01    1       no: f'(x) = 0.01 for x <= 0

    """
    messages = get_messages(lang)
    points = np.array([-2.0, 2.0])
    header = [messages("curves.column_name"), "f(-2)", "f(2)", "f'(-2)", "f'(2)"]
    header.append(messages("curves.column_can_die"))
    body = []
    for row in rows:
        values, slopes = row.f(points), row.df(points)
        numbers = [f"{v + 0.0:.4g}" for v in (*values, *slopes)]  # + 0.0: no "-0"
        body.append([row.label, *numbers, row.can_die(messages)])
    widths = [max(_display_width(line[i]) for line in [header, *body]) + 2 for i in range(5)]
    lines = [
        "".join(_pad(cell, w) for cell, w in zip(line[:5], widths, strict=True)) + line[5]
        for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _with_breaks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Break the line at x = 0 so a derivative's jump is not drawn as a vertical segment.
    jumps = np.flatnonzero(np.abs(np.diff(y)) > 1e-3 * max(1.0, np.abs(y).max()) * 10)
    return np.insert(x, jumps + 1, np.nan), np.insert(y, jumps + 1, np.nan)


def _draw(rows: Sequence[CurveRow], messages: Messages) -> Figure:
    x = np.linspace(-4.0, 4.0, 801)
    # A bare Figure, not pyplot: no global backend or figure registry is touched.
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_f, ax_df = fig.subplots(1, 2)
    # A zoom on the gradient just above 0 below zero, where ReLU (0) and a Leaky ReLU with a
    # small slope (0.01) would otherwise share the same pixels.
    zoom = ax_df.inset_axes((0.15, 0.38, 0.33, 0.34))  # clear of the y tick labels
    for row in rows:
        style = {
            "color": color_for(row.spec.name),
            "linestyle": LINE_STYLES[row.variant % len(LINE_STYLES)],
            "linewidth": 2.0,
            "label": row.label,
            "zorder": 3 if row.spec.can_die else 2,  # keep ReLU's zero gradient visible
        }
        ax_f.plot(x, row.f(x), **style)
        ax_df.plot(*_with_breaks(x, row.df(x)), **style)
        zoom.plot(*_with_breaks(x, row.df(x)), **style)
    ax_df.axvspan(-4.0, 0.0, color=color_for("relu"), alpha=0.07, linewidth=0)
    zoom.set(xlim=(-3.0, -0.2), ylim=(-0.004, 0.035))
    zoom.set_title(messages("curves.zoom"), fontsize=8, color=color_for("relu"))
    zoom.tick_params(labelsize=7)
    zoom.axhline(0, color="0.4", linewidth=0.6)
    ax_df.indicate_inset_zoom(zoom, edgecolor="0.5")
    lowest = min(float(row.f(x).min()) for row in rows)
    highest_slope = max(float(row.df(x).max()) for row in rows)
    ax_f.set(
        title=messages("curves.title_values"),
        xlabel=messages("curves.xlabel"),
        ylabel=messages("curves.ylabel_values"),
        ylim=(min(-1.5, lowest - 0.3), 4.0),
    )
    ax_df.set(
        title=messages("curves.title_derivatives"),
        xlabel=messages("curves.xlabel"),
        ylabel=messages("curves.ylabel_derivatives"),
        ylim=(-0.05, max(1.15, highest_slope + 0.15)),
    )
    for ax in (ax_f, ax_df):
        ax.axhline(0, color="0.4", linewidth=0.8)
        ax.axvline(0, color="0.4", linewidth=0.8)
    ax_f.legend(loc="upper left", fontsize=9)
    fig.suptitle(messages("curves.figure_title"))
    return fig


def write_curves(
    out_dir: str | Path,
    slopes: Sequence[float] = DEFAULT_SLOPES,
    lang: str = "en",
    formats: Sequence[str] = ("png", "svg"),
) -> tuple[list[Path], str, list[str]]:
    """Draw the curves into ``out_dir/curves.<format>``; return (paths, table, notices).

    With ``lang="ja"`` the figure is in Japanese when a Japanese font is installed;
    otherwise its text stays English and a notice says so (the table is Japanese
    either way, since a terminal has the glyphs).
    """
    rows = curve_rows(slopes, lang)
    check_formats(formats)
    figure_lang, font, notices = figure_language(lang)
    with figure_style(font):
        fig = _draw(curve_rows(slopes, figure_lang), get_messages(figure_lang))
        paths = save_figure(fig, out_dir, "curves", formats)
    return paths, format_curve_table(rows, lang), notices
