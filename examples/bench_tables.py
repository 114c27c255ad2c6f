"""Write the tables of docs/benchmarks.md from the committed benchmark run, or check them.

Each table there that `leaky bench` printed follows a marker line naming the command that
prints it again from the stored run::

    <!-- leaky bench --show docs/bench/bench.json kernels -->
    ```
    ...what that command prints...
    ```

This script replaces each such block with what the command prints now (rewrite), or exits
1 naming the blocks that differ (``--check``, which ``tests/test_bench.py`` runs). The run
itself is made by ``leaky bench --json docs/bench/bench.json`` (the figures' only source).

    python examples/bench_tables.py          # rewrite the blocks
    python examples/bench_tables.py --check  # exit 1 if a block differs
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from leaky.bench import load_run

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
_BLOCK = re.compile(r"<!-- leaky bench --show (\S+)((?: \w+)*) -->\n```\n(.*?)```\n", re.S)


def printed(path: str, suites: tuple[str, ...]) -> str:
    """What ``leaky bench --show PATH SUITES`` prints, the machine line first."""
    run = load_run(ROOT / path, suites)
    return "\n".join([run.machine_line(), *(result.table() for result in run.results)]) + "\n"


def blocks(text: str) -> list[tuple[str, str, str]]:
    """Each marked block: its command, what the doc shows, what the command prints."""
    found = []
    for match in _BLOCK.finditer(text):
        suites = tuple(shlex.split(match[2]))
        command = f"leaky bench --show {match[1]}{match[2]}"
        found.append((command, match[3], printed(match[1], suites)))
    return found


def rewrite(text: str) -> str:
    """The doc with every marked block replaced by what its command prints."""

    def fresh(match: re.Match[str]) -> str:
        body = printed(match[1], tuple(shlex.split(match[2])))
        return f"<!-- leaky bench --show {match[1]}{match[2]} -->\n```\n{body}```\n"

    return _BLOCK.sub(fresh, text)


def main() -> int:
    """Rewrite docs/benchmarks.md's blocks, or check them with --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block differs")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    if args.check:
        stale = [command for command, shown, fresh in blocks(text) if shown != fresh]
        for command in stale:
            print(f"docs/benchmarks.md: the block after `{command}` differs from its output")
        return 1 if stale else 0
    DOC.write_text(rewrite(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
