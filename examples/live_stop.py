"""Stop a seed that the map says is in a dead end: a plain PyTorch loop with a live map.

    snakemake --cores 2                     # the default config: results/parity/live.json
    python examples/live_stop.py results/parity runs/live_parity 4

Trains sparse parity as the default config's parity setting does (40 bits, k = 3, a
40-128-1 ReLU MLP, hinge loss, SGD lr 0.1, weight decay 0.01, batch 32, a checkpoint every
2 epochs), so the map's features mean the same here, with ``Recorder(..., live=...)``:
every logged row gets ``state``, ``p_detour`` and ``predicted_convergence_step``, a line
is logged when the state changes, and ``on_state`` stops the seed once the map gives
P(dead end) > 0.9. Watch the seeds from another terminal meanwhile:

    trainmap watch runs/live_parity --map results/parity
"""

import logging
import sys

import torch
from torch import nn

from trainmap.record import Recorder

N_BITS, K, HIDDEN, N_TRAIN, N_EVAL = 40, 3, 128, 1000, 100
EPOCHS, BATCH, EVAL_EVERY_EPOCHS = 300, 32, 2
STOP_AT = 0.9  # P(dead end) above which a seed is not worth its compute


def make_data(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    x = torch.randint(0, 2, (N_TRAIN + N_EVAL, N_BITS), generator=gen).float() * 2 - 1
    y = x[:, :K].prod(dim=1)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def train(live_map: str, directory: str, seed: int) -> None:
    torch.manual_seed(seed)
    x, y, x_eval, y_eval = make_data(torch.Generator().manual_seed(seed))
    model = nn.Sequential(nn.Linear(N_BITS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)

    def dead_end(prediction) -> bool:  # called after every row; True asks to stop
        return prediction.p_dead_end > STOP_AT

    step = 0
    with Recorder(directory, seed=seed, model=model, live=live_map, on_state=dead_end) as rec:
        for epoch in range(EPOCHS + 1):
            if epoch % EVAL_EVERY_EPOCHS == 0:
                with torch.no_grad():
                    accuracy = (torch.sign(model(x_eval).squeeze(-1)) == y_eval).float().mean()
                row = rec.log(step, epoch=epoch, eval_accuracy=accuracy)
                if rec.stop_requested:
                    print(f"seed {seed}: stopped at step {step}, P(dead end) "
                          f"{rec.live_state.p_dead_end:.2f} (state S{row['state']})")  # fmt: skip
                    return
            if epoch == EPOCHS:
                break
            for batch in torch.randperm(N_TRAIN).split(BATCH):
                loss = torch.clamp(1 - model(x[batch]).squeeze(-1) * y[batch], min=0).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
    state = rec.live_state
    print(f"seed {seed}: trained to step {step}; last state S{state.state}, predicted "
          f"convergence {state.predicted_convergence_step}")  # fmt: skip


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    live_map, directory = sys.argv[1], sys.argv[2]
    for seed in range(int(sys.argv[3]) if len(sys.argv) > 3 else 4):
        train(live_map, directory, seed)
