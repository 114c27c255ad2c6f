"""Write the README's result tables from the committed reports, or check that they match.

Each results table in the README is the summary table that `leaky report` wrote at the top
of a committed report (from that sweep's store), its links pointed at that report and the
rows of experiments the store does not hold left out. Typing them by hand let the README
and the reports drift apart; this script copies them instead, and `tests/test_readme.py`
fails when they differ.

    python examples/readme_tables.py          # rewrite the README's tables
    python examples/readme_tables.py --check  # exit 1 if a README table differs
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_HEADER = "| Claim | Experiment | Result | Verdict |"
_ABSENT = ("| **not run** |", "| **no finding** |")  # experiments the store does not hold

# The README's tables, in order: the line each follows, and the report it copies.
TABLES = (
    ("`--lang ja --out docs/report/ja`. Its summary:", "docs/report/en/report.md"),
    ("Official split (`--store out/speech-full.db`):", "docs/speech/official/en/report.md"),
    ("Speaker theo held out (`--store out/speech-theo.db`):", "docs/speech/theo/en/report.md"),
    ("(`--store out/mnist1d.db`; report: [docs/mnist1d/en/report.md]", "docs/mnist1d/en/report.md"),
    (
        "(`--store out/remedies.db`; report: [docs/remedies/en/report.md]",
        "docs/remedies/en/report.md",
    ),
)


def _table_after(lines: list[str], start: int) -> tuple[int, int]:
    """First and last+1 line of the first summary table at or after line ``start``."""
    first = lines.index(_HEADER, start)
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return first, end


def report_table(report: str) -> list[str]:
    """A report's summary table as the README shows it: links to the report, held rows."""
    lines = (ROOT / report).read_text(encoding="utf-8").splitlines()
    first, end = _table_after(lines, 0)
    rows = [line for line in lines[first:end] if not line.endswith(_ABSENT)]
    return [re.sub(r"\]\(#", f"]({report}#", line) for line in rows]


def readme_tables() -> list[tuple[str, list[str], list[str]]]:
    """Each README table: its report, what the README shows, what the report gives."""
    lines = README.read_text(encoding="utf-8").splitlines()
    found = []
    for marker, report in TABLES:
        at = next(i for i, line in enumerate(lines) if line.startswith(marker))
        first, end = _table_after(lines, at)
        found.append((report, lines[first:end], report_table(report)))
    return found


def main() -> int:
    """Rewrite the README's tables (or only compare them, with --check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if one differs")
    args = parser.parse_args()
    if args.check:
        stale = [report for report, shown, wanted in readme_tables() if shown != wanted]
        for report in stale:
            print(f"README.md's table differs from {report}'s summary", file=sys.stderr)
        return 1 if stale else 0
    lines = README.read_text(encoding="utf-8").splitlines()
    for marker, report in TABLES:
        at = next(i for i, line in enumerate(lines) if line.startswith(marker))
        first, end = _table_after(lines, at)
        lines[first:end] = report_table(report)
    README.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"Wrote {len(TABLES)} tables into {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
