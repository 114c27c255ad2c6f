"""Where a Monitor's time goes: milliseconds per training step inside each of its hooks.

The ``monitor`` bench suite times whole steps with and without a Monitor; on a shared machine
the step-to-step spread can exceed the monitor's cost. This script measures the monitor's own
work directly: it wraps the statistics' update methods with a clock and reports their time per
step next to the step time, for the bench's three networks (``leaky.bench.monitor_overhead``).

    python examples/monitor_profile.py --steps 16      # defaults and every=1, all networks
    python examples/monitor_profile.py --model small-mlp --every 1 --steps 10

With the defaults, 16 steps hold one batch that reads the moments (the 17th of the monitor's).
"""

from __future__ import annotations

import argparse
import collections
import copy
import functools
import time

import torch

from leaky.bench.monitor_overhead import _mlp, _resnet18, _small_mlp, _to, _transformer
from leaky.bench.training_step import checked_steps
from leaky.diagnosis.monitor import Monitor, layer_stats, site_stats
from leaky.diagnosis.monitor.monitor import DEFAULT_EVERY

MODELS = {"small-mlp": _small_mlp, "mlp": _mlp, "resnet18": _resnet18, "transformer": _transformer}
# (class, method, label): the label's time includes the methods it calls.
TIMED = [
    (site_stats.SiteStatistics, "update", "forward: counts (+ extremes and moments)"),
    (site_stats.SiteStatistics, "_read_moments", "forward: moments and histogram"),
    (site_stats.SiteStatistics, "update_grad", "backward: output gradient norms"),
    (layer_stats.LayerGradientStatistics, "update", "backward: weight gradient norms"),
]


SPENT: collections.Counter[str] = collections.Counter()  # label -> seconds


def _clocked() -> None:
    for cls, name, label in TIMED:
        method = getattr(cls, name)

        @functools.wraps(method)
        def timed(*args, _method=method, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                SPENT[_label] += time.perf_counter() - start

        setattr(cls, name, timed)


def profile(model: str, every: int, steps: int) -> None:
    """Print the monitor's time per step, per kind of statistic, for one network."""
    case, bench = MODELS[model](False)
    plain, x, loss = _to(bench, "cpu")
    watched = copy.deepcopy(plain)
    monitor = Monitor(watched, every=every).attach()
    with_monitor, without = checked_steps(watched, plain, x, loss)
    spent = SPENT
    for _ in range(2):
        with_monitor(), without()
    spent.clear()
    total = plain_total = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        with_monitor()
        total += time.perf_counter() - start
        start = time.perf_counter()
        without()
        plain_total += time.perf_counter() - start
    monitor.detach()
    step, watched_step = plain_total / steps * 1e3, total / steps * 1e3
    print(f"{case}, every={every}: step {step:.1f} ms without, {watched_step:.1f} ms with")
    for label, seconds in spent.items():
        print(f"  {label:42s} {seconds / steps * 1e3:7.2f} ms/step  {seconds / plain_total:6.2%}")
    inside = spent["forward: counts (+ extremes and moments)"] + sum(
        v for k, v in spent.items() if k.startswith("backward")
    )
    share = inside / plain_total
    print(f"  {'all of the monitor':42s} {inside / steps * 1e3:7.2f} ms/step  {share:6.2%}")
    # Between moment batches a site reads only its units that have not fired yet: those
    # still never active at the end of the run are what it read on every batch.
    left = [
        (row.name, row.summary.never_active, row.summary.units) for row in monitor.report().sites
    ]
    reading = [f"{name} {n}/{units}" for name, n, units in left if n]
    print(
        f"  sites with units never active ({len(reading)} of {len(left)}): "
        f"{', '.join(reading) or 'none'}"
    )


def main() -> None:
    """Profile the networks and settings asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    parser.add_argument("--every", type=int, choices=[1, DEFAULT_EVERY], default=None)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _clocked()
    for model in MODELS if args.model == "all" else [args.model]:
        for every in [DEFAULT_EVERY, 1] if args.every is None else [args.every]:
            profile(model, every, args.steps)


if __name__ == "__main__":
    main()
