"""The ``monitor`` suite: what a :class:`leaky.diagnosis.monitor.Monitor` adds to a training step.

Four networks, each stepped with its Monitor attached and detached in turn (attaching and
detaching are not timed, and the monitored step's loss is first checked equal to an
unmonitored copy's), so both sides run the same weights in the same memory; as a control,
the same network without a Monitor on both sides. The networks: the 20 x [Linear(1024,
1024) + LeakyReLU] MLP, ResNet-18's layout for 32x32 images (ReLU, one activation module
called twice per block) and a pre-norm transformer encoder block (``leaky.lab.benchmark_models``).
Each is timed with the Monitor's defaults (counts every batch, moments, histogram and
gradient norms every ``DEFAULT_EVERY``-th batch) and with ``every=1`` (every statistic on
every batch). Two copies of a network, even from the same weights, can step a few percent
apart for as long as they live (where their memory landed), which timing one copy against
another would have counted as the monitor's. The first, a small MLP (8 x [Linear(512, 512) +
ReLU], batch 256, about 24 ms a step on 2 cores), shows the fixed cost per hook that the
others' longer steps hide; it is also timed at ``every`` = 4 and 64 (the cost as a curve over
``every``).

The small MLP is also timed compiled (``torch.compile``, the Monitor attached before it,
``none`` / defaults / every = 1, 4, 64) and in a Lightning fit with and without the
``LeakyMonitor`` callback. Those pairs run each side in a process of its own
(:mod:`leaky.bench.paced`): two compiled copies of one network in one process share
Dynamo's cache, and a Monitor's hooks on one of them change what the other runs; a fit owns
its loop. Such a row compares two processes, not one model attached and detached, so its
``none`` control (the same variant in both processes) is its floor.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from leaky.bench.kernels import ResultMismatchError
from leaky.bench.monitor_variants import small_mlp
from leaky.bench.paced import Variant, compare_processes
from leaky.bench.result import BenchRow, SuiteResult
from leaky.bench.timing import compare
from leaky.bench.training_step import checked_steps
from leaky.diagnosis.monitor import Monitor
from leaky.diagnosis.monitor.monitor import DEFAULT_EVERY
from leaky.lab.benchmark_models import Bench, activation_module, build

__all__ = ["run_monitor"]


def _mlp(quick: bool) -> tuple[str, Bench]:
    depth, width, batch = (4, 256, 256) if quick else (20, 1024, 256)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation_module("torch")]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    return f"MLP {depth}x{width} step, batch {batch}", (model, torch.randn(batch, width), None)


def _small_mlp(quick: bool) -> tuple[str, Bench]:
    case, model, x, _ = small_mlp(quick)
    return case, (model, x, None)


def _resnet18(quick: bool) -> tuple[str, Bench]:
    model, x, loss = build("resnet18", "relu", quick)
    return f"ResNet-18 32x32 step, batch {x.shape[0]}", (model, x, loss)


def _transformer(quick: bool) -> tuple[str, Bench]:
    model, x, loss = build("transformer", "torch", quick)
    batch, tokens, dim = x.shape
    return f"encoder block d{dim} x{tokens} tokens, batch {batch}", (model, x, loss)


def _to(bench: Bench, device: str) -> Bench:
    model, x, _ = bench
    # The same targets as leaky.lab.benchmark_models' classification loss, where the outputs are.
    target = torch.randint(10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    target = target.to(device)
    return model.to(device), x.to(device), lambda out: nn.functional.cross_entropy(out, target)


def run_monitor(*, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """Training steps with a Monitor attached (defaults, then every=1) against none."""
    # A 3% cost is smaller than a shared machine's step-to-step spread: many pairs (the
    # 95% interval of the median was about +-3% at 41 pairs, +-2% at 81, on 2 cores).
    pairs = 7 if quick else 81
    result = SuiteResult("monitor")
    shares: list[str] = []
    settings = (("none", None), ("defaults", {}), ("every=1", {"every": 1}))
    # The small network also gets the curve over `every` (1, 4, 16 = the defaults, 64).
    curve = (*settings, ("every=4", {"every": 4}), ("every=64", {"every": 64}))
    for make in (_small_mlp, _mlp, _resnet18, _transformer):
        case, bench = make(quick)
        plain, x, loss = _to(bench, device)
        for label, options in curve if make is _small_mlp else settings:
            # One model, stepped with its Monitor attached and detached in turn (attaching
            # and detaching are not timed): both sides run the same weights in the same
            # memory, so only the monitor differs. "none" steps it without a Monitor on
            # both sides: the floor of what this machine can tell apart.
            watched = copy.deepcopy(plain)
            monitor = None if options is None else Monitor(watched, **options).attach()
            try:
                step, _ = checked_steps(watched, plain, x, loss)  # the monitor changes nothing
                timed = _HookShare(step, monitor)
                comparison = compare(
                    timed,
                    step,
                    pairs=pairs,
                    device=device,
                    before_candidate=None if monitor is None else monitor.attach,
                    before_baseline=None if monitor is None else monitor.detach,
                )
            finally:
                if monitor is not None:
                    monitor.detach()
            if monitor is not None:
                shares.append(f"in hooks {timed.share():5.1%}  {case}, Monitor {label}")
            result.rows.append(
                BenchRow(
                    f"{case}, Monitor {label}",
                    "no Monitor" if options is None else f"with Monitor ({label})",
                    "the same model without",
                    "allocating",
                    comparison,
                    "equal loss",
                )
            )
    if device == "cpu":
        result.rows += _process_rows(quick, pairs)
    result.notes.append("speed-up < 1 is the monitor's cost: 0.97x means a 3% longer step")
    result.notes.append(
        "each row steps one model with its Monitor attached and detached in turn (attach and "
        "detach untimed): the same weights in the same memory on both sides. Monitor none: "
        "the model without a Monitor on both sides, how far from 1.00x two identical steps "
        "read on this machine"
    )
    result.notes.append(
        "compiled and Lightning rows: each side in a process of its own, stepping in turns of "
        "3 steps, the first of a turn left out (it pays for the other process's use of the "
        "caches); none: the same variant in both processes. Lightning: no logger, progress "
        "bar or checkpointing on either side; the callback computes its report every 50 steps"
    )
    result.notes.append(
        f"defaults: unit counts exact, every batch (a site whose units have all fired in "
        f"the window reads nothing more); extremes, moments, histogram and gradient norms "
        f"every {DEFAULT_EVERY}th batch. every=1: every statistic on every batch"
    )
    result.notes.append(
        "in hooks: time the monitor spent computing statistics over the monitored steps' "
        "time, in the same steps (Monitor.statistics_seconds; free of the step-to-step "
        "spread, without the hooks' dispatch and the functional call watcher"
        f"{'; host time to queue the GPU work' if device != 'cpu' else ''}):"
    )
    result.notes += shares
    return result


def _process_rows(quick: bool, pairs: int) -> list[BenchRow]:
    # Compiled (Monitor attached before torch.compile) and Lightning fits of the small MLP,
    # each side in its own process. The quick preset times only the defaults.
    case = small_mlp(quick)[0]
    compiled = "leaky.bench.monitor_variants:compiled_steps"
    settings = [("none", None), ("defaults", {}), ("every=1", {"every": 1})]
    settings += [("every=4", {"every": 4}), ("every=64", {"every": 64})]
    cases = [
        (f"{case}, compiled, Monitor {label}", compiled, "monitor", options, "compiled")
        for label, options in (settings[1:2] if quick else settings)
    ]
    try:
        import lightning  # noqa: F401

        fit = "leaky.bench.monitor_variants:lightning_steps"
        for label, options in [("none", None), ("defaults", {})][quick:]:
            name = f"{case}, Lightning fit, LeakyMonitor {label}"
            cases.append((name, fit, "callback", options, "Lightning fit"))
    except ImportError:  # the extra is not installed: no Lightning rows
        pass
    rows = []
    for name, function, key, options, what in cases:
        with_it = Variant(function, {"quick": quick, key: options})
        without = Variant(function, {"quick": quick, key: None})
        comparison, note, baseline_note = compare_processes(with_it, without, pairs=pairs)
        seen, base = _fields(note), _fields(baseline_note)
        if not math.isclose(seen["loss"], base["loss"], rel_tol=1e-5):
            raise ResultMismatchError(f"{name}: first losses differ ({note}; {baseline_note})")
        if options is not None and not seen.get("passes"):
            raise ResultMismatchError(f"{name}: the Monitor saw no forward pass ({note})")
        label = "no Monitor" if options is None else f"with Monitor ({name.split()[-1]})"
        rows.append(
            BenchRow(name, label, f"{what} without", "allocating", comparison, "equal loss")
        )
    return rows


def _fields(note: str) -> dict[str, float]:
    # "loss=2.31 passes=100" -> {"loss": 2.31, "passes": 100.0}
    return {key: float(value) for key, _, value in (f.partition("=") for f in note.split())}


class _HookShare:
    """A monitored step that also adds up its own time and the monitor's time inside it."""

    def __init__(self, step: Callable[[], object], monitor: Monitor | None) -> None:
        self.step, self.monitor = step, monitor
        self.step_seconds = self.hook_seconds = 0.0

    def __call__(self) -> object:
        before = self.monitor.statistics_seconds if self.monitor is not None else 0.0
        start = time.perf_counter()
        out = self.step()
        self.step_seconds += time.perf_counter() - start
        if self.monitor is not None:
            self.hook_seconds += self.monitor.statistics_seconds - before
        return out

    def share(self) -> float:
        """Seconds inside the monitor's hooks over seconds of the steps (0 before any)."""
        return self.hook_seconds / self.step_seconds if self.step_seconds else 0.0
