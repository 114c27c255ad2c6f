"""Accuracy: does Leaky ReLU beat ReLU on image, signal, speech and text tasks, beyond seed noise?

The article claims that Leaky ReLU improves image recognition "a lot" and helps language and
speech tasks. Each task is trained with each activation over several seeds (the same seeds,
so data order and weight draws are shared): a 2-D CNN on scikit-learn's 8x8 digits (image),
MNIST-1D's published MLP and CNN baselines with their published recipe (Greydanus 2020:
Adam at 1e-2, batches of 100 in the training set's order, 6,000 steps; MLP about 68%, CNN
about 94%; a synthetic signal task), a 2-D CNN over log-mel spectrograms and an MLP over
time-pooled ones on the Free Spoken Digit Dataset (real speech, read from disk: see
:mod:`leaky.data.fsdd`; official or speaker-held-out split), and a character-level MLP
language model on CPython's documentation (text, in bits per character, lower is better).
Real MNIST digits (``mnist-mlp``, ``mnist-cnn``; read from disk, see :mod:`leaky.data.mnist`)
join when asked for (``--set tasks=...``); the rectifiers experiment compares more rectifiers
on them. The user's own data joins as a task spec ``file:path`` (see
:mod:`leaky.data.user_task`).
The summary gives each activation's mean with a 95% t interval, and a paired
Leaky-vs-ReLU comparison per task whose verdict says "not significant" when the seeds do not
separate them. The speech tasks also run tanh (``speech_activations``): Maas et al. (2013)
found Leaky ReLU and ReLU within noise of each other on Switchboard, both well ahead of
tanh, and the speech summary puts that to the test too.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from leaky.core.spec import get_spec
from leaky.data import (
    BUILTIN,
    Dataset,
    is_file_task,
    load_dataset_or_file,
    load_named_dataset,
    parse_task_spec,
)
from leaky.data.fsdd import FSDD_SPEAKERS, find_fsdd
from leaky.data.log_mel import MelSettings
from leaky.data.mnist import find_mnist
from leaky.lab.experiments.base import (
    Experiment,
    Finding,
    RunOutput,
    known_activations,
    positive,
    positive_numbers,
)
from leaky.lab.experiments.footprint import EVAL_ROWS, ModelSizes, model_sizes, training_bytes
from leaky.lab.experiments.stats import all_hold, mean_ci, paired_comparison
from leaky.lab.experiments.training import evaluate, train
from leaky.lab.models import (
    char_mlp,
    cnn1d,
    cnn2d,
    mlp,
    mnist1d_conv_base,
    mnist1d_mlp_base,
    pooled_mlp,
)
from leaky.lab.store import RunRecord

__all__ = [
    "EXPERIMENT",
    "MNIST_TASKS",
    "SPEECH_TASKS",
    "TASKS",
    "AccuracyConfig",
    "AccuracyTask",
    "ModelBuilder",
    "Recipe",
    "get_task",
    "recipe",
    "speech_tasks_present",
]


@dataclass(frozen=True)
class Recipe:
    """How a task trains, unless the config says otherwise: steps, batch, Adam's lr, order."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    order: str = "random"  # batches drawn at random, or "cycle": the training set in order


class ModelBuilder(Protocol):
    """Makes a task's model for samples of ``input_shape`` and ``classes`` outputs."""

    def __call__(
        self,
        input_shape: tuple[int, ...],
        classes: int,
        *,
        activation: str,
        generator: torch.Generator | None,
        **options: Any,
    ) -> nn.Module:
        """The model, initialised from ``generator`` for ``activation`` and its options."""
        ...


