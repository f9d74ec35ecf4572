"""Seed-epochs per second: a vectorised group vs one seed at a time vs one process per seed.

    .venv/bin/python bench/bench_vectorized.py parity      # 40 seeds x 100 epochs
    .venv/bin/python bench/bench_vectorized.py modular     # the default modular setting
    .venv/bin/python bench/bench_vectorized.py mnist       # config/mnist_offline.yaml's MLP
    .venv/bin/python bench/bench_vectorized.py parity --seeds 10 --loop-seeds 10

All three in one run, side by side, ``--threads`` each (default 1, as a training job):
1. vectorised: ``train_vectorized`` over all ``--seeds`` (after a 2-seed warm-up that
   pays the imports), wall and process CPU seconds;
2. loop: ``train`` one seed after another in this process for ``--loop-seeds`` seeds
   (the rate per seed-epoch is what is compared; fewer seeds keep the run short);
3. processes: ``--process-seeds`` fresh interpreters, each importing torch and training
   one seed (what one job per seed costs, start-up included), run one after another.
The seeds trained by both 1 and 2 are checked to give equal tables and weights.
Presets name a task and its hyperparameters; ``--set key=value`` overrides any (any task
whose model is an ``MLP`` or the transformer is vectorised by the same code).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from trainmap.tasks.params import parse_params  # noqa: E402
from trainmap.tasks.registry import get_task  # noqa: E402
from trainmap.training.loop import train  # noqa: E402
from trainmap.training.vectorized import train_vectorized  # noqa: E402

PRESETS = {
    # The paper's sparse parity (defaults: 40 bits, k 3, MLP 40-128-1, SGD), eval + metrics
    # every epoch.
    "parity": ("sparse_parity", {"epochs": 100, "eval_every": 1}, 40),
    # config/config.yaml's modular setting (p 59, half of the pairs, d_model 64), shortened.
    "modular": (
        "modular_addition",
        {
            "p": 59,
            "train_fraction": 0.5,
            "d_model": 64,
            "n_heads": 4,
            "d_head": 16,
            "d_mlp": 256,
            "optimizer": "adamw",
            "lr": 0.001,
            "weight_decay": 1.0,
            "batch_size": 256,
            "epochs": 20,
            "eval_every": 5,
        },
        5,
    ),
    # config/mnist_offline.yaml's setting (MLP 784-800-10, AdamW, the shipped 10k test
    # images split 8000 / 2000, scored every 5 steps on 2000 training images), shortened.
    "mnist": (
        "mnist_mlp",
        {
            "data_root": str(ROOT.parent / "shared" / "data" / "mnist"),
            "train_from_test": 8000,
            "n_eval": 0,
            "n_train_eval": 2000,
            "hidden": [800],
            "optimizer": "adamw",
            "lr": 0.001,
            "weight_decay": 1.0,
            "batch_size": 256,
            "epochs": 2,
            "eval_every": 5,
            "eval_unit": "step",
        },
        4,
    ),
}

ONE_PROCESS = """
import sys, json, torch
sys.path.insert(0, {workflow!r})
torch.set_num_threads({threads})
from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training.loop import train
task = get_task({task!r})
train(task, parse_params(task.params, json.loads({values!r}), "bench"), {seed})
"""


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, help="seeds in the vectorised group")
    parser.add_argument("--loop-seeds", type=int, default=8, help="seeds trained by the loop")
    parser.add_argument("--process-seeds", type=int, default=3, help="one process each")
    parser.add_argument("--set", action="append", default=[], help="key=value (JSON value)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every mode")
    args = parser.parse_args()
    task_name, values, default_seeds = PRESETS[args.preset]
    values = {**values, **{k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}}
    n_seeds = args.seeds or default_seeds
    torch.set_num_threads(args.threads)
    task = get_task(task_name)
    p = parse_params(task.params, values, "bench")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, load average {os.getloadavg()}"
    )
    print(f"{task_name} {json.dumps(values)}")

    list(train_vectorized(task, p, [0, 1]))  # warm-up: imports, first allocations
    group, v_wall, v_cpu = timed(lambda: list(train_vectorized(task, p, list(range(n_seeds)))))
    loop_seeds = list(range(min(args.loop_seeds, n_seeds)))
    loop, l_wall, l_cpu = timed(lambda: [train(task, p, seed) for seed in loop_seeds])
    for (seed, table, weights), (alone, alone_weights) in zip(group, loop, strict=False):
        same = table.equals(alone) and all(
            torch.equal(weights[k], alone_weights[k]) for k in weights
        )
        assert same, f"seed {seed}: the vectorised run differs from the loop"

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    for seed in range(args.process_seeds):
        code = ONE_PROCESS.format(
            workflow=str(ROOT / "workflow"),
            task=task_name,
            values=json.dumps(values),
            seed=seed,
            threads=args.threads,
        )
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
    p_wall = time.perf_counter() - start

    epochs = p.epochs
    rows = [
        ("vectorised group", n_seeds, v_wall, v_cpu),
        ("one seed at a time, one process", len(loop_seeds), l_wall, l_cpu),
        ("one process per seed", args.process_seeds, p_wall, float("nan")),
    ]
    base = v_wall / (n_seeds * epochs)
    header = f"{'mode':<34}{'seeds':>6}{'wall s':>9}{'CPU s':>9}{'seed-epochs/s':>15}"
    print(header + f"{'slower by':>12}")
    for name, seeds, wall, cpu in rows:
        rate = seeds * epochs / wall
        print(
            f"{name:<34}{seeds:>6}{wall:>9.2f}{cpu:>9.2f}{rate:>15.1f}"
            f"{wall / (seeds * epochs) / base:>14.2f}x"
        )
    print(
        f"load average after: {os.getloadavg()}; tables and weights of seeds "
        f"{loop_seeds} equal in both modes"
    )


if __name__ == "__main__":
    main()
