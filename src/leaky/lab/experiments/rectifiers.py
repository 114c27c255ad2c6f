"""Beyond the article: the rectifiers compared on real MNIST digits, with the papers' claims.

An MLP and a small CNN are trained on MNIST (:mod:`leaky.data.mnist`: the full set when
it is on disk, else a seeded, stratified 8,000 / 2,000 split of its 10,000 test images,
which the report names) with each rectifier, over the same seeds: ReLU, Leaky ReLU at the
article's slope 0.01, a "very leaky" ReLU at Xu et al.'s 1/5.5, PReLU (one learned slope
per unit or channel, initialised at 0.25, as He et al.) and RReLU (slopes drawn from
U(1/8, 1/3) in training, their mean 2/11 = 1/5.5 at test time, Xu et al.'s setting).
Each run trains a fixed number of Adam steps and is measured once at the end: nothing is
selected on the test split (no best epoch, no early stopping).

The claims put to the test, each with a paired test over the seeds:

- the article's: Leaky ReLU improves image recognition over ReLU (MLP and CNN);
- Xu et al. (2015): a very leaky slope beats 0.01 and ReLU; RReLU does best; PReLU fits
  the training data best but overfits small data (each activation's train / test gap);
- He et al. (2015): PReLU's learned slopes are larger in the first layers than in the
  deep ones (the slope of every layer after training is stored per run).

The published settings are far larger (Xu et al.: Network in Network on CIFAR-10/100 and
NDSB; He et al.: 14-19 layer networks on ImageNet); here they are scaled to minutes on a
2-core CPU, and the report says so beside every figure.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from leaky.core.spec import get_spec
from leaky.data import load_named_dataset
from leaky.data.mnist import find_mnist
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    comparison_verdict,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import EVAL_ROWS, training_bytes
from leaky.lab.experiments.stats import Paired, all_hold, mean_ci, paired_comparison
from leaky.lab.experiments.training import evaluate, train
from leaky.lab.models import cnn2d, mlp
from leaky.lab.store import RunRecord
from leaky.nn import PReLU

__all__ = [
    "ACTIVATIONS",
    "EXPERIMENT",
    "RectifiersConfig",
    "activation_options",
    "label",
    "prelu_slopes",
]

# The rectifiers compared; "very_leaky_relu" is Leaky ReLU at the config's very_leaky_slope.
ACTIVATIONS = ("relu", "leaky_relu", "very_leaky_relu", "prelu", "rrelu")
MODELS = ("mlp", "cnn")
_IMAGE = (1, 28, 28)
_RESULTS = ("test_accuracy", "train_accuracy", "test_loss", "train_loss", "gap")


@dataclass(frozen=True)
class RectifiersConfig:
    """Defaults: the full sweep (both models, every rectifier, 5 seeds)."""

    models: tuple[str, ...] = MODELS  # mlp: depth x width; cnn: depth conv3 + pool blocks
    activations: tuple[str, ...] = ACTIVATIONS
    very_leaky_slope: float = 1 / 5.5  # Xu et al.'s very leaky ReLU (a = 5.5 in their terms)
    depth: int = 4  # hidden layers (MLP) or conv blocks (CNN): four slopes per PReLU net
    width: int = 256  # MLP units per layer
    channels: int = 16  # CNN channels per block
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3  # Adam
    train_size: int = 0  # training images used (0: the whole training split)
    seeds: int = 5

    def __post_init__(self) -> None:
        positive(self, "depth", "width", "channels", "steps", "batch_size", "seeds")
        positive_numbers(self, "lr", "very_leaky_slope")
        if self.train_size < 0:
            raise ValueError(f"Expected train_size >= 0 (0: all), got {self.train_size!r}")
        for field, allowed in (("models", MODELS), ("activations", ACTIVATIONS)):
            values = getattr(self, field)
            unknown = [v for v in values if v not in allowed]
            if not values or unknown:
                raise ValueError(f"Expected {field} among {', '.join(allowed)}, but got {values!r}")
        if "cnn" in self.models and 28 // 2**self.depth < 1:
            raise ValueError(f"Expected depth <= 4 for the CNN (it pools 28x28), got {self.depth}")


def activation_options(config: RectifiersConfig, name: str) -> tuple[str, dict[str, Any]]:
    """The spec name and options of one of the compared rectifiers.

    Examples:
        >>> activation_options(RectifiersConfig(), "very_leaky_relu")
        ('leaky_relu', {'negative_slope': 0.18181818181818182})
    """
    if name == "very_leaky_relu":
        return "leaky_relu", {"negative_slope": config.very_leaky_slope}
    return name, {}


def _cells(config: RectifiersConfig) -> list[dict]:
    return [{"model": m, "activation": a} for m in config.models for a in config.activations]


def _build(config: RectifiersConfig, cell: dict, generator: torch.Generator) -> nn.Module:
    name, options = activation_options(config, cell["activation"])
    if cell["model"] == "mlp":
        return mlp(
            math.prod(_IMAGE),
            10,
            depth=config.depth,
            width=config.width,
            activation=name,
            generator=generator,
            **options,
        )
    return cnn2d(
        _IMAGE[0],
        _IMAGE[1:],
        10,
        depth=config.depth,
        channels=config.channels,
        activation=name,
        generator=generator,
        **options,
    )


def _memory(config: RectifiersConfig) -> int:
    def build(model: str) -> nn.Module:
        return _build(config, {"model": model, "activation": "prelu"}, torch.Generator())

    sizes = []
    for model in config.models:
        net = build(model)
        parameters = sum(p.numel() for p in net.parameters())
        with torch.no_grad():  # every layer's output, for one sample
            h, units, widest = torch.zeros(1, *_IMAGE), 0, 0
            for layer in net:
                h = layer(h)
                units, widest = units + h.numel(), max(widest, h.numel())
        sizes.append((parameters, units, widest))
    inputs = math.prod(_IMAGE)
    return max(
        training_bytes(
            p,
            u,
            max(w, inputs),
            batch_size=config.batch_size,
            optimizer_states=2,
            no_grad_rows=EVAL_ROWS,
            inputs=inputs,
        )
        for p, u, w in sizes
    )


def _check_data(config: RectifiersConfig) -> None:
    find_mnist(None, data_dir_option=False)


def _run(config: RectifiersConfig, cell: dict, seed: int) -> RunOutput:
    data = load_named_dataset("mnist")
    keep = config.train_size
    if keep and keep < len(data.x_train):
        data = replace(data, x_train=data.x_train[:keep], y_train=data.y_train[:keep])
    generator = torch.Generator().manual_seed(seed)
    model = _build(config, cell, generator)
    result = train(
        model,
        data,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        optimizer="adam",
        generator=generator,
        log_every=max(1, config.steps // 10),
    )
    output = RunOutput(
        metrics=[(step, "loss", loss) for step, loss in result.losses],
        diverged=result.diverged,
    )
    if result.diverged:
        output.results = {**dict.fromkeys(_RESULTS, math.nan), "data": data.description}
        return output
    test = evaluate(model, data)
    # The whole training split, measured as the test split is (eval mode: RReLU at its
    # mean slope, no noise).
    trained = evaluate(model, replace(data, x_test=data.x_train, y_test=data.y_train))
    output.results = {
        "test_accuracy": test["accuracy"],
        "train_accuracy": trained["accuracy"],
        "test_loss": test["loss"],
        "train_loss": trained["loss"],
        "gap": trained["accuracy"] - test["accuracy"],
        "data": data.description,  # which MNIST: the full set, or the test set split
    }
    prelus = [m for m in model.modules() if isinstance(m, PReLU)]
    for index, prelu in enumerate(prelus, 1):  # 1 = the layer nearest the input
        slope = float(prelu.weight.detach().mean())  # over its units or channels
        output.layers.append((config.steps, str(index), "prelu_slope", slope))
    return output


# ------------------------------------------------------------------------------ findings


def _values(runs: Sequence[RunRecord], key: str) -> dict[tuple[str, str], dict[int, float]]:
    # (model, activation) -> seed -> the result (a diverged run: NaN, left out of tests).
    out: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for run in runs:
        out[(run.cell["model"], run.cell["activation"])][run.seed] = float(
            run.results.get(key, math.nan)
        )
    return out


def _paired(a: dict[int, float], b: dict[int, float], higher_is_better: bool = True) -> Paired:
    seeds = sorted(set(a) & set(b))
    return paired_comparison(
        [a[s] for s in seeds], [b[s] for s in seeds], higher_is_better=higher_is_better
    )


def _numbers(paired: Paired) -> dict[str, Any]:
    return {
        "difference": paired.mean_difference,
        "ci95": list(paired.ci95),
        "p_value": paired.p_value,
        "seeds": paired.n,
    }


def _means(values: dict[tuple[str, str], dict[int, float]], model: str) -> dict[str, list[float]]:
    return {
        activation: list(mean_ci(list(seeds.values())))
        for (m, activation), seeds in sorted(values.items())
        if m == model
    }


def label(name: str) -> str:
    """A compared rectifier's name for people.

    Examples:
        >>> label("very_leaky_relu"), label("prelu")
        ('very leaky ReLU', 'PReLU')
    """
    return "very leaky ReLU" if name == "very_leaky_relu" else get_spec(name).title


def _means_text(means: dict[str, list[float]]) -> str:
    return ", ".join(
        f"{label(a)} {m:.4f} [{low:.4f}, {high:.4f}]"
        for a, (m, low, high) in means.items()
        if math.isfinite(m)
    )


def _beats(
    model: str,
    name: str,
    others: Sequence[str],
    accuracy: dict[tuple[str, str], dict[int, float]],
    key: str,
    **extra: Any,
) -> Finding | None:
    # Is `name` significantly more accurate than each of `others` (paired over seeds)?
    if (model, name) not in accuracy or any((model, o) not in accuracy for o in others):
        return None
    comparisons = {o: _paired(accuracy[(model, o)], accuracy[(model, name)]) for o in others}
    verdict = all_hold([c.verdict for c in comparisons.values()])
    seeds = min(c.n for c in comparisons.values())
    return Finding(
        key,
        comparison_verdict(verdict, seeds) if verdict != "inconclusive" else verdict,
        {
            "model": model,
            "activation": name,
            "seeds": seeds,
            "against": {o: _numbers(c) for o, c in comparisons.items()},
            "accuracy": _means(accuracy, model),
            "means": _means_text(_means(accuracy, model)),
            "versus": "; ".join(
                f"{label(o)}: {c.mean_difference:+.4f} [{c.ci95[0]:+.4f}, {c.ci95[1]:+.4f}], "
                f"p = {c.p_value:.2g}"
                for o, c in comparisons.items()
            ),
            "smallest_gain": min(c.mean_difference for c in comparisons.values()),
            **extra,
        },
    )


def _overfits(
    model: str,
    train_loss: dict[tuple[str, str], dict[int, float]],
    gap: dict[tuple[str, str], dict[int, float]],
) -> Finding | None:
    # Xu et al.: PReLU has the lowest training error but overfits small data. Holds when
    # PReLU's mean training loss is the lowest and its train - test accuracy gap is
    # significantly larger than ReLU's (paired).
    if (model, "prelu") not in gap or (model, "relu") not in gap:
        return None
    losses = {a: mean_ci(list(s.values()))[0] for (m, a), s in train_loss.items() if m == model}
    lowest = min((v, a) for a, v in losses.items() if math.isfinite(v))[1]
    paired = _paired(gap[(model, "relu")], gap[(model, "prelu")])
    if paired.verdict == "inconclusive":
        verdict = "inconclusive"
    elif paired.verdict == "does not hold":
        verdict = "does not hold"
    elif lowest != "prelu":
        verdict = "does not hold" if paired.verdict != "holds" else "not significant"
    else:
        verdict = paired.verdict
    return Finding(
        "rectifiers.prelu_overfits",
        verdict,
        {
            "model": model,
            "seeds": paired.n,
            "lowest_train_loss": lowest,
            "train_loss": {a: losses[a] for a in sorted(losses)},
            "gap": _means(gap, model),
            "prelu_minus_relu_gap": _numbers(paired),
            "gaps": _means_text(_means(gap, model)),
            "lowest_train_loss_label": label(lowest),
        },
    )


def prelu_slopes(runs: Sequence[RunRecord], model: str) -> dict[int, dict[int, float]]:
    """Layer (1 = nearest the input) -> seed -> PReLU's mean learned slope after training."""
    slopes: dict[int, dict[int, float]] = defaultdict(dict)
    for run in runs:
        if run.cell["model"] != model or run.cell["activation"] != "prelu":
            continue
        for _, layer, stat, value in run.layers:
            if stat == "prelu_slope":
                slopes[int(layer)][run.seed] = float(value)
    return dict(sorted(slopes.items()))


