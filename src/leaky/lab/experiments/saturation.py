"""Beyond the article: Glorot & Bengio (2010) on MNIST: the sigmoid saturates its top layer.

Glorot & Bengio trained MLPs of 5 hidden layers of 1,000 units from their "standard
initialization" (weights uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)], zero biases) with
the logistic sigmoid, tanh and softsign, and found that the sigmoid drives especially the
top hidden layer into saturation early in training (its outputs pushed to 0), leaving it
only slowly, and that the sigmoid network ends worse than the tanh and softsign ones.

Here the same network trains on MNIST (:mod:`leaky.data.mnist`; the split is named beside
every figure) with plain minibatch SGD, as theirs did, scaled to minutes on a CPU. Every
``log_every`` steps a :class:`~leaky.diagnosis.monitor.Monitor` reads a fixed probe batch
of training images: each hidden layer's saturated fraction (outputs within
``saturation_margin``, 10% of the output range, of a bound: a sigmoid output below 0.1 or
above 0.9) and mean output, stored per layer and step. Test accuracy at the end.

Two findings, from paired tests over the seeds: the sigmoid network is less accurate than
the tanh and softsign ones; and early in training (the first half of the logs) the
sigmoid's top hidden layer is more saturated than its other hidden layers, with most of its
outputs saturated (:data:`SATURATED_MAJORITY`).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from leaky.data import load_named_dataset
from leaky.data.mnist import find_mnist
from leaky.diagnosis.monitor import Monitor
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    comparison_verdict,
    known_activations,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import mlp_training_bytes
from leaky.lab.experiments.stats import all_hold, mean_ci, paired_comparison
from leaky.lab.experiments.training import evaluate, train
from leaky.lab.models import INITS, mlp
from leaky.lab.store import RunRecord

__all__ = [
    "EXPERIMENT",
    "SATURATED_MAJORITY",
    "SaturationConfig",
    "early_saturation",
    "saturation_by_layer",
]

_SATURATING = ("sigmoid", "tanh", "softsign")
# A layer counts as saturated when at least this share of its outputs is near a bound.
SATURATED_MAJORITY = 0.5


@dataclass(frozen=True)
class SaturationConfig:
    """Defaults: the full experiment (Glorot & Bengio's network, scaled in training time)."""

    activations: tuple[str, ...] = _SATURATING
    depth: int = 5  # hidden layers, as theirs
    width: int = 1000  # units per hidden layer, as theirs
    init: str = "standard"  # theirs: U[-1/sqrt(fan_in), 1/sqrt(fan_in)], zero biases
    steps: int = 3000
    batch_size: int = 32  # theirs: 10
    lr: float = 0.1  # plain SGD, no momentum
    log_every: int = 100  # steps between probes of the saturation
    probe_size: int = 500  # training images the Monitor reads at every probe
    saturation_margin: float = 0.1  # saturated: within this share of the range of a bound
    seeds: int = 3

    def __post_init__(self) -> None:
        positive(self, "depth", "width", "steps", "batch_size", "log_every", "probe_size")
        positive(self, "seeds")
        positive_numbers(self, "lr")
        if not 0 < self.saturation_margin < 0.5:
            raise ValueError(
                f"Expected saturation_margin in (0, 0.5), but got {self.saturation_margin!r}"
            )
        known_activations(self.activations, _SATURATING)
        if self.init not in INITS:
            raise ValueError(f"Expected init among {', '.join(INITS)}, but got {self.init!r}")


def _cells(config: SaturationConfig) -> list[dict]:
    return [{"activation": a} for a in config.activations]


def _memory(config: SaturationConfig) -> int:
    return mlp_training_bytes(
        28 * 28,
        10,
        depth=config.depth,
        width=config.width,
        batch_size=config.batch_size,
        optimizer_states=0,
        no_grad_rows=4096,
    )


def _check_data(config: SaturationConfig) -> None:
    find_mnist(None, data_dir_option=False)


def _probe(model: torch.nn.Module, x: torch.Tensor, margin: float) -> list[tuple[float, float]]:
    """Per hidden layer, in order: (saturated fraction, mean output) on ``x``."""
    watch = Monitor(model, every=1, bins=0, saturation_margin=margin)
    with watch as monitor, torch.no_grad():
        model(x)
    return [
        (s.summary.saturated_fraction or 0.0, s.summary.mean)
        for s in sorted(monitor.report().sites, key=lambda s: int(s.name))
    ]


def _run(config: SaturationConfig, cell: dict, seed: int) -> RunOutput:
    data = load_named_dataset("mnist")
    generator = torch.Generator().manual_seed(seed)
    model = mlp(
        28 * 28,
        10,
        depth=config.depth,
        width=config.width,
        activation=cell["activation"],
        init=config.init,  # type: ignore[arg-type]
        generator=generator,
    )
    probe = data.x_train[: config.probe_size]
    output = RunOutput()

    def record(step: int) -> None:
        probed = _probe(model, probe, config.saturation_margin)
        for layer, (saturated, mean) in enumerate(probed, 1):
            output.layers.append((step, str(layer), "saturated_fraction", saturated))
            output.layers.append((step, str(layer), "mean", mean))

    record(0)
    result = train(
        model,
        data,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        momentum=0.0,
        generator=generator,
        log_every=config.log_every,
        on_log=record,
    )
    output.metrics = [(step, "loss", loss) for step, loss in result.losses]
    output.diverged = result.diverged
    accuracy = math.nan if result.diverged else evaluate(model, data)["accuracy"]
    output.results = {"test_accuracy": accuracy, "data": data.description}
    return output


def saturation_by_layer(run: RunRecord) -> dict[int, list[tuple[int, float]]]:
    """Hidden layer (1 = nearest the input) -> [(step, saturated fraction)] of one run."""
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for step, layer, stat, value in run.layers:
        if stat == "saturated_fraction":
            out[int(layer)].append((int(step), float(value)))
    return {k: sorted(v) for k, v in sorted(out.items())}


def early_saturation(run: RunRecord, steps: int) -> dict[int, float]:
    """Per hidden layer, the largest saturated fraction over the first half of training."""
    return {
        layer: max((v for s, v in points if s <= steps / 2), default=math.nan)
        for layer, points in saturation_by_layer(run).items()
    }


def _by_activation(runs: Sequence[RunRecord]) -> dict[str, dict[int, RunRecord]]:
    out: dict[str, dict[int, RunRecord]] = defaultdict(dict)
    for run in runs:
        out[run.cell["activation"]][run.seed] = run
    return out


def _sigmoid_worst(runs: dict[str, dict[int, RunRecord]]) -> Finding | None:
    sigmoid = runs.get("sigmoid")
    others = [a for a in ("tanh", "softsign") if a in runs]
    if not sigmoid or not others:
        return None

    def accuracy(name: str) -> dict[int, float]:
        return {s: float(r.results.get("test_accuracy", math.nan)) for s, r in runs[name].items()}

    verdicts, against, seeds = [], {}, []
    for other in others:
        common = sorted(set(sigmoid) & set(runs[other]))
        # other minus sigmoid: "holds" when the other is significantly more accurate.
        paired = paired_comparison(
            [accuracy("sigmoid")[s] for s in common], [accuracy(other)[s] for s in common]
        )
        verdicts.append(paired.verdict)
        seeds.append(paired.n)
        against[other] = {
            "difference": paired.mean_difference,
            "ci95": list(paired.ci95),
            "p_value": paired.p_value,
        }
    verdict = all_hold(verdicts)
    means = {a: list(mean_ci(list(accuracy(a).values()))) for a in sorted(runs)}
    return Finding(
        "saturation.sigmoid_worst",
        comparison_verdict(verdict, min(seeds)) if verdict != "inconclusive" else verdict,
        {
            "seeds": min(seeds),
            "against": against,
            "accuracy": means,
            "versus": "; ".join(
                f"{a}: {v['difference']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}], "
                f"p = {v['p_value']:.2g}"
                for a, v in against.items()
            ),
            "means": ", ".join(
                f"{a} {m:.4f} [{lo:.4f}, {hi:.4f}]" for a, (m, lo, hi) in means.items()
            ),
            "smallest_gap": min(v["difference"] for v in against.values()),
        },
    )


def _top_layer_saturates(
    config: SaturationConfig, runs: dict[str, dict[int, RunRecord]]
) -> Finding | None:
    sigmoid = runs.get("sigmoid")
    if not sigmoid:
        return None
    top, rest, numbers_by_layer = [], [], defaultdict(list)
    for run in sigmoid.values():
        early = early_saturation(run, config.steps)
        if len(early) < 2:
            continue
        last = max(early)
        top.append(early[last])
        rest.append(max(v for layer, v in early.items() if layer != last))
        for layer, value in early.items():
            numbers_by_layer[layer].append(value)
    if not top:
        return None
    # Top layer minus the most saturated of the others: "holds" when the top layer leads,
    # and most of its outputs saturated (tiny differences near 0 are no saturation).
    paired = paired_comparison(rest, top)
    by_layer = {str(k): list(mean_ci(v)) for k, v in sorted(numbers_by_layer.items())}
    verdict = paired.verdict
    if verdict == "holds" and statistics.fmean(top) < SATURATED_MAJORITY:
        verdict = "does not hold"
    return Finding(
        "saturation.top_layer_saturates",
        verdict,
        {
            "seeds": paired.n,
            "top_layer": max(numbers_by_layer),
            "early_steps": config.steps // 2,
            "margin": config.saturation_margin,
            "by_layer": ", ".join(f"{k}: {v[0]:.2f}" for k, v in by_layer.items()),
            "saturated_by_layer": by_layer,
            "top_minus_rest": paired.mean_difference,
            "ci95": list(paired.ci95),
            "p_value": paired.p_value,
        },
    )


def _summarize(config: SaturationConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    grouped = _by_activation(runs)
    found: list[Any] = [_sigmoid_worst(grouped), _top_layer_saturates(config, grouped)]
    return [f for f in found if f is not None]


EXPERIMENT = Experiment(
    name="saturation",
    config=SaturationConfig,
    presets={
        "quick": {"steps": 1000, "log_every": 100, "width": 500},
        "tiny": {"steps": 20, "log_every": 5, "width": 32, "probe_size": 64},
    },
    cells=_cells,
    axes=("activations",),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    part="beyond",
    check_data=_check_data,
    results={"test_accuracy": float, "data": str},
)
