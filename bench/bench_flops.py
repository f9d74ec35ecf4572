"""Achieved GFLOP/s of modular-addition training against a large matmul on the same device.

    .venv/bin/python bench/bench_flops.py                       # CPU, the default config's setting
    .venv/bin/python bench/bench_flops.py --paper --device cuda  # p 113, batch 2048, 40 seeds

FLOPs of one training step (forward, backward; the optimizer's elementwise work is not
counted) come from ``torch.utils.flop_counter.FlopCounterMode``; the step is then timed
for ``--steps`` steps, vectorised over ``--seeds`` seeds and for one seed alone (the loop's
step). The reference is a square float32 matmul of ``--matmul`` (one thread on the CPU,
as a training job). Prints one JSON line per measurement.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from bench_vectorized import PRESETS  # noqa: E402

from trainmap.seedops import SeedKernels  # noqa: E402
from trainmap.tasks.params import parse_params  # noqa: E402
from trainmap.tasks.registry import get_task  # noqa: E402
from trainmap.training.loop import init_run  # noqa: E402
from trainmap.training.seed_group import batch_of, init_group  # noqa: E402

# config/config.yaml's modular setting, as bench_vectorized.py's preset has it.
MODULAR = PRESETS["modular"][1]
SHAPE_KEYS = ("p", "train_fraction", "d_model", "n_heads", "d_head", "d_mlp", "batch_size")
DEFAULT = {key: MODULAR[key] for key in SHAPE_KEYS}
PAPER = {"p": 113, "train_fraction": 0.3, "batch_size": 2048}  # d_model 128 etc. by default


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step, device: torch.device, steps: int) -> float:
    """Seconds per call of ``step`` (after 3 warm-up calls)."""
    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def flops_of(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paper", action="store_true", help="paper scale (p 113, batch 2048)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--matmul", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    task = get_task("modular_addition")
    values = {**(PAPER if args.paper else DEFAULT), "device": device.type}
    p = parse_params(task.params, values, "bench")
    n_seeds = args.seeds or (40 if args.paper else 5)

    data, state = init_group(task, p, list(range(n_seeds)), device)
    kernels = SeedKernels()
    model = state.models[0]
    gen = torch.Generator().manual_seed(0)
    n_train = data.train_x.shape[1]
    index = torch.stack(
        [torch.randperm(n_train, generator=gen)[: p.batch_size] for _ in range(n_seeds)]
    )
    x, y = batch_of(data, index.to(device))

    def group_step():
        loss = task.stacked_loss(model.stacked_forward(state.params, x, kernels), y).sum()
        state.zero_grad()
        loss.backward()
        state.step_optimizer()

    one_data, one = init_run(task, p, 0, device)
    xi, yi = one_data.train_x[index[0].to(device)], one_data.train_y[index[0].to(device)]

    def loop_step():
        loss = task.loss(one.model(xi), yi)
        one.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        one.optimizer.step()

    size = args.matmul or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    matmul_s = rate(lambda: a @ b, device, 10 if device.type == "cuda" else 3)
    peak = 2 * size**3 / matmul_s / 1e9
    report = {
        "device": str(device),
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu, 1 thread",
        "matmul_size": size,
        "matmul_gflops": round(peak, 1),
    }
    print(json.dumps(report))
    for name, step, seeds in (("vectorised", group_step, n_seeds), ("one seed", loop_step, 1)):
        step()  # the group's first step checks its kernels (per-seed references): not counted
        flops = flops_of(step)
        seconds = rate(step, device, args.steps)
        gflops = flops / seconds / 1e9
        print(
            json.dumps(
                {
                    "mode": name,
                    "seeds": seeds,
                    "batch": p.batch_size,
                    "p": p.p,
                    "gflop_per_step": round(flops / 1e9, 4),
                    "ms_per_step": round(seconds * 1e3, 3),
                    "gflops": round(gflops, 2),
                    "fraction_of_matmul": round(gflops / peak, 3),
                }
            )
        )


if __name__ == "__main__":
    main()
