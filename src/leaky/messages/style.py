"""One visual style for every figure: a fixed colour per activation, readable fonts.

Colours are the Okabe-Ito palette, safe for the common kinds of colour blindness. Each
activation keeps its colour on every figure; variants of one activation (several
slopes) share the colour and differ by line style.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager

__all__ = [
    "ACTIVATION_COLORS",
    "LINE_STYLES",
    "color_for",
    "figure_style",
    "japanese_font",
]

ACTIVATION_COLORS: dict[str, str] = {
    "relu": "#D55E00",  # vermillion
    "leaky_relu": "#0072B2",  # blue
    "prelu": "#009E73",  # bluish green
    "rrelu": "#CC79A7",  # reddish purple
    "sigmoid": "#E69F00",  # orange
    "tanh": "#56B4E9",  # sky blue
    "elu": "#F0E442",  # yellow
    "gelu": "#000000",  # black
    "silu": "#7F7F7F",  # grey
    "relu6": "#882255",  # wine (Tol's muted palette)
    "hardtanh": "#44AA99",  # teal (Tol's muted palette)
    "hardsigmoid": "#DDCC77",  # sand (Tol's muted palette)
    "hardswish": "#332288",  # indigo (Tol's muted palette)
    "mish": "#117733",  # green (Tol's muted palette)
    "softplus": "#AA4499",  # purple (Tol's muted palette)
    "softsign": "#88CCEE",  # cyan (Tol's muted palette)
}

LINE_STYLES: tuple[str | tuple[int, tuple[int, ...]], ...] = (
    "-",
    "--",
    ":",
    "-.",
    (0, (5, 1, 1, 1, 1, 1)),
)

# Fonts with Japanese glyphs, in order of preference.
_JAPANESE_FAMILIES = (
    "IPAexGothic",
    "IPAGothic",
    "Noto Sans CJK JP",
    "Noto Sans JP",
    "TakaoGothic",
    "VL Gothic",
    "Hiragino Sans",
    "Yu Gothic",
    "MS Gothic",
)


def color_for(activation: str) -> str:
    """The fixed colour of an activation (canonical name from the spec table).

    Examples:
        >>> color_for("leaky_relu")
        '#0072B2'

    """
    return ACTIVATION_COLORS[activation]


@functools.cache
def japanese_font() -> str | None:
    """Name of an installed font with Japanese glyphs, or None.

    Registers the IPAex Gothic font shipped by the optional ``matplotlib-fontja``
    package without importing it (its import changes matplotlib's global settings).
    """
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for font_file in sorted(Path(folder, "fonts").glob("*.ttf")):
                font_manager.fontManager.addfont(str(font_file))
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in _JAPANESE_FAMILIES if name in installed), None)


@contextlib.contextmanager
def figure_style(font_family: str | None = None) -> Iterator[None]:
    """Apply the project's figure style (and a font family, if given) within a block."""
    rc = {
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "font.size": 11,
        "axes.titlesize": 12,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "svg.fonttype": "none",
        "svg.hashsalt": "leaky",
    }
    if font_family is not None:
        rc["font.family"] = [font_family, "DejaVu Sans"]
    with mpl.rc_context(rc):
        yield