def _slopes_by_depth(model: str, runs: Sequence[RunRecord]) -> Finding | None:
    # He et al.: the first layer's learned slope is larger than the deepest layer's.
    slopes = prelu_slopes(runs, model)
    if len(slopes) < 2:
        return None
    first, last = slopes[min(slopes)], slopes[max(slopes)]
    paired = _paired(last, first)  # first minus last: positive when the early slope is larger
    return Finding(
        "rectifiers.prelu_slopes_by_depth",
        paired.verdict,
        {
            "model": model,
            "seeds": paired.n,
            "layers": len(slopes),
            "slopes": {str(k): list(mean_ci(list(v.values()))) for k, v in slopes.items()},
            "by_layer": ", ".join(
                f"{k}: {mean_ci(list(v.values()))[0]:.3f}" for k, v in slopes.items()
            ),
            "first_minus_last": _numbers(paired),
        },
    )


def _summarize(config: RectifiersConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    accuracy = _values(runs, "test_accuracy")
    findings: list[Finding | None] = []
    for model in config.models:
        findings += [
            _beats(model, "leaky_relu", ["relu"], accuracy, "rectifiers.leaky_better"),
            _beats(
                model,
                "very_leaky_relu",
                ["relu", "leaky_relu"],
                accuracy,
                "rectifiers.very_leaky_better",
                slope=config.very_leaky_slope,
            ),
            _beats(
                model,
                "rrelu",
                [a for a in config.activations if a != "rrelu"],
                accuracy,
                "rectifiers.rrelu_best",
            ),
            _overfits(model, _values(runs, "train_loss"), _values(runs, "gap")),
            _slopes_by_depth(model, runs),
        ]
    return [f for f in findings if f is not None]


EXPERIMENT = Experiment(
    name="rectifiers",
    config=RectifiersConfig,
    presets={
        "quick": {"steps": 300, "seeds": 3, "channels": 8, "width": 128},
        "tiny": {
            "steps": 20,
            "seeds": 3,
            "depth": 2,
            "width": 16,
            "channels": 4,
            "train_size": 512,
            "activations": ("relu", "leaky_relu", "prelu"),
        },
    },
    cells=_cells,
    axes=("models", "activations"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    part="beyond",
    check_data=_check_data,
    results={**dict.fromkeys(_RESULTS, float), "data": str},
)
