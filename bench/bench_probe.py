"""What a probe set costs a training job: the default parity job (20 seeds vectorised,
eval and metrics every 2nd epoch) with and without ``probe:``, in process CPU seconds.

    .venv/bin/python bench/bench_probe.py                 # 20 seeds x 60 epochs, n 100 and 512
    .venv/bin/python bench/bench_probe.py --seeds 40 --epochs 300

One thread (as a training job). Prints each variant's CPU and wall seconds and its ratio to
the run without a probe, measured in the same process after a warm-up run.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from trainmap.tasks.params import parse_params  # noqa: E402
from trainmap.tasks.registry import get_task  # noqa: E402
from trainmap.training.probe import draw_probe  # noqa: E402
from trainmap.training.vectorized import train_vectorized  # noqa: E402

PARITY = {  # config/config.yaml's parity setting
    **{"n_bits": 40, "k": 3, "hidden": 128, "n_train": 1000, "n_eval": 100},
    **{"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.01, "batch_size": 32},
    **{"eval_every": 2, "device": "cpu"},
}


def timed(task, p, seeds, probe) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in train_vectorized(task, p, seeds, probe=probe):
        pass
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("sparse_parity")
    p = parse_params(task.params, {**PARITY, "epochs": args.epochs}, "bench")
    seeds = list(range(args.seeds))
    timed(task, parse_params(task.params, {**PARITY, "epochs": 2}, "bench"), seeds[:2], None)
    variants = {
        "no probe": None,
        "probe n 100 (eval)": draw_probe(task, p, {"n": 100, "split": "eval", "seed": 0}),
        "probe n 512 (train)": draw_probe(task, p, {"n": 512, "split": "train", "seed": 0}),
    }
    machine = platform.processor() or platform.machine()
    print(f"parity, {args.seeds} seeds x {args.epochs} epochs, checkpoints every 2 epochs, "
          f"1 thread, torch {torch.__version__}, {machine}")  # fmt: skip
    base = None
    for name, probe in variants.items():
        cpu, wall = timed(task, p, seeds, probe)
        base = base or cpu
        print(f"{name:22s} cpu {cpu:7.2f} s  wall {wall:7.2f} s  cpu ratio {cpu / base:5.2f}x")


if __name__ == "__main__":
    main()