@dataclass(frozen=True)
class AccuracyTask:
    """One task of the accuracy experiment: its data, the claim it tests, recipe and model.

    Args:
        name: the task's name in ``tasks`` (a ``file:`` spec for the user's data).
        dataset: what :func:`leaky.data.load_dataset_or_file` reads (``fsdd``: the config's folder).
        kind: the article's claim it tests: image, signal, language, speech or user_data.
        metric: the test metric the comparison reads (``accuracy``, ``bits_per_char``).
        build: makes the model; called with the data's input shape and class count.
        higher_is_better: whether a larger ``metric`` is better. Default: ``True``.
        recipe: steps, batch, lr and order unless the config sets them. Default: ``Recipe()``.
        input_shape: one sample's shape in ``dataset`` and ``classes`` its classes, so the
            model can be sized without loading the data; ``None``: known from the data
            only (the user's), sized like the largest built-in task. Default: ``None``.
        classes: see ``input_shape``. Default: 10.
    """

    name: str
    dataset: str
    kind: str
    metric: str
    build: ModelBuilder
    higher_is_better: bool = True
    recipe: Recipe = Recipe()
    input_shape: tuple[int, ...] | None = None
    classes: int = 10

    @functools.cached_property
    def sizes(self) -> ModelSizes:
        """Parameters, units per sample and widest layer of the model with PReLU.

        PReLU has the most parameters of the activations; the count is made once per row.

        Examples:
            >>> TASKS["mnist1d-mlp"].sizes  # the published 15,210 and 2 x 100 PReLU slopes
            ModelSizes(parameters=15410, units_per_sample=550, widest_layer=100)
        """
        shape = self.input_shape
        if shape is None:
            return max((row.sizes for row in TASKS.values()), key=lambda s: s.parameters)
        info = BUILTIN.get(self.dataset)
        tokens = info is not None and info.task == "language"
        return model_sizes(
            lambda: self.build(shape, self.classes, activation="prelu", generator=None),
            shape,
            dtype=torch.long if tokens else torch.float32,
        )


# Greydanus (2020), the mnist1d repository's notebooks/train.py: Adam, lr 1e-2, batches of
# 100 taken in order, 6,000 steps (its classification notebook's runs).
_PUBLISHED_MNIST1D = Recipe(steps=6000, batch_size=100, lr=1e-2, order="cycle")
_MEL = MelSettings()
_SPECTROGRAM = (1, _MEL.n_mels, _MEL.frames)
_MNIST1D = (1, 40)
_MNIST = (1, 28, 28)

# The built-in tasks. ``kw`` is ``activation``, ``generator`` and the activation's options.
TASKS: dict[str, AccuracyTask] = {
    row.name: row
    for row in (
        AccuracyTask(
            "digits-cnn",
            "digits",
            "image",
            "accuracy",
            lambda shape, classes, **kw: cnn2d(
                shape[0], shape[1:], classes, depth=2, channels=32, **kw
            ),
            input_shape=(1, 8, 8),
        ),
        # MNIST-1D's published baselines draw from torch's global generator, as published.
        AccuracyTask(
            "mnist1d-mlp",
            "mnist1d",
            "signal",
            "accuracy",
            lambda shape, classes, generator, **kw: mnist1d_mlp_base(
                math.prod(shape), classes, **kw
            ),
            recipe=_PUBLISHED_MNIST1D,
            input_shape=_MNIST1D,
        ),
        AccuracyTask(
            "mnist1d-cnn",
            "mnist1d",
            "signal",
            "accuracy",
            lambda shape, classes, generator, **kw: mnist1d_conv_base(shape[-1], classes, **kw),
            recipe=_PUBLISHED_MNIST1D,
            input_shape=_MNIST1D,
        ),
        AccuracyTask(
            "text-lm",
            "pydoc-text",
            "language",
            "bits_per_char",
            lambda shape, classes, **kw: char_mlp(classes, shape[0], depth=2, width=256, **kw),
            higher_is_better=False,
            input_shape=(8,),  # the 8 characters before the next one
            classes=103,  # pydoc-text's vocabulary
        ),
        # The models MNIST-1D had here before its published baselines: kept for comparison.
        AccuracyTask(
            "mnist1d-mlp-3x256",
            "mnist1d",
            "signal",
            "accuracy",
            lambda shape, classes, **kw: mlp(math.prod(shape), classes, depth=3, width=256, **kw),
            input_shape=_MNIST1D,
        ),
        AccuracyTask(
            "mnist1d-cnn-3x32",
            "mnist1d",
            "signal",
            "accuracy",
            lambda shape, classes, **kw: cnn1d(*shape, classes, depth=3, channels=32, **kw),
            input_shape=_MNIST1D,
        ),
        # Real MNIST digits read from disk (leaky data fetch mnist; the checked copy of its
        # test set is split 8,000 / 2,000): an MLP and a small CNN.
        AccuracyTask(
            "mnist-mlp",
            "mnist",
            "image",
            "accuracy",
            lambda shape, classes, **kw: mlp(math.prod(shape), classes, depth=2, width=256, **kw),
            input_shape=_MNIST,
        ),
        AccuracyTask(
            "mnist-cnn",
            "mnist",
            "image",
            "accuracy",
            lambda shape, classes, **kw: cnn2d(
                shape[0], shape[1:], classes, depth=2, channels=32, **kw
            ),
            input_shape=_MNIST,
        ),
        # (1, mel bands, frames) -> three conv3 + pool blocks -> 10 digits
        AccuracyTask(
            "fsdd-cnn",
            "fsdd",
            "speech",
            "accuracy",
            lambda shape, classes, **kw: cnn2d(
                shape[0], shape[1:], classes, depth=3, channels=16, **kw
            ),
            input_shape=_SPECTROGRAM,
        ),
        # Each mel band averaged over 4 spans of time.
        AccuracyTask(
            "fsdd-mlp",
            "fsdd",
            "speech",
            "accuracy",
            lambda shape, classes, **kw: pooled_mlp(
                shape[1:], classes, segments=4, depth=2, width=128, **kw
            ),
            input_shape=_SPECTROGRAM,
        ),
    )
}
SPEECH_TASKS: tuple[str, ...] = tuple(t for t, row in TASKS.items() if row.kind == "speech")
MNIST_TASKS: tuple[str, ...] = tuple(t for t, row in TASKS.items() if row.dataset == "mnist")


