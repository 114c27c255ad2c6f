"""What every experiment provides, and what its summary returns.

An experiment is a question, a config dataclass with commented defaults and presets
(``quick`` runs in about a minute on 2 cores, ``tiny`` in seconds for the tests), a grid of
cells, a function that runs one (config, cell, seed), a rough estimate of one run's peak
memory (checked before a sweep starts, see :mod:`leaky.lab.experiments.footprint`), and a
summary that turns stored runs into :class:`Finding` values: claim, numbers with their
intervals, and a verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leaky.core.spec import get_spec
from leaky.data import BUILTIN, ON_DISK, is_file_task, parse_task_spec
from leaky.data.fsdd import find_fsdd
from leaky.data.mnist import find_mnist
from leaky.lab.store import RunRecord
from leaky.messages import get_messages

__all__ = [
    "MIN_SEEDS",
    "VERDICTS",
    "Experiment",
    "Finding",
    "ResultKind",
    "RunOutput",
    "check_results",
    "classification_data",
    "classification_dataset",
    "comparison_verdict",
    "dataset_on_disk",
    "known_activations",
    "mlp_only",
    "non_negative_numbers",
    "positive",
    "positive_numbers",
    "wilson_interval",
]

VERDICTS = ("holds", "does not hold", "not significant", "inconclusive")

# The seed rule, for every experiment: a verdict that compares activations (or inits, or
# slopes) rests on at least this many seeds, else it is "inconclusive"; a measurement
# verdict may rest on one seed, and then its numbers say so ("seeds": 1) and so does the page.
MIN_SEEDS = 3


def comparison_verdict(verdict: str, seeds: int) -> str:
    """A comparison's verdict under the seed rule: "inconclusive" below :data:`MIN_SEEDS`.

    Examples:
        >>> comparison_verdict("holds", 1), comparison_verdict("holds", 3)
        ('inconclusive', 'holds')
    """
    if verdict not in VERDICTS:
        raise ValueError(f"Expected a verdict in {VERDICTS}, got {verdict!r}")
    return verdict if seeds >= MIN_SEEDS else "inconclusive"


@dataclass(frozen=True)
class Finding:
    """One claim put to the test: the verdict and the numbers behind it.

    ``key`` is ``"<experiment>.<claim>"``; the claim's words live in the message catalogues
    (``findings.<key>.claim`` / ``.detail`` / ``.headline``), filled from ``numbers``, so
    the same finding reads in every language.

    Examples:
        >>> f = Finding("born-dead.leaky_never", "holds", {"born_dead": 0, "trials": 4000})
        >>> f.experiment, f.claim()
        ('born-dead', 'Leaky ReLU networks cannot be born dead')
        >>> f.headline("ja")
        '0 / 4000'
    """

    key: str
    verdict: str
    numbers: dict[str, Any]

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Expected a verdict in {VERDICTS}, got {self.verdict!r}")

    @property
    def experiment(self) -> str:
        """The experiment that tested the claim."""
        return self.key.split(".", 1)[0]

    def _text(self, part: str, lang: str) -> str:

        return get_messages(lang)(f"findings.{self.key}.{part}", **self.numbers)

    def claim(self, lang: str = "en") -> str:
        """The claim, in ``lang``."""
        return self._text("claim", lang)

    def detail(self, lang: str = "en") -> str:
        """The numbers behind the verdict, in one sentence."""
        return self._text("detail", lang)

    def headline(self, lang: str = "en") -> str:
        """The one number a summary table shows."""
        return self._text("headline", lang)

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        """Plain data for JSON: key, experiment, verdict, claim, detail, numbers."""
        return {
            "key": self.key,
            "experiment": self.experiment,
            "verdict": self.verdict,
            "claim": self.claim(lang),
            "detail": self.detail(lang),
            "numbers": self.numbers,
        }


@dataclass
class RunOutput:
    """What one run returns; the runner adds ids, timings and versions."""

    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    layers: list[tuple[int, str, str, float]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    diverged: bool = False


# The kind of one value of a run's results (see Experiment.results), or a tuple of kinds:
# float is any number (an int too, NaN and the infinities included: the store writes NaN as
# NaN), int a whole number, bool true or false, str text; true and false are no numbers.
ResultKind = type | tuple[type, ...]


@dataclass(frozen=True)
class Experiment:
    """An experiment: question, config, presets, grid, one run, summary."""

    name: str
    config: type
    presets: dict[str, dict[str, Any]]
    cells: Callable[[Any], list[dict[str, Any]]]
    run: Callable[[Any, dict[str, Any], int], RunOutput]
    summarize: Callable[[Any, Sequence[RunRecord]], list[Finding]]
    axes: tuple[str, ...] = ()  # config fields that span the grid (each cell names its value)
    seeds: Callable[[Any], Sequence[int]] = field(default=lambda config: range(config.seeds))
    # Rough peak bytes of the config's largest run (parameters, gradients, optimizer state,
    # activations); None: no estimate, no check.
    memory: Callable[[Any], int] | None = None
    # Checks that the data a config needs is on disk (raises ValueError saying how to get
    # it), before a sweep starts; None: everything it needs ships with leaky.
    check_data: Callable[[Any], None] | None = None
    # The grid's cell count without building it, where the grid is not the product of its
    # axes (accuracy: the speech tasks run extra activations); None: the product.
    count_cells: Callable[[Any], int] | None = None
    # The config field that may name the user's data ("file:..." specs, see
    # leaky.data.user_task): "tasks" or "dataset"; None: built-in data only.
    user_data: str | None = None
    # The results every run writes, key -> kind (see ResultKind), and the keys a run may
    # leave out (a diverged run's, another task's, those an older leaky did not write).
    # A stored run whose results differ (see check_results) is damaged: left out of the
    # report and computed again. Keys declared in neither are left alone.
    results: Mapping[str, ResultKind] = field(default_factory=dict)
    optional_results: Mapping[str, ResultKind] = field(default_factory=dict)
    # "article": a claim of the article itself (the demo runs it); "beyond": a published
    # claim beyond it, on data read from disk (MNIST), run from its own command.
    part: str = "article"

    def data_specs(self, config: Any) -> tuple[str, ...]:
        """The user-data specs (``file:...``) this config reads, in order, once each."""
        if self.user_data is None:
            return ()
        value = getattr(config, self.user_data)
        values = value if isinstance(value, tuple) else (value,)
        return tuple(dict.fromkeys(v for v in values if is_file_task(v)))

    def question(self, lang: str = "en") -> str:
        """The question the experiment answers (from the message catalogue)."""
        return get_messages(lang)(f"experiments.{self.name}.question")


_KIND_WORDS = {float: "a number", int: "a whole number", bool: "true or false", str: "text"}


def _is_kind(value: object, kind: ResultKind) -> bool:
    if isinstance(kind, tuple):
        return any(_is_kind(value, k) for k in kind)
    if isinstance(value, bool) or kind is bool:  # bool is an int in Python, not here
        return isinstance(value, bool) and kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _kind_words(kind: ResultKind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_KIND_WORDS.get(k, k.__name__) for k in kinds)


def check_results(experiment: Experiment, results: object) -> str | None:
    """What is wrong with one run's ``results`` for ``experiment``, or None.

    Right results hold every key of :attr:`Experiment.results`, and each declared key
    (:attr:`Experiment.optional_results` too) holds a value of its kind. The store, the
    runner and the report all judge a stored run by this one function.

    Examples:
        >>> from leaky.lab.experiments import get_experiment
        >>> born_dead = get_experiment("born-dead")
        >>> ok = {"born_dead": 3, "trials": 10, "probability": 0.3, "ci_low": 0.1,
        ...       "ci_high": float("nan")}
        >>> check_results(born_dead, ok) is None
        True
        >>> check_results(born_dead, {**ok, "trials": 10.5})
        'Expected trials in its results to be a whole number, but got 10.5'
        >>> check_results(born_dead, {"grad_norms": "abc"})
        'Expected its results to hold born_dead (a whole number), but it is missing'
    """
    if not isinstance(results, dict):
        return f"Expected its results to be a JSON object, but got {type(results).__name__}"
    declared = {**experiment.optional_results, **experiment.results}
    for key, value in results.items():
        if key in declared and not _is_kind(value, declared[key]):
            shown = json.dumps(value, allow_nan=True, default=repr)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            return (
                f"Expected {key} in its results to be {_kind_words(declared[key])}, but got {shown}"
            )
    for key, kind in experiment.results.items():
        if key not in results:
            return f"Expected its results to hold {key} ({_kind_words(kind)}), but it is missing"
    return None


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and 1).

    Examples:
        >>> low, high = wilson_interval(0, 1000)
        >>> low, round(high, 4)
        (0.0, 0.0038)
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no rounding dust
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def positive(config: Any, *names: str) -> None:
    """Check that config fields (numbers or tuples of numbers) are all >= 1."""
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(v < 1 for v in values):
            raise ValueError(f"Expected {name} >= 1, got {value!r}")


def known_activations(names: Sequence[str], allowed: Sequence[str] | None = None) -> None:
    """Check activation names against the spec table (and an experiment's own list)."""
    if not names:
        raise ValueError("Expected at least one activation")
    for name in names:
        get_spec(name)
        if allowed is not None and name not in allowed:
            raise ValueError(f"Expected activations among {', '.join(allowed)}, got {name!r}")


def classification_dataset(name: str) -> None:
    """Check that ``name`` is a classification task (what these experiments train).

    The built-in ones, ``fsdd`` (spoken digits read from disk, see :mod:`leaky.data.fsdd`)
    and ``mnist`` (handwritten digits read from disk, see :mod:`leaky.data.mnist`).
    """
    if name in ON_DISK:
        return
    if name not in BUILTIN:
        valid = ", ".join([*BUILTIN, *ON_DISK])
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {valid}")
    if BUILTIN[name].task != "classification":
        classification = [n for n, info in BUILTIN.items() if info.task == "classification"]
        raise ValueError(
            f"Expected a classification dataset ({', '.join(classification)}), but {name!r} is "
            f"a {BUILTIN[name].task} task"
        )


def dataset_on_disk(config: Any) -> None:
    """Check, before a sweep starts, that a config's ``dataset`` read from disk is there.

    ``fsdd`` and ``mnist`` are looked for where :func:`leaky.data.fsdd.find_fsdd` and
    :func:`leaky.data.mnist.find_mnist` look; a missing copy is one ``ValueError`` that
    says where it looked and how to get it. Built-in tasks and the user's files (checked
    when their spec is read) need nothing here.
    """
    dataset = getattr(config, "dataset", None)
    if dataset == "fsdd":
        find_fsdd(None, data_dir_option=False)  # these configs have no data_dir
    elif dataset == "mnist":
        find_mnist(None, data_dir_option=False)


def classification_data(name: str) -> None:
    """Check a built-in classification task's name, or the spelling of a user-data spec."""
    if is_file_task(name):
        parse_task_spec(name)
    else:
        classification_dataset(name)


def mlp_only(name: str) -> None:
    """Refuse a user-data spec that asks for a CNN in an experiment that trains MLPs."""
    if is_file_task(name) and parse_task_spec(name).model != "mlp":
        raise ValueError(
            f"Expected model=mlp in {name!r}: this experiment trains an MLP (model=cnn is for "
            "the accuracy experiment)"
        )


def positive_numbers(config: Any, *names: str) -> None:
    """Check that config fields (numbers or non-empty tuples of numbers) are all > 0."""
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(not v > 0 for v in values):
            raise ValueError(f"Expected {name} > 0, got {value!r}")


def non_negative_numbers(config: Any, *names: str) -> None:
    """Check that config fields are finite numbers >= 0 (0 allowed: an absent term).

    Examples:
        >>> from types import SimpleNamespace
        >>> non_negative_numbers(SimpleNamespace(bias_std=0.0), "bias_std")
        >>> non_negative_numbers(SimpleNamespace(bias_std=-1.0), "bias_std")
        Traceback (most recent call last):
        ...
        ValueError: Expected bias_std >= 0, got -1.0
    """
    for name in names:
        value = getattr(config, name)
        if not 0 <= value < math.inf:
            raise ValueError(f"Expected {name} >= 0, got {value!r}")


def fractions(config: Any, *names: str) -> None:
    """Check that config fields are fractions strictly between 0 and 1."""
    for name in names:
        value = getattr(config, name)
        if not 0 < value < 1:
            raise ValueError(f"Expected {name} between 0 and 1 (a fraction), got {value!r}")
