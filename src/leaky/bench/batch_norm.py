"""The ``batchnorm`` suite: what fusing BatchNorm with Leaky ReLU saves, and what it costs.

Two networks, a DCGAN discriminator (4 x [Conv 4x4 stride 2 -> BatchNorm -> LeakyReLU(0.2)],
64x64 inputs, batch 256) and a small ResNet-style stack, in three variants
(:data:`leaky.lab.benchmark_models.BATCH_NORM_VARIANTS`): PyTorch with ``LeakyReLU(inplace=True)``
(the least memory PyTorch offers today, and the baseline), PyTorch out of place, and
:class:`leaky.nn.BatchNormLeakyReLU2d`. Peak memory growth of a training step per variant in
fresh processes, and the step time of the fused variant against the in-place one (their
first losses checked equal before timing).
"""

from __future__ import annotations

from leaky.bench.memory import measure_peaks
from leaky.bench.peak_memory import MMAP_THRESHOLD, can_measure
from leaky.bench.result import BenchRow, SuiteResult
from leaky.bench.timing import compare
from leaky.bench.training_step import checked_steps
from leaky.lab.benchmark_models import BATCH_NORM_VARIANTS, build, saved_by_autograd_mib

__all__ = ["run_batch_norm"]

_NAMES = {"dcgan": "DCGAN discriminator 64x64", "resnet": "ResNet-style stack 32x32"}


def run_batch_norm(*, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """Peak memory per variant and fused-vs-in-place step time, DCGAN D and a ResNet stack."""
    result = SuiteResult("batchnorm")
    rounds, steps, pairs = (1, 1, 5) if quick else (3, 2, 7)
    for kind in ("dcgan", "resnet"):
        candidate, _, loss = build(kind, "leaky-fused", quick)
        baseline, x, _ = build(kind, "torch-inplace", quick)
        candidate, baseline, x = candidate.to(device), baseline.to(device), x.to(device)
        fns = checked_steps(candidate, baseline, x, loss)
        result.rows.append(
            BenchRow(
                f"{_NAMES[kind]} step, batch {len(x)}",
                "BatchNormLeakyReLU2d",
                "BatchNorm2d + LeakyReLU(inplace=True)",
                "allocating",
                compare(*fns, pairs=pairs, device=device),
                "equal loss",
            )
        )
        for variant in BATCH_NORM_VARIANTS:
            result.saved_mib[f"{kind} {variant}"] = saved_by_autograd_mib(
                kind, variant, quick=quick
            )
        if device == "cpu" and can_measure():
            result.memory += measure_peaks(
                kind,
                BATCH_NORM_VARIANTS,
                "torch-inplace",
                quick=quick,
                rounds=rounds,
                steps=steps,
            )
    if device != "cpu":
        result.notes.append("peak memory is measured for the CPU only (resident set size)")
    elif not can_measure():
        result.notes.append("peak memory skipped: needs Linux /proc to read and reset the peak")
    else:
        result.notes.append(
            f"peak growth per step, each variant in a fresh process, MALLOC_MMAP_THRESHOLD_="
            f"{MMAP_THRESHOLD}; median of {rounds * steps} step(s); ratio to the in-place "
            "PyTorch pair"
        )
    result.notes.append("speed-up = in-place PyTorch step time / fused step time")
    return result
