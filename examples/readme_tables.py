"""Write the README's summary table from the committed report, or check that it matches.

The README shows the demo's summary table: the one `leaky report` writes at the top of
docs/report/en/report.md (from the demo's store), its links pointed at that page. Typing it
by hand let the two drift apart; this script copies it instead, and `tests/test_readme.py`
fails when they differ.

    python examples/readme_tables.py          # rewrite the README's table
    python examples/readme_tables.py --check  # exit 1 if the README's table differs
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPORT = ROOT / "docs" / "report" / "en" / "report.md"
_HEADER = "| Claim | Experiment | Result | Verdict |"


def _table(text: str) -> tuple[int, int]:
    """Start and end (line indices) of the first summary table in ``text``."""
    lines = text.splitlines()
    start = lines.index(_HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def summary_table(report: str = "docs/report/en/report.md") -> list[str]:
    """The report's summary table, its links pointed at ``report`` (as the README shows it)."""
    lines = REPORT.read_text(encoding="utf-8").splitlines()
    start, end = _table(REPORT.read_text(encoding="utf-8"))
    return [re.sub(r"\]\(#", f"]({report}#", line) for line in lines[start:end]]


def readme_table() -> list[str]:
    """The summary table the README shows now."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start, end = _table(README.read_text(encoding="utf-8"))
    return lines[start:end]


def main() -> int:
    """Rewrite the README's table (or only compare it, with --check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if it differs")
    args = parser.parse_args()
    wanted = summary_table()
    if args.check:
        if readme_table() != wanted:
            print(
                "README.md's summary table differs from docs/report/en/report.md's", file=sys.stderr
            )
            return 1
        return 0
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    start, end = _table(text)
    lines[start:end] = wanted
    README.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"Wrote {len(wanted) - 2} rows into {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
