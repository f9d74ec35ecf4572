"""Modular addition at paper scale on one GPU: vectorised vs one seed at a time, one command.

    python bench/gpu_modular.py --out "$OUT"          # ~10 minutes on an H100/H200

Prepared for a short device lease (not run on a CPU-only machine). In order:
1. identity: 2 seeds x 20 epochs, vectorised vs the loop on the GPU: are the tables and
   weights bit-identical (the CPU guarantee), else the largest differences;
2. baseline: one seed alone (the loop), ``--loop-epochs`` epochs, seconds per epoch;
3. vectorised: p 113, ``--seeds`` 40, batch 2048, eval every 10 epochs, 10,000 epochs, or,
   when the first ``--probe-epochs`` project past ``--budget-s``, as many epochs as fit
   (per-epoch times are compared; the projection for 10,000 epochs is reported);
4. launches: one training step of the group, eager vs ``torch.compile`` (mode
   "reduce-overhead", which replays it as a CUDA graph), milliseconds per step.
Every result is one JSON line, also written to ``<out>/gpu_modular.jsonl``.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from trainmap.seedops import SeedKernels  # noqa: E402
from trainmap.tasks.params import parse_params  # noqa: E402
from trainmap.tasks.registry import get_task  # noqa: E402
from trainmap.training.loop import train  # noqa: E402
from trainmap.training.seed_group import batch_of, init_group  # noqa: E402
from trainmap.training.vectorized import train_vectorized  # noqa: E402

PAPER = {"p": 113, "train_fraction": 0.3, "batch_size": 2048, "eval_every": 10, "device": "cuda"}


def emit(out: Path, record: dict) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with open(out / "gpu_modular.jsonl", "a") as f:
        f.write(line + "\n")


def timed(fn) -> tuple[object, float]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return result, time.perf_counter() - start


def identity(task, p, out: Path) -> None:
    short = dataclasses.replace(p, epochs=20)
    for seed, table, weights in train_vectorized(task, short, [0, 1]):
        alone, alone_weights = train(task, short, seed)
        numeric = [c for c in alone.columns if c != "diverged"]
        diff = (table[numeric] - alone[numeric]).abs().max()
        emit(
            out,
            {
                "check": "identity",
                "seed": seed,
                "tables_equal": bool(table.equals(alone)),
                "weights_equal": all(torch.equal(weights[k], alone_weights[k]) for k in weights),
                "max_table_diff": {k: float(v) for k, v in diff.items() if v > 0},
                "max_weight_diff": max(
                    float((weights[k] - alone_weights[k]).abs().max()) for k in weights
                ),
            },
        )


def compiled_step(task, p, n_seeds: int, out: Path) -> None:
    data, state = init_group(task, p, list(range(n_seeds)), torch.device("cuda"))
    kernels, model = SeedKernels(), state.models[0]
    gen = torch.Generator().manual_seed(0)
    index = torch.stack(
        [
            torch.randperm(data.train_x.shape[1], generator=gen)[: p.batch_size]
            for _ in range(n_seeds)
        ]
    ).cuda()
    x, y = batch_of(data, index)

    def loss_of(x, y):
        return task.stacked_loss(model.stacked_forward(state.params, x, kernels), y).sum()

    loss_of(x, y).backward()  # the kernel checks run eagerly, once
    for name, fn in (
        ("eager", loss_of),
        ("compiled", torch.compile(loss_of, mode="reduce-overhead")),
    ):
        try:

            def step(fn=fn):
                state.zero_grad()
                fn(x, y).backward()
                state.step_optimizer()

            for _ in range(5):
                step()
            _, seconds = timed(lambda: [step() for _ in range(50)])
            emit(
                out,
                {
                    "check": "step",
                    "mode": name,
                    "seeds": n_seeds,
                    "ms_per_step": seconds / 50 * 1e3,
                },
            )
        except Exception as error:  # report and go on: the lease is short
            emit(out, {"check": "step", "mode": name, "error": repr(error)[:500]})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10000)
    parser.add_argument("--loop-epochs", type=int, default=200)
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=420.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    assert torch.cuda.is_available(), "needs a CUDA device"
    task = get_task("modular_addition")
    p = parse_params(task.params, {**PAPER, "epochs": args.epochs}, "gpu")
    emit(out=args.out, record={"device": torch.cuda.get_device_name(), "torch": torch.__version__})

    identity(task, p, args.out)
    _, loop_s = timed(lambda: train(task, dataclasses.replace(p, epochs=args.loop_epochs), 0))
    loop_per_epoch = loop_s / args.loop_epochs
    emit(
        args.out,
        {
            "check": "loop",
            "epochs": args.loop_epochs,
            "seconds": loop_s,
            "s_per_seed_epoch": loop_per_epoch,
        },
    )

    seeds = list(range(args.seeds))
    probe = dataclasses.replace(p, epochs=args.probe_epochs)
    _, probe_s = timed(lambda: list(train_vectorized(task, probe, seeds)))
    projected = probe_s / args.probe_epochs * args.epochs
    epochs = (
        args.epochs
        if projected <= args.budget_s
        else int(args.budget_s / probe_s * args.probe_epochs)
    )
    _, vec_s = timed(
        lambda: list(train_vectorized(task, dataclasses.replace(p, epochs=epochs), seeds))
    )
    per_epoch = vec_s / epochs
    emit(
        args.out,
        {
            "check": "vectorised",
            "seeds": args.seeds,
            "epochs": epochs,
            "seconds": vec_s,
            "projected_s_for_10000_epochs": per_epoch * 10000,
            "speedup_vs_one_seed_at_a_time": loop_per_epoch * args.seeds / per_epoch,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        },
    )
    compiled_step(task, p, args.seeds, args.out)


if __name__ == "__main__":
    main()
