"""One playground session: data, one or two networks, training steps and what the page shows.

Everything here runs without a server: build a :class:`TrainingSession`, call
:meth:`~TrainingSession.train` and read :meth:`~TrainingSession.snapshot`. The models are
:func:`leaky.lab.models.mlp` networks (activations from the spec table, initialised by
:mod:`leaky.core.init`), and every statistic comes from a :class:`leaky.diagnosis.monitor.Monitor`:

* dead and never-active units, how often each unit fires, gradient norms per layer and the
  vanishing / exploding / healthy verdict, from one forward and backward pass over the
  whole training set at each snapshot (a unit is dead when it passes no gradient for any
  training point). Training steps themselves run without hooks.

In compare mode two networks train on the same batches from the same weights; only their
activation differs.

Examples:
    >>> session = TrainingSession({"depth": 2, "width": 8})
    >>> session.train(5)
    5
    >>> view = session.snapshot()
    >>> view["step"], [n["activation"] for n in view["networks"]]
    (5, ['leaky_relu'])
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from leaky.core.spec import get_spec
from leaky.diagnosis.monitor import Monitor
from leaky.diagnosis.repair import recycle
from leaky.lab.experiments.probes import dormant_units
from leaky.lab.models import mlp
from leaky.playground.born_dead_estimate import BornDeadEstimate
from leaky.playground.datasets import PlaygroundData, make_playground_data
from leaky.playground.params import FieldError, PlaygroundParams, validate_params

__all__ = ["HISTORY", "LIVE_FIELDS", "Network", "TrainingSession"]

# Settings that change how training goes on without starting again; every other one
# rebuilds the data and the networks.
LIVE_FIELDS = frozenset({"learning_rate", "batch_size", "optimizer", "recycle_every"})
HISTORY = 300  # points kept per curve; older ones are thinned to every other point
GRID = 41  # decision boundary: GRID x GRID inputs
CURVE_POINTS = 161

# PyTorch's default initialisation draws from the global generator: seeded under a lock so
# that sessions in other threads neither disturb nor see it.
_GLOBAL_RNG = threading.Lock()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    # Strict JSON has no NaN: a diverged network's numbers are sent as null.
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    if name == "momentum":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=lr)


@dataclass
class Network:
    """One network of the session, its optimiser, its monitor and its curves."""

    activation: str
    model: nn.Sequential
    optimizer: torch.optim.Optimizer
    monitor: Monitor
    history: dict[str, list[Any]] = field(
        default_factory=lambda: {
            "step": [],
            "train_loss": [],
            "test_loss": [],
            "dead": [],
            "never_active": [],
            "slope": [],  # PReLU: each hidden layer's mean learned slope (None otherwise)
        }
    )
    gradients: dict[str, Any] = field(default_factory=dict)
    recycled: int = 0  # units recycled so far (recycle_every)
    seconds: float = 0.0  # spent in this network's training steps (forward, backward, step)

    def hidden_linears(self) -> list[nn.Linear]:
        """The Linear layers in forward order (the last one is the output layer)."""
        return [m for m in self.model if isinstance(m, nn.Linear)]

    def prelu_slopes(self) -> list[list[float]] | None:
        """Each hidden layer's learned PReLU slopes, one per unit; None without PReLU."""
        slopes = [m.weight.detach().tolist() for m in self.model if isinstance(m, nn.PReLU)]
        return slopes or None


