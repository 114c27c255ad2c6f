"""A Lightning fit with LeakyMonitor on two CPU processes (DDP, gloo), or one for comparison.

    python lightning_ddp.py OUT.json DEVICES

Lightning's "ddp" strategy starts the other rank by running this script again. Rank 0 writes
what the callback's report says: the batches it counted, each site's samples, never-active and
dead units. Every rank's Monitor reduces its counts across ranks before the report, so two
ranks that each saw half of the data report what one process sees on all of it.
"""

import json
import sys
import warnings

import lightning.pytorch as pl
import torch
from torch import nn

from leaky.integrations.lightning import DeadUnitsWarning, LeakyMonitor

BATCHES, BATCH = 8, 32  # per epoch on one process; DDP gives each rank half of the batches


class Regressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.network = nn.Sequential(
            nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)
        )
        with torch.no_grad():
            self.network[0].bias[:8] = -50.0  # a quarter of the first site can never fire

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self.network(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the units stay as they are


def main(out: str, devices: int) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCHES * BATCH, 8, generator=generator)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x[:, :1] - x[:, 1:2]), batch_size=BATCH // devices
    )
    callback = LeakyMonitor(log_every_n_steps=1000, verbose=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        trainer.fit(Regressor(), data)
    if trainer.global_rank == 0:
        report = callback.report
        sites = {
            row.name: {
                "samples": row.summary.samples,
                "never_active": row.summary.never_active_units,
                "dead": row.summary.dead_units,
            }
            for row in report.sites
        }
        with open(out, "w") as file:
            json.dump({"batches": report.batches, "sites": sites}, file)
    # Leave the process group before exiting: torn down at interpreter exit, gloo's threads
    # can abort the process ("terminate called without an active exception").
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
