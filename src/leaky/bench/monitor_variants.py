"""Training loops the ``monitor`` suite times in processes of their own (``leaky.bench.paced``).

Each builds the suite's small MLP (8 x [Linear(512, 512) + ReLU] + head, batch 256; a
smaller one for the quick preset) from seed 0 and steps SGD on one fixed batch forever,
calling ``pace()`` before every step. Its note (``pace.note``) says the first step's loss
and, with a Monitor, the forward passes it saw: ``"loss=2.31 passes=100"``.

- :func:`compiled_steps`: ``torch.compile(model)``, with a Monitor attached before
  compiling or without one;
- :func:`lightning_steps`: a ``lightning.Trainer`` fit of the same network, with the
  :class:`~leaky.integrations.lightning.LeakyMonitor` callback or without it (no logger,
  progress bar or checkpoint on either side, so only the callback differs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from leaky.bench.paced import Pace
from leaky.diagnosis.monitor import Monitor

__all__ = ["compiled_steps", "lightning_steps", "small_mlp"]


def small_mlp(quick: bool) -> tuple[str, nn.Module, torch.Tensor, torch.Tensor]:
    """The small MLP (seed 0), its input batch and targets, and the suite's name for it."""
    # About 24 ms a step on 2 cores: the fixed cost per hook, which the larger networks'
    # 100-300 ms steps hide, shows here.
    depth, width, batch = (4, 128, 64) if quick else (8, 512, 256)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    x = torch.randn(batch, width)
    target = torch.randint(10, (batch,), generator=torch.Generator().manual_seed(1))
    return f"small MLP {depth}x{width} ReLU step, batch {batch}", model, x, target


def compiled_steps(pace: Pace, *, quick: bool, monitor: dict[str, Any] | None) -> None:
    """Step ``torch.compile`` of the small MLP, with a Monitor (these options) or none."""
    _, model, x, target = small_mlp(quick)
    watching = None if monitor is None else Monitor(model, **monitor).attach()
    compiled = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses: list[float] = []
    pace.note = lambda: _note(losses, watching)
    while True:
        pace()
        loss = nn.functional.cross_entropy(compiled(x), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not losses:
            losses.append(float(loss))


def _note(losses: list[float], monitor: Monitor | None) -> str:
    first = f"loss={losses[0]!r}" if losses else "loss=nan"
    return first if monitor is None else f"{first} passes={monitor.passes}"


def lightning_steps(pace: Pace, *, quick: bool, callback: dict[str, Any] | None) -> None:
    """A Lightning fit of the small MLP, with ``LeakyMonitor(**callback)`` or without it."""
    import lightning.pytorch as pl

    from leaky.integrations.lightning import LeakyMonitor

    _, model, x, target = small_mlp(quick)
    losses: list[float] = []

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            if not losses:
                losses.append(float(loss))
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    class SameBatch(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            while True:
                yield x, target

    class Pacer(pl.Callback):
        # First in the list: the time between two calls is one whole batch of the loop.
        def on_train_batch_start(self, *args: Any) -> None:
            pace()

    callbacks: list[pl.Callback] = [Pacer()]
    pace.note = lambda: _note(losses, None)
    if callback is not None:
        watching = LeakyMonitor(verbose=False, **callback)
        callbacks.append(watching)
        pace.note = lambda: _note(losses, watching.watch.monitor if watching.watch else None)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(Classifier(), torch.utils.data.DataLoader(SameBatch(), batch_size=None))