def build_networks(params: PlaygroundParams, data: PlaygroundData) -> list[Network]:
    """The session's networks: same seed and same weights, one activation each."""
    inputs = data.x_train.shape[1]
    outputs = data.classes or 1
    models = []
    for activation in params.activations():
        generator = torch.Generator().manual_seed(params.seed)
        options = params.activation_options(activation)
        # PReLU's initial slope is its `init`, a name the builder keeps for the weights'
        # scheme: the slopes are set after building (the weights' gain uses slope 0.25).
        slope = options.pop("init") if activation == "prelu" else None
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            model = mlp(
                inputs,
                outputs,
                depth=params.depth,
                width=params.width,
                activation=activation,
                init=params.init,  # type: ignore[arg-type]
                generator=generator,
                **options,
            )
        for module in model.modules():
            if hasattr(module, "generator") and isinstance(module, nn.RReLU):
                module.generator = torch.Generator().manual_seed(params.seed + 1)
            if slope is not None and isinstance(module, nn.PReLU):
                with torch.no_grad():
                    module.weight.fill_(slope)
        models.append(model)
    # The compared network starts from the main one's weights: one difference only.
    main = [m for m in models[-1] if isinstance(m, nn.Linear)]
    for other in models[:-1]:
        with torch.no_grad():
            for target, source in zip(
                [m for m in other if isinstance(m, nn.Linear)], main, strict=True
            ):
                target.weight.copy_(source.weight)
                target.bias.copy_(source.bias)
    networks = []
    for activation, model in zip(params.activations(), models, strict=True):
        linears = [m for m in model if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer in linears[:-1]:  # push every hidden pre-activation down
                layer.bias.sub_(params.bias_shift)
        # Attached only to measure; it counts each unit's firing for the page's rates.
        monitor = Monitor(model, functional=False, bins=0, count_active=True)
        optimizer = _make_optimizer(params.optimizer, model, params.learning_rate)
        networks.append(Network(activation, model, optimizer, monitor))
    return networks


def _thin(history: dict[str, list[Any]]) -> None:
    if len(history["step"]) > HISTORY:
        for key, values in history.items():
            thinned = values[::2]
            if len(values) % 2 == 0:  # keep the newest point
                thinned.append(values[-1])
            history[key] = thinned


class TrainingSession:
    """Data, networks and training steps of one playground page, without any server.

    Args:
        changes: settings that differ from :class:`PlaygroundParams`' defaults.

    Raises:
        ValueError: when a setting is invalid (the message names each one).
    """

    def __init__(self, changes: dict[str, Any] | None = None) -> None:
        params, errors = validate_params(changes or {})
        if errors:
            raise ValueError(" ".join(error.message for error in errors.values()))
        self.params = params
        self.born_dead: BornDeadEstimate | None = None
        self.version = 0  # counts rebuilds: the page redraws its data when it changes
        self.reset()

    # ------------------------------------------------------------------ setup
    def reset(self) -> None:
        """Draw the data and the networks again from the seed; step 0."""
        p = self.params
        self.data = make_playground_data(
            p.dataset, noise=p.noise, train_fraction=p.train_fraction, seed=p.seed
        )
        self.networks = build_networks(p, self.data)
        self.order = torch.Generator().manual_seed(p.seed + 2)  # batches
        self.recycling = torch.Generator().manual_seed(p.seed + 3)  # recycled units' weights
        self.step = 0
        self.seconds_training = 0.0
        self.version += 1
        key = (p.width, p.depth, p.negative_slope, p.seed)
        if self.born_dead is None or self.born_dead.key != key:
            self.born_dead = BornDeadEstimate(
                width=p.width, depth=p.depth, negative_slope=p.negative_slope, seed=p.seed
            )

    def update(self, changes: Any) -> dict[str, FieldError]:
        """Apply changed settings; returns the errors (and changes nothing) if any is bad.

        Learning rate, batch size and optimiser change the running training; any other
        setting starts again from step 0.
        """
        params, errors = validate_params(changes, self.params)
        if errors:
            return errors
        changed = {k for k, v in params.to_dict().items() if v != getattr(self.params, k)}
        self.params = params
        if not changed:
            return {}
        if changed <= LIVE_FIELDS:
            for network in self.networks:
                if "optimizer" in changed:
                    network.optimizer = _make_optimizer(
                        params.optimizer, network.model, params.learning_rate
                    )
                for group in network.optimizer.param_groups:
                    group["lr"] = params.learning_rate
        else:
            self.reset()
        return {}

    # ------------------------------------------------------------------ training
    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.data.classes is None:
            return nn.functional.mse_loss(output.squeeze(-1), target)
        return nn.functional.cross_entropy(output, target)

    def train(self, steps: int, *, cancel: threading.Event | None = None) -> int:
        """Take ``steps`` optimiser steps (every network on the same batches).

        Stops early once ``cancel`` is set (checked before each step); returns the steps
        taken.
        """
        start = time.perf_counter()
        x, y = self.data.x_train, self.data.y_train
        taken = 0
        for _ in range(steps):
            if cancel is not None and cancel.is_set():
                break
            batch = torch.randint(0, len(x), (self.params.batch_size,), generator=self.order)
            for network in self.networks:
                began = time.perf_counter()
                network.optimizer.zero_grad(set_to_none=True)
                self._loss(network.model(x[batch]), y[batch]).backward()
                network.optimizer.step()
                network.seconds += time.perf_counter() - began
            self.step += 1
            taken += 1
            every = self.params.recycle_every
            if every and self.step % every == 0:
                for network in self.networks:
                    self._recycle(network)
        self.seconds_training += time.perf_counter() - start
        return taken

    def _recycle(self, network: Network) -> None:
        # ReDo's repair of the units dead on the whole training set: new incoming weights,
        # zero outgoing ones (the network's output is unchanged), the optimiser's state
        # there reset. A learner sees the dead units come back.
        x = self.data.x_train
        dead = dormant_units(network.model, x, 0.0)
        if dead:
            done = recycle(
                network.model, dead, x[:2], optimizer=network.optimizer, generator=self.recycling
            )
            network.recycled += sum(len(change.units) for change in done)

    def train_for(self, seconds: float, *, cancel: threading.Event | None = None) -> int:
        """Train until ``seconds`` have passed; returns the steps taken.

        At least one step is taken, unless ``cancel`` is set: it stops the training
        between two steps.
        """
        deadline = time.perf_counter() + seconds
        steps = 0
        while True:
            steps += self.train(1, cancel=cancel)
            if time.perf_counter() >= deadline or (cancel is not None and cancel.is_set()):
                return steps

    # ------------------------------------------------------------------ views
    def _measure(self, network: Network) -> tuple[Any, torch.Tensor, list[list[float]]]:
        # One forward and backward pass over the whole training set with the monitor on:
        # units that fire for no training point, and each layer's gradient now. Training
        # steps run without hooks, at full speed; no optimiser step is taken here.
        model, data, monitor = network.model, self.data, network.monitor
        monitor.reset()
        monitor.attach()
        try:
            output = model(data.x_train)
            self._loss(output, data.y_train).backward()
            report = monitor.report()
            firing = [
                (monitor.sites[row.name].active.double() / max(row.summary.samples, 1)).tolist()
                for row in report.sites
            ]
        finally:
            monitor.detach()
            monitor.reset()
            model.zero_grad(set_to_none=True)
        return report, output.detach(), firing

    def _network_view(self, network: Network, grid: torch.Tensor) -> dict[str, Any]:
        model, data = network.model, self.data
        model.eval()  # RReLU at its mean slope, no random draw outside training
        try:
            units, train_out, firing = self._measure(network)
            with torch.no_grad():
                train_loss = float(self._loss(train_out, data.y_train))
                test_loss = float(self._loss(model(data.x_test), data.y_test))
                grid_out = model(grid)
        finally:
            model.train()
        norms = [row.grad_norm for row in units.layers]
        ratio = units.gradient_ratio
        network.gradients = {
            "norms": [None if n is None else _finite(n) for n in norms],
            "verdict": units.verdict,
            "ratio": None if ratio is None else _finite(ratio),
        }
        dead = [row.summary.dead_fraction or 0.0 for row in units.sites]
        never = [row.summary.never_active_fraction for row in units.sites]
        history = network.history
        history["step"].append(self.step)
        history["train_loss"].append(_finite(train_loss))
        history["test_loss"].append(_finite(test_loss))
        history["dead"].append(dead)
        history["never_active"].append(never)
        slopes = network.prelu_slopes()
        history["slope"].append(None if slopes is None else [sum(s) / len(s) for s in slopes])
        _thin(history)
        if data.classes is None:
            prediction = {"x": grid.squeeze(-1).tolist(), "y": grid_out.squeeze(-1).tolist()}
        else:
            probability = torch.softmax(grid_out, dim=1)[:, 1].view(GRID, GRID)
            prediction = {"z": probability.tolist()}
        accuracy = None
        if data.classes is not None:
            accuracy = float((train_out.argmax(1) == data.y_train).float().mean())
        spec = get_spec(network.activation)
        return {
            "activation": network.activation,
            "title": spec.title,
            "can_die": spec.can_die,
            "train_loss": _finite(train_loss),
            "test_loss": _finite(test_loss),
            "train_accuracy": accuracy,
            "dead": dead,
            "never_active": never,
            "dead_units": [row.summary.dead_units for row in units.sites],
            "recycled": network.recycled,
            "slopes": slopes,
            # Each network's own training time: compare mode shows what an activation costs.
            "ms_per_step": 1000 * network.seconds / self.step if self.step else None,
            "firing": [[v if math.isfinite(v) else 0.0 for v in rates] for rates in firing],
            "gradients": network.gradients,
            "prediction": prediction,
            "history": {k: list(v) for k, v in history.items()},
            "curve": self._activation_curve(network.activation),
        }

    def _activation_curve(self, activation: str) -> dict[str, Any]:
        spec = get_spec(activation)
        x = np.linspace(-4, 4, CURVE_POINTS)
        options = self.params.activation_options(activation)
        f = spec.forward(x, **options)
        df = spec.derivative(x, **options)
        return {"x": x.tolist(), "f": np.asarray(f).tolist(), "df": np.asarray(df).tolist()}

    def grid(self) -> torch.Tensor:
        """Inputs where the page draws the decision boundary (or the fitted curve)."""
        low, high = self.data.bounds
        if self.data.classes is None:
            return torch.linspace(low, high, CURVE_POINTS).unsqueeze(1)
        axis = torch.linspace(low, high, GRID)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)

    def snapshot(self) -> dict[str, Any]:
        """What the page draws now, as plain JSON values (NaN written as null)."""
        grid = self.grid()
        low, high = self.data.bounds
        return {
            "step": self.step,
            "version": self.version,
            "steps_per_second": (
                self.step / self.seconds_training if self.seconds_training > 0 else None
            ),
            "params": self.params.to_dict(),
            "grid": {"low": low, "high": high, "points": GRID},
            "data": self.data.to_dict(),
            "networks": [
                _json_safe(self._network_view(network, grid)) for network in self.networks
            ],
            "born_dead": self.born_dead.to_dict() if self.born_dead else None,
        }
