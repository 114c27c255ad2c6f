"""Figures and text for people: one visual style, one message catalogue per language."""

from leaky.report.curves import CurveRow, curve_rows, format_curve_table, write_curves
from leaky.report.messages import LANGUAGES, Messages, get_messages

__all__ = [
    "LANGUAGES",
    "CurveRow",
    "Messages",
    "curve_rows",
    "format_curve_table",
    "get_messages",
    "write_curves",
]
