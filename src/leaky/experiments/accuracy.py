"""Accuracy: does Leaky ReLU beat ReLU on image, signal and text tasks, beyond seed noise?

The article claims that Leaky ReLU improves image recognition "a lot" and helps language and
speech tasks. Each task is trained with each activation over several seeds (the same seeds,
so data order and weight draws are shared): a 2-D CNN on scikit-learn's 8x8 digits (image),
an MLP and a 1-D CNN on MNIST-1D (a signal task, standing in for speech until a speech task
exists), and a character-level MLP language model on CPython's documentation (text, in bits
per character, lower is better). The summary gives each activation's mean with a 95% t
interval, and a paired Leaky-vs-ReLU comparison per task whose verdict says "not
significant" when the seeds do not separate them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from leaky.data import load_dataset
from leaky.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    known_activations,
    positive,
    positive_numbers,
)
from leaky.experiments.footprint import EVAL_ROWS, training_bytes
from leaky.experiments.stats import mean_ci, paired_comparison
from leaky.experiments.training import evaluate, train
from leaky.models import char_mlp, cnn1d, cnn2d, mlp
from leaky.store import RunRecord

__all__ = ["EXPERIMENT", "TASKS", "AccuracyConfig"]

# task -> (dataset, kind of claim, metric, higher is better)
TASKS = {
    "digits-cnn": ("digits", "image", "accuracy", True),
    "mnist1d-mlp": ("mnist1d", "signal", "accuracy", True),
    "mnist1d-cnn": ("mnist1d", "signal", "accuracy", True),
    "text-lm": ("pydoc-text", "language", "bits_per_char", False),
}


@dataclass(frozen=True)
class AccuracyConfig:
    """Defaults: the full comparison."""

    tasks: tuple[str, ...] = ("digits-cnn", "mnist1d-mlp", "mnist1d-cnn", "text-lm")
    activations: tuple[str, ...] = ("relu", "leaky_relu", "prelu")
    negative_slope: float = 0.01  # Leaky ReLU's slope
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    seeds: int = 5

    def __post_init__(self) -> None:
        positive(self, "steps", "batch_size", "seeds")
        positive_numbers(self, "lr")
        known_activations(self.activations)
        if not self.tasks:
            raise ValueError("Expected at least one task")
        for task in self.tasks:
            if task not in TASKS:
                raise ValueError(f"Expected tasks among {', '.join(TASKS)}; got {task!r}")


# task -> (parameters, activations per sample, widest layer), counted on the models below
# with PReLU (the most parameters) and the 103-character vocabulary of pydoc-text.
_TASK_SIZES = {
    "digits-cnn": (10_922, 5_898, 2_048),
    "mnist1d-mlp": (145_418, 1_586, 256),
    "mnist1d-cnn": (12_842, 7_690, 1_280),
    "text-lm": (127_447, 1_383, 256),
}


def _memory(config: AccuracyConfig) -> int:
    # Adam keeps two tensors per parameter; the architectures are fixed, the batch is not.
    return max(
        training_bytes(
            parameters,
            units,
            widest,
            batch_size=config.batch_size,
            optimizer_states=2,
            no_grad_rows=EVAL_ROWS,
        )
        for parameters, units, widest in (_TASK_SIZES[task] for task in config.tasks)
    )


def _cells(config: AccuracyConfig) -> list[dict]:
    return [{"task": t, "activation": a} for t in config.tasks for a in config.activations]


def _model(task: str, data, activation: str, options: dict, generator: torch.Generator):
    if task == "digits-cnn":
        return cnn2d(
            1,
            (8, 8),
            10,
            depth=2,
            channels=32,
            activation=activation,
            generator=generator,
            **options,
        )
    if task == "mnist1d-mlp":
        return mlp(
            40, 10, depth=3, width=256, activation=activation, generator=generator, **options
        )
    if task == "mnist1d-cnn":
        return cnn1d(
            1, 40, 10, depth=3, channels=32, activation=activation, generator=generator, **options
        )
    return char_mlp(
        data.num_classes,
        data.input_shape[0],
        depth=2,
        width=256,
        activation=activation,
        generator=generator,
        **options,
    )


def _run(config: AccuracyConfig, cell: dict, seed: int) -> RunOutput:
    task, activation = cell["task"], cell["activation"]
    data = load_dataset(TASKS[task][0])
    generator = torch.Generator().manual_seed(seed)
    options = {"negative_slope": config.negative_slope} if activation == "leaky_relu" else {}
    model = _model(task, data, activation, options, generator)
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
    scores = {} if result.diverged else evaluate(model, data)
    return RunOutput(
        metrics=[(step, "loss", loss) for step, loss in result.losses],
        results={"metric": TASKS[task][2], "value": scores.get(TASKS[task][2], math.nan), **scores},
        diverged=result.diverged,
    )


def _summarize(config: AccuracyConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    values: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    diverged: dict[tuple[str, str], int] = defaultdict(int)
    for run in runs:
        key = (run.cell["task"], run.cell["activation"])
        values[key][run.seed] = run.results["value"]
        diverged[key] += run.status == "diverged"
    findings = []
    for task in config.tasks:
        _, kind, metric, higher = TASKS[task]
        relu, leaky = values.get((task, "relu")), values.get((task, "leaky_relu"))
        per_activation = {
            a: list(mean_ci(list(values[(task, a)].values())))
            for a in config.activations
            if (task, a) in values
        }
        if not relu or not leaky:
            continue
        seeds = sorted(set(relu) & set(leaky))
        paired = paired_comparison(
            [relu[s] for s in seeds], [leaky[s] for s in seeds], higher_is_better=higher
        )
        lost = {"relu": diverged[(task, "relu")], "leaky_relu": diverged[(task, "leaky_relu")]}
        # A diverged seed is a result too: with any, the comparison of the rest is no verdict.
        verdict = "inconclusive" if any(lost.values()) else paired.verdict
        findings.append(
            Finding(
                "accuracy.leaky_better",
                verdict,
                {
                    "task": task,
                    "kind": kind,
                    "metric": metric,
                    "difference_leaky_minus_relu": paired.mean_difference,
                    "ci95": list(paired.ci95),
                    "p_value": paired.p_value,
                    "seeds": paired.n,
                    "mean_ci_by_activation": per_activation,
                    "diverged": lost,
                },
            )
        )
    return findings


EXPERIMENT = Experiment(
    name="accuracy",
    config=AccuracyConfig,
    presets={
        "quick": {"steps": 300, "seeds": 5, "activations": ("relu", "leaky_relu")},
        "tiny": {
            "tasks": ("digits-cnn", "text-lm"),
            "steps": 30,
            "seeds": 2,
            "activations": ("relu", "leaky_relu"),
        },
    },
    cells=_cells,
    axes=("tasks", "activations"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
)
