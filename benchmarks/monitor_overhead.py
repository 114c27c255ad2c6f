"""Training-step time with and without ``leaky.monitor.Monitor`` attached.

Model: 20 x [Linear(1024, 1024) + leaky.nn.LeakyReLU(0.01)] + Linear(1024, 10), batch 256,
float32, CPU. One step: forward, cross-entropy, backward, SGD update, zero_grad. Two copies
of the same model (same seed) run alternately, one with a Monitor attached (functional
watching and gradient hooks on, the defaults), for ``--pairs`` pairs after a warm-up; the
figure is the median of the per-pair ratios (monitored / plain). Threads are fixed.

Run: ``.venv/bin/python benchmarks/monitor_overhead.py [--pairs 15] [--threads 2]``
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

import leaky
from leaky.machine import machine_info
from leaky.monitor import Monitor


def build(depth: int, width: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), leaky.nn.LeakyReLU(0.01)]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", help="write raw samples here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plain = build(args.depth, args.width)
    watched = copy.deepcopy(plain)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=1e-3)
    opt_watched = torch.optim.SGD(watched.parameters(), lr=1e-3)
    x = torch.randn(args.batch, args.width)
    y = torch.randint(0, 10, (args.batch,))
    monitor = Monitor(watched).attach()
    for _ in range(3):  # warm-up
        step(plain, opt_plain, x, y)
        step(watched, opt_watched, x, y)
    samples = []
    for i in range(args.pairs):
        order = [(plain, opt_plain), (watched, opt_watched)]
        if i % 2:
            order.reverse()
        times = {id(m): step(m, o, x, y) for m, o in order}
        samples.append((times[id(plain)], times[id(watched)]))
    report = monitor.report()  # the host sync happens here, once, not per step
    monitor.detach()
    ratios = [w / p for p, w in samples]
    info = machine_info()
    print(
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores; torch {info['torch']}; "
        f"threads {info['threads']}; load average at start {info['load_average_at_start']}"
    )
    print(
        f"model: {args.depth} x [Linear({args.width},{args.width}) + LeakyReLU], "
        f"batch {args.batch}; {args.pairs} alternating pairs after 3 warm-up steps"
    )
    print(f"plain step     median {statistics.median(p for p, _ in samples) * 1e3:8.2f} ms")
    print(f"monitored step median {statistics.median(w for _, w in samples) * 1e3:8.2f} ms")
    print(
        f"overhead: median of pair ratios {statistics.median(ratios):.3f}x "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}); sites watched: {len(report.sites)}, "
        f"batches seen: {report.batches}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples_s": samples, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
