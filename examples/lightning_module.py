"""Map your own training, Lightning: a LightningModule recorded by a callback, 4 seeds.

python examples/lightning_module.py runs/lightning
"""

import sys

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainmap.record import LightningCallback


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_accuracy", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def data(n: int, seed: int) -> TensorDataset:
    x = torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, (x[:, 0] * x[:, 1] > 0).long())


def train(directory: str, seed: int) -> None:
    L.seed_everything(seed)  # the callback takes its seed from here
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        val_check_interval=8,  # validate every 8 steps: a row with val_* each time
        callbacks=[LightningCallback(directory, every_n_steps=4)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    train_data = DataLoader(data(1024, 1000 + seed), batch_size=64, shuffle=True)
    trainer.fit(Classifier(), train_data, DataLoader(data(512, 0), batch_size=512))


if __name__ == "__main__":
    for seed in range(4):
        train(sys.argv[1] if len(sys.argv) > 1 else "runs/lightning", seed)
