"""Peak memory of one DCGAN-discriminator step in both memory layouts (NCHW, channels_last).

``leaky bench batchnorm`` measures NCHW tensors, where on the CPU the step's peak comes inside
a convolution's backward (oneDNN's reordered copies) rather than where the fused module saves
memory. This script measures the same step, each variant in a fresh process exactly as the
bench does (``MALLOC_MMAP_THRESHOLD_=65536``, VmHWM growth), with the model and its input in
NCHW and in channels_last, to show where the peak goes when those copies are smaller, and a
floor: the same network whose BatchNorm + Leaky ReLU keeps nothing for backward and allocates
nothing in it (its "gradient" is the incoming one passed through: wrong on purpose, a memory
bound only). No BatchNorm + activation can peak below that floor.

    python examples/batch_norm_peak_layouts.py            # full size: batch 256, 64x64
    python examples/batch_norm_peak_layouts.py --quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from leaky.lab.benchmark_models import Bench, build
from leaky.system.resident_peak import child_environment, step_growth_bytes

VARIANTS = ("torch-inplace", "leaky-fused", "floor")


class _KeepsNothing(torch.autograd.Function):
    # BatchNorm (batch statistics) + Leaky ReLU(0.2) that saves nothing and whose backward
    # hands the incoming gradient back unchanged: not a gradient, a lower bound on memory.
    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        y = torch.nn.functional.batch_norm(x, None, None, weight, bias, True, 0.0, 1e-5)
        return torch.nn.functional.leaky_relu_(y, 0.2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad, None, None


class _Floor(torch.nn.Module):
    def __init__(self, norm: torch.nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _KeepsNothing.apply(x, self.weight, self.bias)


def _build(variant: str, quick: bool) -> Bench:
    if variant != "floor":
        return build("dcgan", variant, quick)
    model, x, loss = build("dcgan", "torch-inplace", quick)
    layers: list[torch.nn.Module] = []
    for module in model:
        if isinstance(module, torch.nn.LeakyReLU) and isinstance(layers[-1], _Floor):
            continue  # the floor's BatchNorm has applied it (the input layer's stays)
        layers.append(_Floor(module) if isinstance(module, torch.nn.BatchNorm2d) else module)
    return torch.nn.Sequential(*layers), x, loss


LAYOUTS = ("nchw", "channels_last")


def _child(variant: str, layout: str, quick: bool) -> float:
    model, x, loss = _build(variant, quick)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        loss(model(x)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: gradients and optimizer state exist from here on
    return step_growth_bytes(step) / 2**20


def main() -> None:
    """Measure every variant in every layout, each in its own process, and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        print(json.dumps(_child(*args.child, args.quick)))
        return
    env = child_environment()
    print(f"{'layout':14s} {'variant':14s} {'peak growth MiB':>16s} {'ratio':>6s}")
    for layout in LAYOUTS:
        base = None
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--child", variant, layout]
            command += ["--quick"] if args.quick else []
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            growth = json.loads(out.stdout.strip().splitlines()[-1])
            base = base or growth
            print(f"{layout:14s} {variant:14s} {growth:16.1f} {growth / base:5.2f}x")


if __name__ == "__main__":
    main()
