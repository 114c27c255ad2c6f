"""Fused memory: what keeping only the output saves, and why it needs Leaky ReLU.

In ``Conv -> BatchNorm -> activation``, PyTorch keeps BatchNorm's input for its backward
and the activation's output (in place, the least memory it offers) for its own. A Leaky
ReLU of slope > 0 is invertible, so :class:`leaky.nn.BatchNormLeakyReLU2d` rebuilds
BatchNorm's input from the block's output and keeps that alone (In-Place Activated
BatchNorm, Rota Bulo et al. 2018). ReLU forgets every negative input: at slope 0 the same
module cannot rebuild anything and keeps what the PyTorch pair keeps.

Each run builds one network (a DCGAN discriminator, a small ResNet-style stack; the
benchmark's networks, :mod:`leaky.lab.benchmark_models`) in one variant and counts the bytes
autograd keeps between forward and backward: every distinct storage a saved tensor points
to, the input included. The count is exact and the same on every seed and machine; the
peak memory of a whole training step, which also holds the backward's temporaries, is
measured by ``leaky bench batchnorm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from leaky.lab.benchmark_models import saved_by_autograd_mib
from leaky.lab.experiments.base import Experiment, Finding, RunOutput, positive
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "VARIANTS", "FusedMemoryConfig"]

NETWORKS = ("dcgan", "resnet")
_MODEL_NAMES = {"dcgan": "DCGAN", "resnet": "ResNet"}  # proper names, the same in every language
# Leaky ReLU: PyTorch in place (the baseline), PyTorch out of place, the fused module;
# ReLU: PyTorch in place, the fused module at slope 0.
VARIANTS = ("torch-inplace", "torch", "leaky-fused", "relu-inplace", "relu-fused")
_MIB = 2**20


@dataclass(frozen=True)
class FusedMemoryConfig:
    """Defaults: the benchmark's sizes (DCGAN batch 256 at 64x64, ResNet stack batch 128)."""

    networks: tuple[str, ...] = NETWORKS
    variants: tuple[str, ...] = VARIANTS  # a finding needs the pairs it compares
    small: bool = False  # the benchmark's quick sizes (batch 32) instead
    seeds: int = 1  # the count is exact: more seeds give the same bytes

    def __post_init__(self) -> None:
        positive(self, "seeds")
        for name, values, valid in (
            ("networks", self.networks, NETWORKS),
            ("variants", self.variants, VARIANTS),
        ):
            unknown = [v for v in values if v not in valid]
            if unknown or not values:
                raise ValueError(
                    f"Expected {name} among {', '.join(valid)}, but got "
                    f"{', '.join(unknown) or 'none'}"
                )


def _cells(config: FusedMemoryConfig) -> list[dict]:
    return [{"network": n, "variant": v} for n in config.networks for v in config.variants]


def _run(config: FusedMemoryConfig, cell: dict, seed: int) -> RunOutput:
    saved = saved_by_autograd_mib(cell["network"], cell["variant"], quick=config.small)
    return RunOutput(results={"saved_mib": saved})


def _memory(config: FusedMemoryConfig) -> int:
    # Out of place, every block keeps several float32 activations of its full size: DCGAN's
    # input plus three per block (convolution, BatchNorm, activation); the ResNet stack's
    # stem three and six per residual block at 32x32. Plus weights and the interpreter.
    widths = (64, 128, 256)
    dcgan = 3 * 64 * 64 + 3 * sum(c * (32 // 2**i) ** 2 for i, c in enumerate(widths))
    channels, blocks = (16, 2) if config.small else (64, 4)
    sizes = {
        "dcgan": (32 if config.small else 256) * dcgan,
        "resnet": (32 if config.small else 128) * (3 + 6 * blocks) * channels * 32 * 32,
    }
    return 4 * max(sizes[n] for n in config.networks) + 64 * _MIB


def _saved(runs: Sequence[RunRecord]) -> dict[tuple[str, str], float]:
    return {(r.cell["network"], r.cell["variant"]): r.results["saved_mib"] for r in runs}


def _summarize(config: FusedMemoryConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    saved = _saved(runs)
    findings = []
    for network in config.networks:
        model = _MODEL_NAMES[network]
        if all((network, v) in saved for v in ("torch-inplace", "torch", "leaky-fused")):
            baseline = saved[(network, "torch-inplace")]
            fused = saved[(network, "leaky-fused")]
            findings.append(
                Finding(
                    "fused-memory.leaky_saves",
                    "holds" if fused < baseline else "does not hold",
                    {
                        "network": network,
                        "model": model,
                        "fused_mib": fused,
                        "inplace_mib": baseline,
                        "out_of_place_mib": saved[(network, "torch")],
                        "ratio": fused / baseline,
                    },
                )
            )
        if all((network, v) in saved for v in ("relu-inplace", "relu-fused")):
            relu_pair = saved[(network, "relu-inplace")]
            relu_fused = saved[(network, "relu-fused")]
            findings.append(
                Finding(
                    "fused-memory.relu_cannot",
                    "holds" if relu_fused >= relu_pair else "does not hold",
                    {
                        "network": network,
                        "model": model,
                        "fused_mib": relu_fused,
                        "inplace_mib": relu_pair,
                        "ratio": relu_fused / relu_pair,
                    },
                )
            )
    return findings


EXPERIMENT = Experiment(
    name="fused-memory",
    config=FusedMemoryConfig,
    presets={"quick": {"small": True}, "tiny": {"small": True, "networks": ("resnet",)}},
    cells=_cells,
    axes=("networks", "variants"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    results={"saved_mib": float},
)
