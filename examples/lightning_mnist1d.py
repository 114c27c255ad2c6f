"""A Lightning fit on MNIST-1D with leaky's Monitor as a callback, offline, about a minute.

An MLP of 8 hidden layers of 64 ReLU units trained with Adam at a learning rate (0.01)
where some of its units die, with ``LeakyMonitor`` logging per-layer scalars to TensorBoard
(``out/lightning``) every 20 optimizer steps and printing its verdict at the end; the same
network with Leaky ReLU (``--activation leaky_relu``) for comparison. One seed: what the
Monitor sees in one fit, not a comparison of accuracies (the experiments do that).

    python examples/lightning_mnist1d.py                 # ReLU
    python examples/lightning_mnist1d.py --activation leaky_relu
    tensorboard --logdir out/lightning
"""

from __future__ import annotations

import argparse
import warnings

import lightning.pytorch as pl
import torch
from torch import nn

from leaky.data import load_named_dataset
from leaky.integrations.lightning import DeadUnitsWarning, LeakyMonitor
from leaky.nn import get_activation


class Classifier(pl.LightningModule):
    """An MLP of ``depth`` hidden layers of ``width`` units, trained with Adam."""

    def __init__(
        self, inputs: int, classes: int, activation: str, depth: int, width: int, lr: float
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(inputs if i == 0 else width, width), get_activation(activation)]
        self.network = nn.Sequential(*layers, nn.Linear(width, classes))
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores."""
        return self.network(x.flatten(1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        """Cross-entropy on one batch."""
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam at the given learning rate."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def main() -> None:
    """Fit once and print what the Monitor saw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default="relu", help="relu, leaky_relu, prelu ...")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    pl.seed_everything(0, verbose=False)
    data = load_named_dataset("mnist1d")
    train = torch.utils.data.TensorDataset(data.x_train, data.y_train)
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True)
    inputs = data.x_train[0].numel()
    model = Classifier(inputs, data.num_classes, args.activation, 8, 64, args.lr)
    callback = LeakyMonitor(log_every_n_steps=20)
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=pl.loggers.TensorBoardLogger("out/lightning", name=args.activation),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeadUnitsWarning)
        trainer.fit(model, loader)
    for warning in caught:
        if issubclass(warning.category, DeadUnitsWarning):
            print(f"warned: {warning.message}")
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean()
    print(f"test accuracy: {accuracy:.3f}")
    print(callback.report)


if __name__ == "__main__":
    main()
