"""Peak-memory growth and time of one training step of a deep MLP, per activation.

Model: ``depth`` x [Linear(width, width) + activation], then Linear(width, 10) and
cross-entropy; defaults 20 x 1024, batch 4096, float32, CPU. One step is forward, loss,
backward, a plain SGD update (lr 1e-3, no momentum) and ``zero_grad(set_to_none=True)``,
so the weight gradients are allocated and freed inside the step and count in its peak.

Variants (slope 0.01 throughout):

- ``leaky``: ``leaky.nn.LeakyReLU(0.01)``, backward keeps the output.
- ``leaky-mask``: ``leaky.nn.LeakyReLU(0.01, save="mask")``, backward keeps 1 bit/element.
- ``torch``: ``torch.nn.LeakyReLU(0.01)``, backward keeps the input.
- ``torch-inplace``: ``torch.nn.LeakyReLU(0.01, inplace=True)``.
- ``relu``: ``torch.nn.ReLU()``, the reference for memory.

Memory. Every measurement runs in a fresh child process (this script again, with the
hidden ``--child VARIANT``) started with ``MALLOC_MMAP_THRESHOLD_=65536``: glibc then
serves every large tensor from its own mmap and returns it on free, where it would
otherwise keep freed 16 MiB blocks in its heap and the peaks would depend on the order of
allocations. The child builds model and data (fixed seed, the same for all variants),
runs one warm-up step, and then for each measured step: writes "5" to
``/proc/self/clear_refs`` (which resets VmHWM, the peak resident set size, to the
current VmRSS), reads VmRSS, runs the step, reads VmHWM. Growth is
``VmHWM(after) - VmRSS(before)``, the extra resident memory the step needed at its
peak. The child checks that the reset took effect; where it does not (no permission,
not Linux), it reports the lifetime VmHWM minus the VmRSS before the step instead, which
includes the warm-up step, and the table says so.

Time. The same steps are timed with ``time.perf_counter`` (the reset and the /proc reads
stay outside the timed region); the child reports the median of its steps. Its
allocations all go through mmap, so each step also pays the page faults of the memory
it touches for the first time, as it would with any allocator that returns memory.

Rounds. The variants run in rounds, one child per variant per round, the order rotated
by one each round so that no variant always runs first or last. The table gives, per
variant, the median across rounds of the per-child medians, growth as a ratio to
``relu``, and step time as a ratio to ``torch``. ``torch.set_num_threads`` is fixed in
every child (``--threads``, default 2). Defaults are sized to finish in about four
minutes on a 2-core CPU, where one step takes about 4 s; ``--quick`` runs one round of
a smaller MLP (8 x 512, batch 2048), whose activations still outweigh its gradients.
``--json PATH`` writes every raw sample.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from leaky.machine import load_average, machine_info

VARIANTS = ("leaky", "leaky-mask", "torch", "torch-inplace", "relu")
MMAP_THRESHOLD = "65536"
SLOPE = 0.01
MIB = 1024 * 1024
CLEAR_REFS_TOLERANCE_KIB = 1024


# --------------------------------------------------------------------------- machine
# --------------------------------------------------------------------------- child
def read_status_kib() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, rest = line.split(":", 1)
                values[key] = int(rest.split()[0])
    return values


def reset_peak() -> bool:
    """Reset VmHWM to the current VmRSS; True when the reset demonstrably took effect."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    status = read_status_kib()
    return status["VmHWM"] - status["VmRSS"] <= CLEAR_REFS_TOLERANCE_KIB


def make_activation(variant: str) -> torch.nn.Module:
    import leaky.nn

    if variant == "leaky":
        return leaky.nn.LeakyReLU(SLOPE)
    if variant == "leaky-mask":
        return leaky.nn.LeakyReLU(SLOPE, save="mask")
    if variant == "torch":
        return torch.nn.LeakyReLU(SLOPE)
    if variant == "torch-inplace":
        return torch.nn.LeakyReLU(SLOPE, inplace=True)
    if variant == "relu":
        return torch.nn.ReLU()
    raise ValueError(f"unknown variant {variant!r}")