def _user_model(
    model: str,
    shape: tuple[int, ...],
    classes: int,
    *,
    activation: str,
    generator: torch.Generator | None,
    **options: Any,
) -> nn.Module:
    if model == "mlp":
        return mlp(
            math.prod(shape),
            classes,
            depth=2,
            width=256,
            activation=activation,
            generator=generator,
            **options,
        )
    # A CNN (shapes checked by leaky.data.user_task.check_input_shape): 1-D over
    # (channels, length), a lone (length) getting one channel; 2-D over (channels, h, w).
    if len(shape) == 1:
        body = cnn1d(1, shape[0], classes, activation=activation, generator=generator, **options)
        return torch.nn.Sequential(torch.nn.Unflatten(1, (1, shape[0])), body)
    if len(shape) == 2:
        return cnn1d(*shape, classes, activation=activation, generator=generator, **options)
    return cnn2d(
        shape[0], shape[1:], classes, activation=activation, generator=generator, **options
    )


def get_task(task: str) -> AccuracyTask:
    """The row of a built-in task, or one made for a ``file:`` spec (the user's data).

    Examples:
        >>> get_task("text-lm").metric, get_task("file:d.npz?model=cnn").kind
        ('bits_per_char', 'user_data')
    """
    if is_file_task(task):
        user = parse_task_spec(task)
        build = functools.partial(_user_model, user.model)
        return AccuracyTask(task, task, "user_data", user.metric, build)
    return TASKS[task]


def recipe(config: AccuracyConfig, task: str) -> Recipe:
    """The task's recipe with the config's steps / batch_size / lr where they are set.

    Examples:
        >>> recipe(AccuracyConfig(), "mnist1d-mlp").steps, recipe(AccuracyConfig(), "text-lm").lr
        (6000, 0.001)
    """
    base = get_task(task).recipe
    return Recipe(
        steps=base.steps if config.steps is None else config.steps,
        batch_size=base.batch_size if config.batch_size is None else config.batch_size,
        lr=base.lr if config.lr is None else config.lr,
        order=base.order,
    )


