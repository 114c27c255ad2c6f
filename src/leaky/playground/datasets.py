"""The playground's small data sets: 2-D classification (two classes) and 1-D fitting.

Two spirals come from the built-in ``spirals`` task and the 1-D function from ``fn1d``'s
target (:mod:`leaky.data.builtin`); circles and blobs from scikit-learn's generators; XOR
is four quadrants. All points lie in about [-1.5, 1.5]; one seed fixes points, noise and
the train / test split.

Examples:
    >>> data = make_playground_data("xor", noise=0.0, train_fraction=0.5, seed=0)
    >>> data.x_train.shape, data.classes
    (torch.Size([250, 2]), 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from leaky.data.builtin import BUILTIN, fn1d_target

__all__ = ["POINTS", "PlaygroundData", "make_playground_data"]

POINTS = 500  # per data set: enough to see a boundary, few enough to train live


@dataclass(frozen=True)
class PlaygroundData:
    """Train and test points; ``classes`` is None for the 1-D regression."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int | None
    bounds: tuple[float, float]  # the view's range on each input axis

    def to_dict(self) -> dict[str, object]:
        """Points as lists, for the page."""
        return {
            "name": self.name,
            "classes": self.classes,
            "bounds": list(self.bounds),
            "train": {"x": self.x_train.tolist(), "y": self.y_train.tolist()},
            "test": {"x": self.x_test.tolist(), "y": self.y_test.tolist()},
        }


def _points(name: str, noise: float, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, ...]:
    if name == "spirals":
        # The built-in task draws its arms from the seed; its own split is redrawn below.
        spirals = BUILTIN["spirals"].make(samples=POINTS, noise=noise, seed=seed)
        x = torch.cat([spirals.x_train, spirals.x_test]).numpy() * 1.2
        y = torch.cat([spirals.y_train, spirals.y_test]).numpy()
        return x, y
    if name == "circles":
        from sklearn.datasets import make_circles

        x, y = make_circles(POINTS, noise=noise, factor=0.5, random_state=seed)
        return x * 1.2, y
    if name == "blobs":
        from sklearn.datasets import make_blobs

        x, y = make_blobs(
            POINTS, centers=[[-0.6, -0.6], [0.6, 0.6]], cluster_std=0.25 + noise, random_state=seed
        )
        return x, y
    if name == "xor":
        x = rng.uniform(-1.2, 1.2, (POINTS, 2))
        x += np.sign(x) * 0.05  # a small margin around the axes
        y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
        return x + rng.normal(0, noise, x.shape), y
    if name == "fn1d":
        bound = math.sqrt(3)
        x = rng.uniform(-bound, bound, (POINTS, 1))
        y = fn1d_target(x).reshape(-1) + rng.normal(0, noise, POINTS)
        return x, y
    raise ValueError(f"Unknown data set {name!r}")


def _tensor(values: np.ndarray, dtype: type) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=dtype))


def make_playground_data(
    name: str, *, noise: float, train_fraction: float, seed: int
) -> PlaygroundData:
    """Generate data set ``name`` and split it at random into train and test points."""
    rng = np.random.default_rng(seed)
    x, y = _points(name, noise, rng, seed)
    order = rng.permutation(len(x))
    split = min(max(1, round(train_fraction * len(x))), len(x) - 1)
    train, test = order[:split], order[split:]
    regression = name == "fn1d"
    y_type = np.float32 if regression else np.int64
    bound = math.sqrt(3) if regression else 1.6
    return PlaygroundData(
        name,
        _tensor(x[train], np.float32),
        _tensor(y[train], y_type),
        _tensor(x[test], np.float32),
        _tensor(y[test], y_type),
        None if regression else 2,
        (-bound, bound),
    )
