"""One network of the monitor suite, timed over as many pairs as you like.

``leaky bench monitor`` times 81 pairs per row of three networks; this script times one
network of the suite, for as many pairs as you like, the way the suite does (one model
stepped with its Monitor attached and detached in turn, neither timed) for the chosen
settings, and prints each median speed-up with its 95% interval and
the share of the step spent computing statistics. ``hooks-only`` attaches a Monitor whose
statistics do nothing: what the hooks themselves (dispatch, the functional-call watcher)
cost. ``peaks-off`` is the defaults with the per-unit peaks not read on the CPU (wrong
never-active counts; what everything but those reads costs).

    python examples/monitor_pairs.py --model resnet18 --pairs 81
    python examples/monitor_pairs.py --model mlp --settings none hooks-only defaults
    python examples/monitor_pairs.py --model small-mlp --threads 2 --settings defaults every=1
    python examples/monitor_pairs.py --model mlp --threads 2 --settings none peaks-off defaults
"""

from __future__ import annotations

import argparse
import copy
from typing import Any
from unittest import mock

import torch

from leaky.bench.monitor_overhead import (
    _HookShare,
    _mlp,
    _resnet18,
    _small_mlp,
    _to,
    _transformer,
)
from leaky.bench.timing import compare
from leaky.bench.training_step import checked_steps
from leaky.diagnosis.monitor import Monitor, layer_stats, site_stats

MODELS = {"small-mlp": _small_mlp, "mlp": _mlp, "resnet18": _resnet18, "transformer": _transformer}
SETTINGS = {
    "none": None,
    "hooks-only": {"every": 1},
    "peaks-off": {},
    "defaults": {},
    "every=1": {"every": 1},
}


def _statistics_off() -> tuple[Any, ...]:
    # Every statistic a no-op; update() still says "read", so gradient hooks are placed.
    return mock.patch.multiple(
        site_stats.SiteStatistics,
        update=lambda self, *args, **kwargs: True,
        update_grad=lambda self, grad: None,
    ), mock.patch.object(layer_stats.LayerGradientStatistics, "update", lambda self, g: None)


def _peaks_off() -> tuple[Any, ...]:
    # The CPU's per-unit peaks (and a moment batch's extremes) not read at all.
    return (mock.patch.object(site_stats.SiteStatistics, "_fold_on_host", lambda *args: None),)


def main() -> None:
    """Time the chosen settings of one network and print their speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="mlp")
    parser.add_argument("--pairs", type=int, default=81)
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=["none", "defaults", "every=1"]
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
        step, _ = checked_steps(watched, plain, x, loss)
        patches = {"hooks-only": _statistics_off(), "peaks-off": _peaks_off()}.get(name, ())
        for patch in patches:
            patch.start()
        try:
            timed = _HookShare(step, monitor)
            comparison = compare(
                timed,
                step,
                pairs=args.pairs,
                before_candidate=None if monitor is None else monitor.attach,
                before_baseline=None if monitor is None else monitor.detach,
            )
        finally:
            for patch in patches:
                patch.stop()
            if monitor is not None:
                monitor.detach()
        low, high = comparison.speedup_interval()
        print(
            f"{case}, Monitor {name}: {comparison.speedup:.3f}x [{low:.3f}, {high:.3f}], "
            f"in hooks {timed.share():.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
