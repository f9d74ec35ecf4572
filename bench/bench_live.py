"""What ``live=`` adds to a ``Recorder.log`` (issue: under 5% for the MLP example).

Run: ``.venv/bin/python bench/bench_live.py [--map results/parity] [--reps 300]``.
examples/plain_loop.py's 16-64-64-2 MLP; ``Recorder.log`` with and without ``live=``,
alternating blocks of calls, one thread, process CPU time (``time.process_time``), the
median per call; no file writes (the Recorder's first-minute writes are switched off
here, so only the log's own work is timed). The map: ``--map`` (a results directory with
its live.json), else a synthetic one as large as the default parity map can get: K = 8
states with full covariances over the 14 metrics, 40 fit runs of 151 checkpoints (the
filter's cost grows with K^2 and K F^2, the prediction's with K x runs).
"""

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from torch import nn

import trainmap.record.recorder as recorder_module
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.live.livemap import LiveMap
from trainmap.record import Recorder

EVERY = 64  # steps between checkpoints


def synthetic_map(n_states: int = 8, n_runs: int = 40, n_checkpoints: int = 151) -> LiveMap:
    """Fit runs of ``n_checkpoints`` checkpoints ``EVERY`` steps apart, converging in the
    second half, so every timed log (``--reps`` x 2 of them from step 0) has runs at risk
    and computes the whole prediction."""
    rng = np.random.default_rng(0)
    f = len(METRIC_COLUMNS)
    a = rng.normal(size=(n_states, f, f))
    transmat = rng.uniform(size=(n_states, n_states)) + 5 * np.eye(n_states)
    runs = []
    late = (n_checkpoints // 2, n_checkpoints)  # convergence checkpoints
    for seed in range(n_runs):
        changes = np.sort(rng.choice(np.arange(1, n_checkpoints), n_states - 1, replace=False))
        runs.append({"seed": seed, "starts": [0, *(EVERY * changes).tolist()],
                     "states": list(range(n_states)),
                     "convergence_step": int(EVERY * rng.integers(*late)),
                     "censored": bool(rng.uniform() < 0.1)})  # fmt: skip
    return LiveMap({
        "format": 1, "features": list(METRIC_COLUMNS),
        "scale": {"mean": [0.0] * f, "sd": [1.0] * f},
        "model": {"n_states": n_states, "covariance": "full",
                  "startprob": np.eye(n_states)[0].tolist(),
                  "transmat": (transmat / transmat.sum(1, keepdims=True)).tolist(),
                  "means": rng.normal(size=(n_states, f)).tolist(),
                  "covars": (a @ a.transpose(0, 2, 1) + np.eye(f)).tolist()},
        "states": [{"id": k, "kind": "detour" if k == 3 else ""} for k in range(n_states)],
        "convergence": {"column": "eval_accuracy", "threshold": 0.9},
        "checkpoint_every": float(EVERY), "runs": runs,
    })  # fmt: skip


def per_call(rec: Recorder, steps, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        step = next(steps)
        start = time.process_time()
        rec.log(step, train_loss=1.0, eval_accuracy=0.5)
        times.append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--map", help="a results directory with live.json (default: synthetic)")
    parser.add_argument("--reps", type=int, default=300, help="log calls per side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recorder_module.EARLY_WRITES_S = 0.0  # no writes: time the log's own work
    live = LiveMap.load(args.map) if args.map else synthetic_map(n_checkpoints=4 * args.reps)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 2))  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        plain = Recorder(f"{directory}/a", seed=0, model=model, flush_every=1e9)
        with_live = Recorder(f"{directory}/b", seed=0, model=model, flush_every=1e9, live=live)
        plain_steps, live_steps = iter(range(0, 10**9, EVERY)), iter(range(0, 10**9, EVERY))
        per_call(plain, plain_steps, 10), per_call(with_live, live_steps, 10)  # warm-up
        a, b = [], []
        for _ in range(10):  # alternating blocks: drifting load hits both sides alike
            a += per_call(plain, plain_steps, args.reps // 10)
            b += per_call(with_live, live_steps, args.reps // 10)
        alone = live_alone(live, plain._rows)
    plain_ms, live_ms = statistics.median(a) * 1e3, statistics.median(b) * 1e3
    k, f = live.filter.n_states, live.filter.n_features
    print(f"{platform.processor() or platform.machine()}, torch threads 1, {len(a)} calls each")
    print(f"map: K={k}, {f} features, {live.n_fit_runs} fit runs ({args.map or 'synthetic'})")
    print(
        f"log without live: {plain_ms:.3f} ms; with live: {live_ms:.3f} ms; "
        f"overhead {100 * (live_ms - plain_ms) / plain_ms:+.1f}%"
    )
    share = 100 * alone / (plain_ms / 1e3)
    print(f"the live step alone (LiveRun.update on the same rows, back to back): "
          f"{alone * 1e6:.1f} us per row ({share:.1f}% of a log)")  # fmt: skip


def live_alone(live: LiveMap, rows: list[dict]) -> float:
    """Median CPU seconds of ``LiveRun.update`` over ``rows`` (a Recorder's logged rows),
    in a tight loop: the live step's own cost, without what the metrics' work around it
    does to the caches (the difference of the medians above includes that)."""
    times = []
    for _ in range(5):
        run = live.run(0)
        for row in rows:
            start = time.process_time()
            run.update(row["step"], row)
            times.append(time.process_time() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
