"""Map your own training, plain PyTorch loop: a small MLP on synthetic data, 4 seeds.

    python examples/plain_loop.py runs/mlp        # then a config entry `source: runs`

Three lines are trainmap's: the import, the ``with Recorder(...)`` and ``rec.log(...)``.
``probe_losses=`` (optional) is the model's loss on each of a fixed set of examples, the
same for every seed: with ``probe: {components: 3}`` in the setting, the workflow also maps
the runs in function space (function_space.parquet and .png).
"""

import sys

import torch
from torch import nn

from trainmap.record import Recorder


def make_data(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes: the sign of x0 * x1 (XOR-like, so a hidden layer must learn it)."""
    x = torch.randn(n, 16, generator=gen)
    return x, (x[:, 0] * x[:, 1] > 0).long()


def train(directory: str, seed: int, steps: int = 200, log_every: int = 10) -> None:
    torch.manual_seed(seed)  # init and batch order
    x, y = make_data(1024, torch.Generator().manual_seed(1000 + seed))
    x_eval, y_eval = make_data(512, torch.Generator().manual_seed(0))
    model = nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with Recorder(directory, seed=seed, model=model) as rec:
        for step in range(steps + 1):
            if step % log_every == 0:
                with torch.no_grad():
                    out = model(x_eval)
                    per_example = nn.functional.cross_entropy(out, y_eval, reduction="none")
                    eval_accuracy = (out.argmax(1) == y_eval).float().mean()
                rec.log(step, epoch=step * 64 // len(x), eval_loss=per_example.mean(),
                        eval_accuracy=eval_accuracy, probe_losses=per_example[:64])  # fmt: skip
            if step == steps:
                break
            idx = torch.randint(len(x), (64,))
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


if __name__ == "__main__":
    for seed in range(4):
        train(sys.argv[1] if len(sys.argv) > 1 else "runs/mlp", seed)
