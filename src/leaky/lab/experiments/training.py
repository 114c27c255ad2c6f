"""The small training loop the experiments share: seeded batches, SGD or Adam, evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from leaky.data import Dataset

__all__ = ["TrainResult", "evaluate", "train"]


@dataclass
class TrainResult:
    """Losses at the logged steps, and whether the loss turned NaN or infinite."""

    losses: list[tuple[int, float]]
    diverged: bool


def _loss(model: nn.Module, data: Dataset, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if data.task == "regression":
        return nn.functional.mse_loss(out.reshape(y.shape), y)
    return nn.functional.cross_entropy(out, y)


def train(
    model: nn.Module,
    data: Dataset,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    optimizer: str = "sgd",
    generator: torch.Generator,
    log_every: int = 50,
    on_log: Callable[[int], None] | None = None,
    order: str = "random",
    momentum: float = 0.9,
    on_backward: Callable[[int, float], None] | None = None,
    update_last: bool = True,
    on_update: Callable[[int, torch.optim.Optimizer], None] | None = None,
) -> TrainResult:
    """Train for ``steps`` minibatches; stop at a non-finite loss.

    ``order="random"`` draws each batch with ``generator`` (with replacement);
    ``"cycle"`` takes consecutive batches of the training set in its stored order,
    wrapping round (the MNIST-1D paper's recipe). ``momentum`` is SGD's (Adam has none).

    ``on_log(step)`` runs after the update at every ``log_every``-th step and the last.
    ``on_backward(step, loss)`` runs at every step with the gradients in place, before the
    update; it sees a non-finite loss too, and the loop stops after it.
    ``on_update(step, optimizer)`` runs after every update, before ``on_log`` (a repair that
    changes weights and the optimizer's state, such as recycling units). With
    ``update_last=False`` the last batch's gradients are not applied, so that batch measures
    the trained model (its loss and gradients) without changing it.
    """
    if order not in ("random", "cycle"):
        raise ValueError(f"Expected order random or cycle, got {order!r}")
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        raise ValueError(f"Expected optimizer sgd or adam, got {optimizer!r}")
    model.train()
    losses = []
    for step in range(1, steps + 1):
        if order == "random":
            index = torch.randint(len(data.x_train), (batch_size,), generator=generator)
        else:
            start = ((step - 1) * batch_size) % len(data.x_train)
            index = torch.arange(start, start + batch_size) % len(data.x_train)
        loss = _loss(model, data, data.x_train[index], data.y_train[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        if on_backward is not None:
            on_backward(step, value)
        if not math.isfinite(value):
            losses.append((step, value))
            return TrainResult(losses, True)
        if update_last or step < steps:
            opt.step()
            if on_update is not None:
                on_update(step, opt)
        if step % log_every == 0 or step == steps:
            losses.append((step, value))
            if on_log is not None:
                on_log(step)
    return TrainResult(losses, False)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 4096) -> dict[str, float]:
    """Test accuracy (classification), bits per character (language), or MSE (regression)."""
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for start in range(0, len(data.x_test), batch_size):
        x = data.x_test[start : start + batch_size]
        y = data.y_test[start : start + batch_size]
        out = model(x)
        if data.task == "regression":
            loss_sum += float(nn.functional.mse_loss(out.reshape(y.shape), y, reduction="sum"))
        else:
            loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
        total += len(y)
    model.train()
    if data.task == "regression":
        return {"mse": loss_sum / total}
    result = {"accuracy": correct / total, "loss": loss_sum / total}
    if data.task == "language":
        result["bits_per_char"] = loss_sum / total / math.log(2)
    return result
