"""The playground's lessons: the article's story, one preset and one measured point per step.

Each :class:`Lesson` is data: the settings it opens with (over
:class:`~leaky.playground.params.PlaygroundParams`' defaults), how many training steps
show its point, and the :class:`Check` es that say, from the page's own view
(:meth:`~leaky.playground.session.TrainingSession.snapshot`), that the point holds. Its
words (title, story, what to try, what to watch) come from the message catalogues under
``playground.lessons.<key>``. The page reads the lessons from ``GET /api/lessons``, and
the tests hold every lesson to its checks, in a session and in a real browser.

Examples:
    >>> [lesson.key for lesson in LESSONS][:3]
    ['vanishing', 'relu_keeps', 'relu_dies']
    >>> view = {"networks": [{"activation": "relu", "dead": [0.5, 0.25]}]}
    >>> measure(view, Check("dead", "relu", at_least=0.3))
    0.375
    >>> Check("dead", "relu", at_least=0.3).holds(view)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LESSONS", "METRICS", "Check", "Lesson", "get_lesson", "measure"]

# What a check can read from a view, by name.
METRICS: tuple[str, ...] = (
    "gradient_ratio",  # first layer's weight-gradient norm over the last layer's
    "dead",  # share of hidden units dead, over all hidden layers
    "slope_change",  # PReLU: largest distance of a layer's mean slope from its initial slope
    "born_dead",  # Monte Carlo share of networks born dead at this width and depth
    "train_loss",  # loss on the training points
)


@dataclass(frozen=True)
class Check:
    """One number of the view that shows a lesson's point, and the bound it must pass.

    Args:
        metric: one of :data:`METRICS`.
        activation: the network it is read on, by activation name (``"relu"``); for
            ``born_dead``, the estimate's row (``"relu"`` or ``"leaky_relu"``).
        at_most: the largest value that shows the point. Default: None (no bound)
        at_least: the smallest value that shows the point. Default: None (no bound)
    """

    metric: str
    activation: str
    at_most: float | None = None
    at_least: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(
                f"Expected `metric` to be one of {', '.join(METRICS)}, but got {self.metric!r}"
            )
        if self.at_most is None and self.at_least is None:
            raise ValueError("Expected `at_most` or `at_least`: a check needs a bound")

    def holds(self, view: dict[str, Any]) -> bool:
        """Whether the view shows the point (False while its number is unknown)."""
        value = measure(view, self)
        if value is None:
            return False
        if self.at_most is not None and value > self.at_most:
            return False
        return self.at_least is None or value >= self.at_least

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "metric": self.metric,
            "activation": self.activation,
            "at_most": self.at_most,
            "at_least": self.at_least,
        }


@dataclass(frozen=True)
class Lesson:
    """One step of the story: its settings, its training, and the checks that show its point.

    Args:
        key: names its words in the catalogue (``playground.lessons.<key>``) and its link.
        preset: settings that differ from the playground's defaults.
        steps: training steps after which every check holds (the page's "train" button).
        checks: what shows the point, read from the view after ``steps`` steps.
    """

    key: str
    preset: dict[str, Any]
    steps: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for the page."""
        return {
            "key": self.key,
            "preset": dict(self.preset),
            "steps": self.steps,
            "checks": [check.to_dict() for check in self.checks],
        }


def _network(view: dict[str, Any], activation: str) -> dict[str, Any] | None:
    for network in view.get("networks", []):
        if network.get("activation") == activation:
            return network
    return None


def measure(view: dict[str, Any], check: Check) -> float | None:
    """The number ``check`` reads from a view (a snapshot); None when it is not there yet.

    Examples:
        >>> view = {"networks": [{"activation": "sigmoid", "gradients": {"ratio": 2e-4}}]}
        >>> measure(view, Check("gradient_ratio", "sigmoid", at_most=1e-3))
        0.0002
    """
    if check.metric == "born_dead":
        estimate = view.get("born_dead") or {}
        row = estimate.get(check.activation)
        if not estimate.get("done") or row is None:
            return None  # the Monte Carlo is still drawing networks
        return row["probability"]
    network = _network(view, check.activation)
    if network is None:
        return None
    if check.metric == "gradient_ratio":
        return network["gradients"].get("ratio")
    if check.metric == "dead":
        dead = network["dead"]
        return sum(dead) / len(dead) if dead else None
    if check.metric == "train_loss":
        return network["train_loss"]
    slopes = network.get("slopes")  # slope_change
    if not slopes:
        return None
    initial = view["params"]["prelu_init"]
    return max(abs(sum(layer) / len(layer) - initial) for layer in slopes)


# The story of the article, in order. Each preset was chosen by running the session on it
# (tests/test_playground_lessons.py pins the numbers); every lesson shows its point in a
# few seconds of training on one core.
LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "vanishing",
        {
            "activation": "sigmoid",
            "depth": 10,
            "width": 16,
            "init": "xavier",
            "learning_rate": 0.003,
        },
        steps=200,
        checks=(Check("gradient_ratio", "sigmoid", at_most=1e-3),),
    ),
    Lesson(
        "relu_keeps",
        {
            "activation": "relu",
            "depth": 10,
            "width": 16,
            "init": "xavier",
            "learning_rate": 0.003,
            "compare": True,
            "compare_activation": "sigmoid",
        },
        steps=200,
        checks=(
            Check("gradient_ratio", "relu", at_least=1e-1, at_most=10.0),
            Check("gradient_ratio", "sigmoid", at_most=1e-3),
        ),
    ),
    Lesson(
        "relu_dies",
        {"activation": "relu", "depth": 6, "width": 16, "learning_rate": 0.05},
        steps=300,
        checks=(Check("dead", "relu", at_least=0.3),),
    ),
    Lesson(
        "leaky_flows",
        {
            "activation": "leaky_relu",
            "depth": 6,
            "width": 16,
            "learning_rate": 0.05,
            "compare": True,
            "compare_activation": "relu",
        },
        steps=300,
        checks=(Check("dead", "relu", at_least=0.3), Check("dead", "leaky_relu", at_most=0.0)),
    ),
    Lesson(
        "prelu_learns",
        {"activation": "prelu", "depth": 4, "width": 16, "learning_rate": 0.02},
        steps=300,
        checks=(Check("slope_change", "prelu", at_least=0.05),),
    ),
    Lesson(
        "born_dead",
        {
            "activation": "leaky_relu",
            "depth": 10,
            "width": 2,
            "dataset": "fn1d",
            "compare": True,
            "compare_activation": "relu",
        },
        steps=100,
        checks=(
            Check("born_dead", "relu", at_least=0.5),
            Check("born_dead", "leaky_relu", at_most=0.0),
        ),
    ),
    Lesson(
        "costs_nothing",
        # Wide enough that the matrix products, not the per-call overhead, take the time.
        {
            "activation": "leaky_relu",
            "width": 256,
            "batch_size": 128,
            "learning_rate": 0.001,
            "compare": True,
            "compare_activation": "relu",
        },
        steps=400,
        checks=(
            Check("train_loss", "relu", at_most=0.1),
            Check("train_loss", "leaky_relu", at_most=0.1),
        ),
    ),
)


def get_lesson(key: str) -> Lesson:
    """The lesson named ``key``.

    Raises:
        ValueError: no lesson has that key (the message lists them).

    Examples:
        >>> get_lesson("born_dead").preset["width"]
        2
    """
    for lesson in LESSONS:
        if lesson.key == key:
            return lesson
    keys = ", ".join(lesson.key for lesson in LESSONS)
    raise ValueError(f"Expected a lesson key, one of {keys}, but got {key!r}")