@dataclass(frozen=True)
class AccuracyConfig:
    """Defaults: the full comparison."""

    tasks: tuple[str, ...] = ("digits-cnn", "mnist1d-mlp", "mnist1d-cnn", "text-lm")
    activations: tuple[str, ...] = ("relu", "leaky_relu", "prelu")
    negative_slope: float = 0.01  # Leaky ReLU's slope
    steps: int | None = None  # none: each task's recipe (2,000; MNIST-1D 6,000 as published)
    batch_size: int | None = None  # none: each task's recipe (128; MNIST-1D 100)
    lr: float | None = None  # Adam; none: each task's recipe (1e-3; MNIST-1D 1e-2)
    seeds: int = 5
    # The speech tasks (fsdd-cnn, fsdd-mlp) read FSDD from disk: `leaky data fetch fsdd`;
    # mnist-mlp and mnist-cnn read MNIST: `leaky data fetch mnist`.
    speech_activations: tuple[str, ...] = ("tanh",)  # run on the speech tasks as well
    speech_steps: int = 1000  # the speech tasks' steps (2,700 training recordings)
    data_dir: str = ""  # FSDD's folder; "": $LEAKY_DATA_DIR/fsdd, then ~/.cache/leaky/fsdd
    holdout_speaker: str = ""  # "": FSDD's official split; a speaker: test on that voice only

    def __post_init__(self) -> None:
        positive(
            self,
            "seeds",
            "speech_steps",
            *(k for k in ("steps", "batch_size") if getattr(self, k) is not None),
        )
        if self.lr is not None:
            positive_numbers(self, "lr")
        known_activations(self.activations)
        if self.speech_activations:
            known_activations(self.speech_activations)
        if not self.tasks:
            raise ValueError("Expected at least one task")
        for task in self.tasks:
            if is_file_task(task):
                parse_task_spec(task)
            elif task not in TASKS:
                raise ValueError(
                    f"Expected tasks among {', '.join(TASKS)} or file:PATH (your data); "
                    f"got {task!r}"
                )
        if self.holdout_speaker and self.holdout_speaker not in FSDD_SPEAKERS:
            raise ValueError(
                f"Expected holdout_speaker among FSDD's speakers ({', '.join(FSDD_SPEAKERS)}) "
                f"or empty for the official split, but got {self.holdout_speaker!r}"
            )


def speech_tasks_present(data_dir: str = "") -> bool:
    """Whether FSDD can be found, so the speech tasks can run (``leaky demo`` asks)."""
    try:
        find_fsdd(data_dir or None)
    except ValueError:
        return False
    return True


def _check_data(config: AccuracyConfig) -> None:
    # Before a store is opened: missing recordings are one message that says how to get them.
    if any(task in SPEECH_TASKS for task in config.tasks):
        find_fsdd(config.data_dir or None)
    if any(task in MNIST_TASKS for task in config.tasks):
        find_mnist(None, data_dir_option=False)  # data_dir is FSDD's


def _activations(config: AccuracyConfig, task: str) -> tuple[str, ...]:
    """The activations a task runs: the speech tasks add ``speech_activations``."""
    extra = config.speech_activations if task in SPEECH_TASKS else ()
    return tuple(dict.fromkeys((*config.activations, *extra)))


def _memory(config: AccuracyConfig) -> int:
    # Adam keeps two tensors per parameter; the architectures are fixed, the batch is not.
    return max(
        training_bytes(
            *get_task(task).sizes,
            batch_size=recipe(config, task).batch_size,
            optimizer_states=2,
            no_grad_rows=EVAL_ROWS,
        )
        for task in config.tasks
    )


def _cells(config: AccuracyConfig) -> list[dict]:
    return [{"task": t, "activation": a} for t in config.tasks for a in _activations(config, t)]


def _load(row: AccuracyTask, config: AccuracyConfig) -> Dataset:
    if row.dataset == "fsdd":  # read from disk: the config says where, and which split
        return load_named_dataset(
            "fsdd", data_dir=config.data_dir, holdout_speaker=config.holdout_speaker
        )
    return load_dataset_or_file(row.dataset)


def _run(config: AccuracyConfig, cell: dict, seed: int) -> RunOutput:
    task, activation = cell["task"], cell["activation"]
    row = get_task(task)
    speech = row.kind == "speech"
    data = _load(row, config)
    generator = torch.Generator().manual_seed(seed)
    options = {"negative_slope": config.negative_slope} if activation == "leaky_relu" else {}
    model = row.build(
        data.input_shape, data.num_classes, activation=activation, generator=generator, **options
    )
    plan = recipe(config, task)
    steps = config.speech_steps if speech else plan.steps
    result = train(
        model,
        data,
        steps=steps,
        batch_size=plan.batch_size,
        lr=plan.lr,
        optimizer="adam",
        generator=generator,
        log_every=max(1, steps // 10),
        order=plan.order,
    )
    scores = {} if result.diverged else evaluate(model, data)
    # Which recordings a speech result came from (a hash of every file's SHA-256).
    source = {"data_sha256": data.source.rsplit("sha256 ", 1)[-1]} if speech else {}
    return RunOutput(
        metrics=[(step, "loss", loss) for step, loss in result.losses],
        results={
            "metric": row.metric,
            "value": scores.get(row.metric, math.nan),
            **scores,
            **source,
        },
        diverged=result.diverged,
    )


def _means_text(per_activation: dict[str, list[float]]) -> str:
    """``ReLU 0.969 [0.966, 0.971], ...``: each activation's mean and 95% interval.

    Examples:
        >>> _means_text({"relu": [0.5, 0.4, 0.6], "tanh": [0.25, float("nan"), float("nan")]})
        'ReLU 0.500 [0.400, 0.600], tanh 0.250'
    """
    parts = []
    for name, (mean, low, high) in per_activation.items():
        interval = "" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]"
        parts.append(f"{get_spec(name).title} {mean:.3f}{interval}")
    return ", ".join(parts)


