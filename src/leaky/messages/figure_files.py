"""Writing figures to disk the same way everywhere: PNG and SVG, atomically, reproducibly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from leaky.messages import get_messages
from leaky.messages.style import japanese_font
from leaky.system.atomic import atomic_path, ensure_output_dir

__all__ = ["FIGURE_FORMATS", "check_formats", "figure_language", "save_figure"]

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Validate figure formats (png, svg).

    Examples:
        >>> check_formats(["svg"])
        ('svg',)
    """
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats:
        raise ValueError(
            f"Expected figure formats png and/or svg, but got {', '.join(bad) or 'none'}"
        )
    return tuple(formats)


def figure_language(lang: str) -> tuple[str, str | None, list[str]]:
    """The language figures can be drawn in, the font to use, and notices for the reader.

    Japanese figure text needs a font with Japanese glyphs; without one the figures stay in
    English (no missing-glyph boxes) and a notice says so.
    """
    if lang == "en":
        return "en", None, []
    font = japanese_font()
    if font is None:
        return "en", None, [get_messages(lang)("curves.no_cjk_font")]
    return lang, font, []


def save_figure(fig: Figure, out_dir: str | Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.<format>`` for each format; each file whole or not at all.

    SVGs carry no date, so the same figure gives the same file.
    """
    formats = check_formats(formats)
    out = ensure_output_dir(out_dir)
    paths = []
    for fmt in formats:
        target = out / f"{name}.{fmt}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(target)
    return paths
