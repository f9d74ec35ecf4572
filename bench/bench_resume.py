"""Overhead of saving resumable states (trainmap.training.resume) on the default config's training.

Run: ``.venv/bin/python bench/bench_resume.py [--epochs N] [--reps N]``. For each setting
of config/config.yaml trains seed 0 at the config's hyperparameters (``--epochs``
shortens every run alike) with saving off, at the default ``resume_every`` and at every
checkpoint (``resume_every: 0``, the worst case), the modes interleaved so that a busy
machine slows them alike (after one untimed warm-up run; the order rotates). One
thread, as the training jobs use. Prints each mode's training time (median and min of the
repeats), its difference from saving off, the number of saves, the time per save and the
share of training time spent saving as measured inside the runs (immune to the noise of
a shared machine that dominates differences of a few percent in wall time).

Then the cost of one save of larger states, where the default interval matters: the
paper config's models (config/paper.yaml) with 1,000 logged rows, and torchvision's
ResNet-18 (11.7M parameters, SGD with momentum, a 50,000-example data order) as a stand-in
for image tasks; overhead at the default interval = time per save / interval.
"""

import argparse
import dataclasses
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainmap.config.settings import DEFAULT_RESUME_EVERY, load_yaml, validate_config
from trainmap.tasks.registry import get_task
from trainmap.training.common import generator, make_optimizer
from trainmap.training.loop import RunState, init_run, train
from trainmap.training.resume import SeedResume, state_to_file

ROOT = Path(__file__).resolve().parents[1]


def timed_run(task, params, every_s: float | None, folder: Path) -> tuple[float, SeedResume]:
    resume = None if every_s is None else SeedResume(folder, 0, "bench", every_s)
    start = time.perf_counter()
    train(task, params, 0, resume)
    return time.perf_counter() - start, resume


def save_cost(state: RunState, folder: Path, reps: int = 3) -> tuple[float, float]:
    """Seconds per save (best of ``reps``) and the file's size in MB."""
    best = float("inf")
    for rep in range(reps):
        path = folder / f"state{rep}.safetensors"
        start = time.perf_counter()
        state_to_file(state, path, "bench")
        best = min(best, time.perf_counter() - start)
    return best, path.stat().st_size / 1e6


def one_step(state: RunState, inputs: torch.Tensor, loss_fn) -> None:
    """One optimizer step, so that the optimizer holds its per-parameter state."""
    loss = loss_fn(state.model(inputs))
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()


def larger_states(rows: int = 1000) -> None:
    import torchvision
    from torch import nn

    logged = [{"step": i, "epoch": i, **{f"c{j}": 0.1 * j for j in range(22)}} for i in range(rows)]
    print(f"\nOne save of larger states ({rows} logged rows); overhead at the default "
          f"interval of {DEFAULT_RESUME_EVERY:g} s = time per save / interval")  # fmt: skip
    print("| state | parameters | MB | ms/save | overhead at default |")
    print("| --- | --- | --- | --- | --- |")
    cases = []
    for name, setting in validate_config(load_yaml(ROOT / "config" / "paper.yaml")).items():
        task = get_task(setting.task)
        params = task.params(**setting.params)
        data, state = init_run(task, params, 0, torch.device("cpu"))
        x, y = data.train_x[: params.batch_size], data.train_y[: params.batch_size]
        one_step(state, x, lambda out, t=task, y=y: t.loss(out, y))
        state.order = torch.randperm(len(data.train_x))
        cases.append((f"paper {name} ({setting.task})", state))
    model = torchvision.models.resnet18(num_classes=100)
    sgd = dataclasses.replace(task.params(), optimizer="sgd", momentum=0.9, lr=0.1)
    state = RunState(model, make_optimizer(sgd, model), generator("order", 0))
    one_step(state, torch.randn(2, 3, 32, 32), lambda out: nn.functional.cross_entropy(
        out, torch.tensor([0, 1])))  # fmt: skip
    state.order = torch.randperm(50_000)
    cases.append(("ResNet-18, CIFAR-100 head, SGD momentum", state))
    with tempfile.TemporaryDirectory() as tmp:
        for label, state in cases:
            state.rows = list(logged)
            seconds, mb = save_cost(state, Path(tmp))
            n_params = sum(p.numel() for p in state.model.parameters())
            share = 100 * seconds / DEFAULT_RESUME_EVERY
            print(f"| {label} | {n_params / 1e6:.2f}M | {mb:.1f} | {1000 * seconds:.1f} | "
                  f"{share:.3f}% |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None, help="shorten every run")
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = validate_config(load_yaml(ROOT / "config" / "config.yaml"))
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    for name, setting in settings.items():
        task = get_task(setting.task)
        params = task.params(**setting.params)
        if args.epochs:
            params = dataclasses.replace(params, epochs=args.epochs)
        modes = {"off": None, f"default ({setting.resume_every:g} s)": setting.resume_every,
                 "every checkpoint (0 s)": 0.0}  # fmt: skip
        times = {mode: [] for mode in modes}
        saves = {mode: (0, 0.0) for mode in modes}
        with tempfile.TemporaryDirectory() as tmp:
            train(task, params, 0)  # warm-up: first-call costs of torch's kernels
            names = list(modes)
            for rep in range(args.reps):
                # rotate the order, so that no mode always runs first after a pause
                for mode in names[rep % 3 :] + names[: rep % 3]:
                    every_s = modes[mode]
                    folder = Path(tmp) / f"{rep}-{len(times[mode])}-{mode[:3]}"
                    seconds, resume = timed_run(task, params, every_s, folder)
                    times[mode].append(seconds)
                    if resume is not None:
                        n, spent = saves[mode]
                        saves[mode] = (n + resume.saves, spent + resume.save_seconds)
        off = statistics.median(times["off"])
        print(f"\n{name}: {setting.task}, {params.epochs} epochs, eval_every {params.eval_every}")
        print("| mode | training s, median (min) | vs off, median | saves/run | ms/save "
              "| time in saves |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- |")
        for mode in modes:
            median = statistics.median(times[mode])
            n, spent = saves[mode]
            per = f"{1000 * spent / n:.1f}" if n else "-"
            share = 100 * spent / sum(times[mode])  # measured inside the runs: no noise
            print(f"| {mode} | {median:.2f} ({min(times[mode]):.2f}) | "
                  f"{100 * (median - off) / off:+.1f}% | {n / args.reps:g} | {per} | "
                  f"{share:.2f}% |")  # fmt: skip
    larger_states()


if __name__ == "__main__":
    main()
