"""Figures and pages for people: one visual style, text from the message catalogues.

``write_report`` turns a results store into ``report.html`` (self-contained) and
``report.md`` with one figure per experiment; ``write_curves`` draws the activations.
"""

from leaky.report.curves import CurveRow, curve_rows, format_curve_table, write_curves
from leaky.report.page import ReportFiles, write_report

__all__ = [
    "CurveRow",
    "ReportFiles",
    "curve_rows",
    "format_curve_table",
    "write_curves",
    "write_report",
]
