"""Vanishing gradients: do deep sigmoid networks starve their first layers of gradient?

The article's first claim. MLPs of several depths are built with each activation and its
standard initialisation (Xavier for sigmoid and tanh, for which Glorot and Bengio designed
it; He/Kaiming with the activation's gain for the rectifiers), then trained with plain SGD
on MNIST-1D. Every ``log_every`` steps the weight-gradient norm of every Linear layer is
stored. The finding is the ratio of the first layer's gradient norm to the last layer's at
initialisation, per activation and depth (below 1e-2: vanishing, as in
:mod:`leaky.diagnosis.monitor`), and which networks stall (the training loss falls by less than
``stall_drop`` of its initial value, or stays within ``stall_drop`` of the loss of a
uniform guess, ln(classes)).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from leaky.core.spec import get_spec
from leaky.data import load_named_dataset
from leaky.diagnosis.monitor.report import EXPLODING_ABOVE, VANISHING_BELOW
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    classification_dataset,
    comparison_verdict,
    fractions,
    known_activations,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import CLASSES, EVAL_ROWS, INPUT_FEATURES, mlp_training_bytes
from leaky.lab.experiments.training import train
from leaky.lab.models import mlp
from leaky.lab.store import RunRecord

__all__ = ["EXPERIMENT", "VanishingConfig", "standard_init"]


@dataclass(frozen=True)
class VanishingConfig:
    """Defaults: the full grid."""

    depths: tuple[int, ...] = (5, 10, 20, 40)  # hidden layers
    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu")
    width: int = 64
    dataset: str = "mnist1d"
    steps: int = 300  # SGD steps
    batch_size: int = 128
    lr: float = 0.05
    log_every: int = 50  # store per-layer gradient norms every this many steps
    stall_drop: float = 0.05  # a network stalls if its loss falls by less than this fraction
    init: str = "standard"  # standard (xavier for saturating, kaiming otherwise), kaiming, xavier
    seeds: int = 3  # the seed rule: a comparison rests on at least 3

    def __post_init__(self) -> None:
        positive(self, "depths", "width", "steps", "batch_size", "log_every", "seeds")
        positive_numbers(self, "lr")
        fractions(self, "stall_drop")
        known_activations(self.activations)
        classification_dataset(self.dataset)
        if self.init not in ("standard", "kaiming", "xavier", "torch"):
            raise ValueError(
                f"Expected init in standard, kaiming, xavier, torch; got {self.init!r}"
            )


def standard_init(activation: str) -> str:
    """Xavier for saturating activations, Kaiming (with the activation's gain) otherwise.

    Examples:
        >>> standard_init("sigmoid"), standard_init("leaky_relu")
        ('xavier', 'kaiming')
    """
    return "xavier" if get_spec(activation).family == "saturating" else "kaiming"


def _cells(config: VanishingConfig) -> list[dict]:
    return [{"activation": a, "depth": d} for a in config.activations for d in config.depths]


def _memory(config: VanishingConfig) -> int:
    # Plain SGD (no optimizer state); the test set goes through in one no-grad pass.
    return mlp_training_bytes(
        INPUT_FEATURES,
        CLASSES,
        depth=max(config.depths),
        width=config.width,
        batch_size=config.batch_size,
        optimizer_states=0,
        no_grad_rows=EVAL_ROWS,
    )


def _grad_norms(model: nn.Module) -> list[float]:
    return [
        float(layer.weight.grad.norm())
        for layer in model.modules()
        if isinstance(layer, nn.Linear) and layer.weight.grad is not None
    ]


def _run(config: VanishingConfig, cell: dict, seed: int) -> RunOutput:
    data = load_named_dataset(config.dataset)
    generator = torch.Generator().manual_seed(seed)
    init = standard_init(cell["activation"]) if config.init == "standard" else config.init
    model = mlp(
        math.prod(data.input_shape),
        data.num_classes or 1,
        depth=cell["depth"],
        width=config.width,
        activation=cell["activation"],
        init=init,  # type: ignore[arg-type]
        generator=generator,
    )
    output = RunOutput()
    losses: list[float] = []

    def record(step: int, value: float) -> None:
        # Called before the batch's update: ``done`` updates came before it, so step 0
        # holds the gradients at initialisation.
        done = step - 1
        losses.append(value)
        if math.isfinite(value) and done % config.log_every == 0:
            norms = _grad_norms(model)
            output.layers += [(done, str(i), "grad_norm", n) for i, n in enumerate(norms)]
            output.metrics.append((done, "loss", value))
            if done == 0:
                output.results["ratio_at_init"] = norms[0] / norms[-1] if norms[-1] else math.nan

    result = train(
        model,
        data,
        # One batch per update, then one more that measures the trained model unchanged.
        steps=config.steps + 1,
        batch_size=config.batch_size,
        lr=config.lr,
        momentum=0.0,  # plain SGD
        generator=generator,
        on_backward=record,
        update_last=False,
    )
    output.diverged = result.diverged
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    first = statistics.mean(losses[: max(1, config.log_every // 5)])
    last = statistics.mean(losses[-max(1, config.log_every // 5) :])
    output.results.update(
        test_accuracy=accuracy,
        initial_loss=first,
        final_loss=last,
        # Stalled: the loss fell by less than stall_drop, or never got clearly below the
        # loss of guessing uniformly, ln(classes).
        stalled=bool(
            output.diverged
            or last > (1 - config.stall_drop) * min(first, math.log(data.num_classes or 2))
        ),
        init=init,
    )
    return output


def _summarize(config: VanishingConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    ratios: dict[tuple[str, int], list[float]] = defaultdict(list)
    stalled: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for run in runs:
        key = (run.cell["activation"], run.cell["depth"])
        ratios[key].append(run.results.get("ratio_at_init", math.nan))
        stalled[key].append(run.results.get("stalled", True))
    if not ratios:
        return []
    deepest = max(d for _, d in ratios)

    def median(key: tuple[str, int]) -> float:
        # A run that diverged before its first log has no ratio: it is no evidence either way.
        finite = [r for r in ratios[key] if math.isfinite(r)]
        return statistics.median(finite) if finite else math.nan

    def verdict(holds: bool, ratio: float) -> str:
        if not math.isfinite(ratio):
            return "inconclusive"
        return "holds" if holds else "does not hold"

    def seeds(key: tuple[str, int]) -> int:
        return sum(math.isfinite(r) for r in ratios[key])

    table = {f"{a} depth={d}": median((a, d)) for a, d in sorted(ratios)}
    stalls = [f"{a} depth={d}" for (a, d), s in sorted(stalled.items()) if all(s)]
    findings = []
    if ("sigmoid", deepest) in ratios:
        r = median(("sigmoid", deepest))
        findings.append(
            Finding(
                "vanishing.sigmoid_vanishes",
                verdict(r < VANISHING_BELOW, r),
                {
                    "depth": deepest,
                    "ratio_first_to_last": r,
                    "threshold": VANISHING_BELOW,
                    "ratios": table,
                    "seeds": seeds(("sigmoid", deepest)),
                },
            )
        )
    if ("leaky_relu", deepest) in ratios:
        r = median(("leaky_relu", deepest))
        healthy = VANISHING_BELOW <= r <= EXPLODING_ABOVE
        findings.append(
            Finding(
                "vanishing.leaky_flows",
                verdict(healthy, r),
                {
                    "depth": deepest,
                    "ratio_first_to_last": r,
                    "low": VANISHING_BELOW,
                    "high": EXPLODING_ABOVE,
                    "seeds": seeds(("leaky_relu", deepest)),
                },
            )
        )
    deep_sigmoid, deep_leaky = ("sigmoid", deepest), ("leaky_relu", deepest)
    if deep_sigmoid in stalled and deep_leaky in stalled:
        sigmoid_stalls, leaky_stalls = all(stalled[deep_sigmoid]), all(stalled[deep_leaky])
        # A comparison of two activations: the seed rule applies.
        paired = min(len(stalled[deep_sigmoid]), len(stalled[deep_leaky]))
        findings.append(
            Finding(
                "vanishing.sigmoid_stalls",
                comparison_verdict(
                    "holds" if sigmoid_stalls and not leaky_stalls else "does not hold", paired
                ),
                {
                    "seeds": paired,
                    "depth": deepest,
                    "sigmoid_stalled": sigmoid_stalls,
                    "leaky_relu_stalled": leaky_stalls,
                    "sigmoid_outcome": "stalled" if sigmoid_stalls else "learned",
                    "leaky_relu_outcome": "stalled" if leaky_stalls else "learned",
                    "all_stalled": stalls,
                    "steps": config.steps,
                },
            )
        )
    return findings


EXPERIMENT = Experiment(
    name="vanishing",
    config=VanishingConfig,
    presets={
        "quick": {"depths": (5, 20), "steps": 100, "log_every": 25},
        "tiny": {
            "depths": (3, 20),
            "activations": ("sigmoid", "leaky_relu"),
            "width": 32,
            "steps": 10,
            "log_every": 5,
        },
    },
    cells=_cells,
    axes=("depths", "activations"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    results={
        "test_accuracy": float,
        "initial_loss": float,
        "final_loss": float,
        "stalled": bool,
        "init": str,
    },
    # Absent when the loss was not finite at the first step (the run diverged at once).
    optional_results={"ratio_at_init": float},
)