def _summarize(config: AccuracyConfig, runs: Sequence[RunRecord]) -> list[Finding]:
    values: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    diverged: dict[tuple[str, str], int] = defaultdict(int)
    for run in runs:
        key = (run.cell["task"], run.cell["activation"])
        values[key][run.seed] = run.results["value"]
        diverged[key] += run.status == "diverged"
    findings = []
    for task in config.tasks:
        row = get_task(task)
        kind, metric = row.kind, row.metric
        if kind == "speech" and config.holdout_speaker:
            kind = "speech_held_out"
        relu, leaky = values.get((task, "relu")), values.get((task, "leaky_relu"))
        per_activation = {
            a: list(mean_ci(list(values[(task, a)].values())))
            for a in _activations(config, task)
            if (task, a) in values
        }
        if not relu or not leaky:
            continue
        seeds = sorted(set(relu) & set(leaky))
        paired = paired_comparison(
            [relu[s] for s in seeds],
            [leaky[s] for s in seeds],
            higher_is_better=row.higher_is_better,
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
                    "means": _means_text(per_activation),
                    "diverged": lost,
                },
            )
        )
        if task in SPEECH_TASKS and "tanh" in _activations(config, task):
            finding = _rectifiers_beat_tanh(task, kind, values, diverged)
            if finding is not None:
                findings.append(finding)
    return findings


def _rectifiers_beat_tanh(
    task: str,
    kind: str,
    values: dict[tuple[str, str], dict[int, float]],
    diverged: dict[tuple[str, str], int],
) -> Finding | None:
    """Maas et al. (2013): ReLU and Leaky ReLU both well ahead of tanh in speech recognition."""
    tanh = values.get((task, "tanh"))
    if not tanh:
        return None
    numbers: dict = {"task": task, "kind": kind}
    verdicts = []
    for name in ("relu", "leaky_relu"):
        rectifier = values.get((task, name))
        if not rectifier:
            return None
        seeds = sorted(set(rectifier) & set(tanh))
        paired = paired_comparison([tanh[s] for s in seeds], [rectifier[s] for s in seeds])
        short = "relu" if name == "relu" else "leaky"
        numbers |= {
            f"{short}_minus_tanh": paired.mean_difference,
            f"{short}_ci95": list(paired.ci95),
            f"{short}_p_value": paired.p_value,
        }
        numbers["seeds"] = min(numbers.get("seeds", paired.n), paired.n)
        verdicts.append(paired.verdict)
    numbers["diverged"] = {a: diverged[(task, a)] for a in ("relu", "leaky_relu", "tanh")}
    diverged = any(numbers["diverged"].values())
    verdict = "inconclusive" if diverged else all_hold(verdicts)
    return Finding("accuracy.rectifiers_beat_tanh", verdict, numbers)


EXPERIMENT = Experiment(
    name="accuracy",
    config=AccuracyConfig,
    presets={
        "quick": {
            "steps": 300,
            "seeds": 5,
            "activations": ("relu", "leaky_relu"),
            "speech_activations": (),
            "speech_steps": 120,
        },
        "tiny": {
            "tasks": ("digits-cnn", "text-lm"),
            "steps": 30,
            "seeds": 2,
            "activations": ("relu", "leaky_relu"),
            "speech_activations": (),
            "speech_steps": 20,
        },
    },
    cells=_cells,
    axes=("tasks", "activations", "speech_activations"),
    run=_run,
    summarize=_summarize,
    memory=_memory,
    user_data="tasks",
    check_data=_check_data,
    count_cells=lambda config: sum(len(_activations(config, t)) for t in config.tasks),
    results={"metric": str, "value": float},  # value: NaN when the run diverged
    # The test scores (see training.evaluate; none when the run diverged), and for a
    # speech task the hash of the recordings.
    optional_results={
        "accuracy": float,
        "loss": float,
        "bits_per_char": float,
        "mse": float,
        "data_sha256": str,
    },
)