def run_child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(args.depth):
        layers += [torch.nn.Linear(args.width, args.width), make_activation(args.child)]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(args.width, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch, args.width)
    target = torch.randint(10, (args.batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    growth_mib, times_s, resets = [], [], []
    for _ in range(args.steps):
        gc.collect()
        resets.append(reset_peak())
        before = read_status_kib()["VmRSS"]
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        after = read_status_kib()["VmHWM"]
        growth_mib.append((after - before) / 1024)
        times_s.append(elapsed)
    result = {
        "variant": args.child,
        "growth_mib": growth_mib,
        "step_s": times_s,
        "peak_reset": all(resets),
        "rss_after_mib": read_status_kib()["VmRSS"] / 1024,
        "mmap_threshold_env": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


# --------------------------------------------------------------------------- parent
def spawn(variant: str, args: argparse.Namespace) -> dict[str, object]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--threads",
        str(args.threads),
        "--batch",
        str(args.batch),
        "--width",
        str(args.width),
        "--depth",
        str(args.depth),
        "--steps",
        str(args.steps),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {variant} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="children per variant (3)")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per child (2)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of variants"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round of 8 x Linear(512, 512), batch 2048"
    )
    parser.add_argument("--json", type=Path, help="write every raw sample here")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    if args.quick:
        args.rounds, args.steps = 1, 2
        args.batch, args.width, args.depth = 2048, 512, 8
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")

    info = machine_info(args.threads)
    print(
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores "
        f"(cpu_count {info['cpu_count']}); python {info['python']}, torch {info['torch']}, "
        f"numpy {info['numpy']}; load average at start {info['load_average_at_start']}"
    )
    print(
        f"setup: {args.depth} x [Linear({args.width},{args.width}) + act] + "
        f"Linear({args.width},10), batch {args.batch}, float32; step = forward + "
        f"cross-entropy + backward + SGD; threads {args.threads}; "
        f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}; {args.rounds} round(s) x "
        f"{args.steps} step(s) per child after 1 warm-up step"
    )

    started = time.perf_counter()
    samples: list[dict[str, object]] = []
    for r in range(args.rounds):
        shift = r % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            t0 = time.perf_counter()
            result = spawn(variant, args)
            result["round"] = r
            samples.append(result)
            print(
                f"  round {r + 1}/{args.rounds} {variant:<14} growth "
                f"{statistics.median(result['growth_mib']):7.1f} MiB  step "
                f"{1e3 * statistics.median(result['step_s']):8.1f} ms  "
                f"(child {time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    total = time.perf_counter() - started

    summary: dict[str, dict[str, float]] = {}
    for variant in variants:
        mine = [s for s in samples if s["variant"] == variant]
        per_child_growth = [statistics.median(s["growth_mib"]) for s in mine]
        per_child_time = [statistics.median(s["step_s"]) for s in mine]
        summary[variant] = {
            "growth_mib": statistics.median(per_child_growth),
            "growth_min": min(per_child_growth),
            "growth_max": max(per_child_growth),
            "step_ms": 1e3 * statistics.median(per_child_time),
            "step_ms_min": 1e3 * min(per_child_time),
            "step_ms_max": 1e3 * max(per_child_time),
        }
    all_reset = all(s["peak_reset"] for s in samples)

    relu = summary.get("relu", {}).get("growth_mib", 0.0)
    ref_time = summary.get("torch", {}).get("step_ms", 0.0)
    header = (
        f"{'variant':<14} {'peak growth MiB':>15} {'vs relu':>8} {'step ms':>9} "
        f"{'vs torch':>9} {'step ms range':>17}"
    )
    print()
    print(header)
    print("-" * len(header))
    for variant in variants:
        s = summary[variant]
        spread = f"{s['step_ms_min']:.0f}-{s['step_ms_max']:.0f}"
        print(
            f"{variant:<14} {s['growth_mib']:>15.1f} {fmt_ratio(s['growth_mib'], relu):>8} "
            f"{s['step_ms']:>9.1f} {fmt_ratio(s['step_ms'], ref_time):>9} {spread:>17}"
        )
    print()
    print(
        "peak growth: VmHWM after the step - VmRSS before it, VmHWM reset via "
        "/proc/self/clear_refs before each step; median over steps, then over rounds"
        if all_reset
        else "peak growth: /proc/self/clear_refs did NOT reset VmHWM in some children; "
        "growth there is lifetime VmHWM - VmRSS before the step (includes the warm-up)"
    )
    growth_spread = max(s["growth_max"] - s["growth_min"] for s in summary.values())
    print(
        f"largest spread of a variant's growth across rounds: {growth_spread:.1f} MiB; "
        f"load average at end {load_average()}; total {total:.0f} s"
    )

    if args.json:
        payload = {
            "machine": info,
            "config": {
                k: getattr(args, k) for k in ("rounds", "steps", "threads", "batch", "width")
            }
            | {"depth": args.depth, "variants": variants, "quick": args.quick},
            "peak_reset_worked": all_reset,
            "summary": summary,
            "samples": samples,
            "load_average_at_end": load_average(),
            "total_s": total,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"raw samples written to {args.json}")


if __name__ == "__main__":
    main()
