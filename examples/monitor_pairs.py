"""One network of the monitor suite, timed over as many pairs as you like.

``leaky bench monitor`` times 41 pairs per row; on a machine whose adjacent steps differ by
up to a quarter, a 3% cost needs more. This script times the control (an unmonitored copy
against the original) and the monitor's settings for one network, with the suite's own step
functions and timing, and prints each median speed-up with its 95% interval.

    python examples/monitor_pairs.py --model mlp --pairs 80
"""

from __future__ import annotations

import argparse
import copy

import torch

from leaky.bench.monitor_overhead import _mlp, _resnet18, _to, _transformer
from leaky.bench.timing import compare
from leaky.bench.training_step import checked_steps
from leaky.monitor import Monitor

MODELS = {"mlp": _mlp, "resnet18": _resnet18, "transformer": _transformer}
SETTINGS = {"none": None, "defaults": {}, "every=1": {"every": 1}}


def main() -> None:
    """Time the chosen settings of one network and print their speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="mlp")
    parser.add_argument("--pairs", type=int, default=80)
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=["none", "defaults"]
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case, bench = MODELS[args.model](False)
    plain, x, loss = _to(bench, "cpu")
    for name in args.settings:
        watched = copy.deepcopy(plain)
        options = SETTINGS[name]
        monitor = None if options is None else Monitor(watched, **options).attach()
        comparison = compare(*checked_steps(watched, plain, x, loss), pairs=args.pairs)
        if monitor is not None:
            monitor.detach()
        low, high = comparison.speedup_interval()
        print(f"{case}, Monitor {name}: {comparison.speedup:.3f}x [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
