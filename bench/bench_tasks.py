"""Costs of the data-set tasks on this machine: training speed and metrics per checkpoint.

Run: ``PYTHONPATH=workflow .venv/bin/python bench/bench_tasks.py [--only NAME ...]``
from the repository root (the MNIST part reads ../shared/data/mnist). Parts:

- ``mnist``: mnist_mlp (784-800-10, batch 256, a checkpoint every 20 steps) on the 10k
  shipped test images (train_from_test 9000: 9,000 train, 1,000 eval), ``--seeds`` seeds
  x 1 epoch one after another as one training job does, one thread: wall time, steps/s.
- ``resnet``: CifarResNet18 training steps on CIFAR-shaped uint8 batches (augmentation
  included), ``--resnet-batch`` images, ``--threads`` threads: steps/s.
- ``metrics``: compute_metrics per checkpoint, one thread, best of ``--reps``: ResNet18
  (batch norm and residuals on), and BERT-base-sized encoder matrices (12 layers,
  hidden 768, intermediate 3072: 72 matrices, 85M weights), with the estimated metrics
  time of 5 seeds x 28 MultiBERTs checkpoints.
"""

import argparse
import platform
import time
from pathlib import Path

import torch

from trainmap.metrics.weights import compute_metrics
from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training.choose import train_group
from trainmap.training.common import generator, make_optimizer

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


def bench_mnist(seeds: int) -> None:
    torch.set_num_threads(1)
    task = get_task("mnist_mlp")
    values = {"data_root": str(MNIST_DIR), "train_from_test": 9000, "n_eval": 0}
    values |= {"n_train_eval": 2048, "epochs": 1, "device": "cpu"}
    p = parse_params(task.params, values, "bench")
    start = time.perf_counter()
    steps = rows = 0
    for _, table, _ in train_group(task, p, list(range(seeds))):
        steps += int(table["step"].iloc[-1])
        rows += len(table)
    wall = time.perf_counter() - start
    print(
        f"mnist_mlp: {seeds} seeds x 1 epoch ({steps} steps, {rows} checkpoints): "
        f"{wall:.1f} s, {steps / wall:.1f} steps/s, {wall / seeds:.2f} s per seed "
        "(data loading and checkpoints included)"
    )
    data, model = task.make_data(p, generator("data", 0)), task.make_model(p)
    model.reset_parameters(generator("init", 0))
    optimizer = make_optimizer(p, model)
    idx = torch.randperm(len(data.train_x), generator=generator("order", 0))[: p.batch_size]

    def step() -> None:
        loss = task.loss(model(data.train_x[idx]), data.train_y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    per_step = best_time(lambda: [step() for _ in range(20)], 3) / 20
    checkpoint = best_time(lambda: compute_metrics(model.weight_groups()), 3)
    print(
        f"mnist_mlp: a training step alone {per_step * 1000:.1f} ms ({1 / per_step:.0f} "
        f"steps/s); weight metrics of a checkpoint {checkpoint * 1000:.0f} ms"
    )


def bench_resnet(batch: int, steps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    task = get_task("cifar100_resnet18")
    p = parse_params(task.params, {"fake_images": 1, "device": "cpu"}, "bench")
    model = task.make_model(p)
    model.reset_parameters(generator("init", 0))
    optimizer = make_optimizer(p, model)
    gen = generator("batch", 0)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 100, (batch,), generator=gen)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        images, labels = task.train_batch(p, x, y, gen)
        loss = task.loss(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    per_step = min(times[1:])
    print(
        f"cifar100_resnet18: batch {batch}, {threads} thread(s): {per_step:.2f} s per step "
        f"(best of {steps}), {1 / per_step:.3f} steps/s, {batch / per_step:.0f} images/s"
    )


def best_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_metrics(reps: int) -> None:
    from trainmap.tasks.cifar100_resnet18.model import CifarResNet18
    from trainmap.tasks.masked_lm.model import MaskedLMBert, bert_config

    torch.set_num_threads(1)
    resnet = CifarResNet18()
    resnet.reset_parameters(generator("init", 0))
    t = best_time(lambda: compute_metrics(resnet.weight_groups()), reps)
    print(f"metrics, ResNet18 (11.2M conv + fc weights): {t * 1000:.0f} ms per checkpoint")
    bert = MaskedLMBert(bert_config(30522, 512, 12, 768, 12, 3072))  # BERT-base
    bert.reset_parameters(generator("init", 0))
    groups = bert.weight_groups()
    n = sum(w.numel() for w in groups.matrices)
    t = best_time(lambda: compute_metrics(bert.weight_groups()), reps)
    print(
        f"metrics, BERT-base encoder ({len(groups.matrices)} matrices, {n / 1e6:.1f}M weights): "
        f"{t:.2f} s per checkpoint; 5 seeds x 28 MultiBERTs checkpoints: ~{140 * t / 60:.1f} min "
        "(metrics only, one thread; reading the checkpoints not included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["mnist", "resnet", "metrics"])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--resnet-batch", type=int, default=256)
    parser.add_argument("--resnet-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {platform.processor() or '?'}, torch {torch.__version__}"
    )
    if "mnist" in args.only:
        bench_mnist(args.seeds)
    if "resnet" in args.only:
        bench_resnet(args.resnet_batch, args.resnet_steps, args.threads)
    if "metrics" in args.only:
        bench_metrics(args.reps)


if __name__ == "__main__":
    main()
