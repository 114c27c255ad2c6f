"""Time of ``leaky.functional.bias_leaky_relu`` against the eager PyTorch composition.

A (leaky):  ``bias_leaky_relu(x, b, 0.2, gain)``
B (eager):  ``torch.nn.functional.leaky_relu(x + b, 0.2) * gain``

with ``gain = sqrt(2)``, x of shape (4096, 4096) float32 and b of shape (4096,), both
requiring gradients, on CPU. Forward + backward runs ``y = f(x, b)`` and
``torch.autograd.grad(y, (x, b), g)`` with one fixed upstream gradient g (standard
normal), so nothing accumulates into ``.grad`` between repetitions.

Correctness comes first: before any timing, A and B are compared with
``torch.testing.assert_close(rtol=1e-5, atol=1e-5)`` on the output and on the gradient
of x. The gradient of b is a sum over 4096 rows, and A and B round their terms
differently (A computes ``gain * leaky(x + b)`` as ``leaky(gain * x + gain * b)``), so
its difference can exceed a fixed 1e-5 through float32 summation alone; it is checked
element by element against ``1e-5 + 1e-5 * sum(|terms|)``, the bound for terms that
agree to 1e-5 relative, and both versions' errors against a float64 reference are
printed. A wrong fast path fails these checks and no time is reported.

Timing: each measurement is one call timed with ``time.perf_counter``. After warm-up,
A and B run in pairs, the order within a pair alternating (AB, BA, AB, ...), at least 9
pairs. The table gives the median time of each and the median of the per-pair ratios
B / A (above 1 means leaky is faster), for three cases: forward + backward, forward
with gradients enabled (the graph is built, then dropped), and forward under
``torch.no_grad()`` (where leaky takes its graph-free path). ``torch.set_num_threads``
is fixed (``--threads``, default 2). ``--quick`` uses a (1024, 1024) input and fewer
pairs; ``--json PATH`` writes every raw sample.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as torch_f

from leaky.functional import bias_leaky_relu
from leaky.machine import load_average, machine_info

SLOPE = 0.2
GAIN = math.sqrt(2.0)
RTOL = ATOL = 1e-5


# --------------------------------------------------------------------------- machine
# --------------------------------------------------------------------------- ops
def fused(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return bias_leaky_relu(x, b, SLOPE, GAIN)


def eager(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch_f.leaky_relu(x + b, SLOPE) * GAIN


def forward_backward(
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    b: torch.Tensor,
    grad: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    y = op(x, b)
    grad_x, grad_b = torch.autograd.grad(y, (x, b), grad)
    return y, grad_x, grad_b


# --------------------------------------------------------------------------- correctness
def check_same(x: torch.Tensor, b: torch.Tensor, grad: torch.Tensor) -> dict[str, float]:
    ya, gxa, gba = (t.detach() for t in forward_backward(fused, x, b, grad))
    yb, gxb, gbb = (t.detach() for t in forward_backward(eager, x, b, grad))
    torch.testing.assert_close(ya, yb, rtol=RTOL, atol=ATOL, msg=lambda m: f"output: {m}")
    torch.testing.assert_close(gxa, gxb, rtol=RTOL, atol=ATOL, msg=lambda m: f"grad x: {m}")

    # grad b = sum over rows of grad x: allow each term its 1e-5 relative difference.
    term_size = gxb.abs().sum(dim=0)
    bound = ATOL + RTOL * term_size
    excess = (gba - gbb).abs() - bound
    if bool((excess > 0).any()):
        worst = int(excess.argmax())
        raise AssertionError(
            f"grad b: {(excess > 0).sum().item()} / {gba.numel()} elements differ beyond "
            f"1e-5 + 1e-5 * sum|terms|; worst at {worst}: {gba[worst].item()} vs "
            f"{gbb[worst].item()} (bound {bound[worst].item():.3g})"
        )
    plain_fail = int((~torch.isclose(gba, gbb, rtol=RTOL, atol=ATOL)).sum())

    # float64 reference for grad b: how far each float32 version is from it.
    with torch.no_grad():
        s = x.detach().double() + b.double()
        slope = torch.where(s > 0, 1.0, SLOPE).to(torch.float64)
        ref = (grad.double() * slope * GAIN).sum(dim=0)
        err_fused = float((gba.double() - ref).abs().max())
        err_eager = float((gbb.double() - ref).abs().max())
    return {
        "max_abs_diff_output": float((ya - yb).abs().max()),
        "max_abs_diff_grad_x": float((gxa - gxb).abs().max()),
        "max_abs_diff_grad_b": float((gba - gbb).abs().max()),
        "grad_b_outside_plain_1e-5": plain_fail,
        "grad_b_max_err_vs_float64_leaky": err_fused,
        "grad_b_max_err_vs_float64_eager": err_eager,
    }


# --------------------------------------------------------------------------- timing
def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(
    run_a: Callable[[], object], run_b: Callable[[], object], pairs: int, warmup: int
) -> dict[str, list[float]]:
    for _ in range(warmup):
        run_a()
        run_b()
    a_times, b_times = [], []
    for i in range(pairs):
        if i % 2 == 0:
            a_times.append(time_once(run_a))
            b_times.append(time_once(run_b))
        else:
            b_times.append(time_once(run_b))
            a_times.append(time_once(run_a))
    return {"a_s": a_times, "b_s": b_times}


def summarize(raw: dict[str, list[float]]) -> dict[str, float]:
    ratios = [b / a for a, b in zip(raw["a_s"], raw["b_s"], strict=True)]
    return {
        "a_ms": 1e3 * statistics.median(raw["a_s"]),
        "b_ms": 1e3 * statistics.median(raw["b_s"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=4096, help="bias length")
    parser.add_argument("--pairs", type=int, default=21, help="timed A/B pairs per case (21)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed A/B pairs first (3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="(1024, 1024) input, 9 pairs")
    parser.add_argument("--json", type=Path, help="write every raw sample here")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.cols, args.pairs, args.warmup = 1024, 1024, 9, 2
    if args.pairs < 9:
        parser.error("--pairs must be at least 9")

    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    print(
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores "
        f"(cpu_count {info['cpu_count']}); python {info['python']}, torch {info['torch']}, "
        f"numpy {info['numpy']}; threads {args.threads}; MALLOC_MMAP_THRESHOLD_ "
        f"{info['malloc_mmap_threshold']}; load average at start {info['load_average_at_start']}"
    )
    print(
        f"setup: x ({args.rows}, {args.cols}) float32, bias ({args.cols},), both "
        f"requires_grad; slope {SLOPE}, gain sqrt(2); A = leaky bias_leaky_relu, "
        f"B = eager leaky_relu(x + b) * gain; {args.warmup} warm-up + {args.pairs} timed "
        "pairs per case, order alternating"
    )

    started = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.rows, args.cols, generator=generator).requires_grad_()
    b = torch.randn(args.cols, generator=generator).requires_grad_()
    grad = torch.randn(args.rows, args.cols, generator=generator)

    check = check_same(x, b, grad)
    print(
        "check passed: output and grad x within rtol=atol=1e-5 "
        f"(max |diff| {check['max_abs_diff_output']:.2g}, {check['max_abs_diff_grad_x']:.2g}); "
        f"grad b within 1e-5 + 1e-5 * sum|terms| (max |diff| "
        f"{check['max_abs_diff_grad_b']:.2g}, {check['grad_b_outside_plain_1e-5']} of "
        f"{args.cols} outside a plain rtol=atol=1e-5; max error vs float64: leaky "
        f"{check['grad_b_max_err_vs_float64_leaky']:.2g}, eager "
        f"{check['grad_b_max_err_vs_float64_eager']:.2g})"
    )

    def no_grad(op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return op(x, b)

        return run

    cases = {
        "forward+backward": (
            lambda: forward_backward(fused, x, b, grad),
            lambda: forward_backward(eager, x, b, grad),
        ),
        "forward (grad enabled)": (lambda: fused(x, b), lambda: eager(x, b)),
        "forward (no_grad)": (no_grad(fused), no_grad(eager)),
    }
    raw: dict[str, dict[str, list[float]]] = {}
    summary: dict[str, dict[str, float]] = {}
    for name, (run_a, run_b) in cases.items():
        raw[name] = paired(run_a, run_b, args.pairs, args.warmup)
        summary[name] = summarize(raw[name])
        print(f"  {name}: done", file=sys.stderr, flush=True)
    total = time.perf_counter() - started

    header = f"{'case':<24} {'leaky ms':>9} {'eager ms':>9} {'eager/leaky':>12} {'ratio range':>13}"
    print()
    print(header)
    print("-" * len(header))
    for name, s in summary.items():
        spread = f"{s['ratio_min']:.2f}-{s['ratio_max']:.2f}"
        print(f"{name:<24} {s['a_ms']:>9.2f} {s['b_ms']:>9.2f} {s['ratio']:>11.2f}x {spread:>13}")
    print()
    print(
        "times: medians over pairs; eager/leaky: median of per-pair ratios (> 1: leaky "
        f"faster); load average at end {load_average()}; total {total:.0f} s"
    )

    if args.json:
        payload = {
            "machine": info,
            "config": {
                "rows": args.rows,
                "cols": args.cols,
                "pairs": args.pairs,
                "warmup": args.warmup,
                "threads": args.threads,
                "seed": args.seed,
                "quick": args.quick,
                "slope": SLOPE,
                "gain": GAIN,
            },
            "check": check,
            "summary": summary,
            "samples": raw,
            "load_average_at_end": load_average(),
            "total_s": total,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"raw samples written to {args.json}")


if __name__ == "__main__":
    main()
