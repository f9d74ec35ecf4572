"""Benchmark the HMM stage: K fits in one process vs one Snakemake job per K.

Generates a ``source: table`` setting (runs sampled from a planted 4-state left-to-right
Gaussian HMM), prepares its sequences with the workflow, then times
(a) every fit_hmm computation (K = 1..8, all restarts) and the selection, sequentially
    in this process with one BLAS/OpenMP thread (as each fit_hmm job has; threaded BLAS
    on these small matrices is slower, several times so on a busy machine), and
(b) the same through the workflow: ``snakemake --cores 2 results/<setting>/hmm/selection.json``
    (8 fit_hmm jobs, largest K first, then select_state_count; Snakemake's start-up and
    every job's Python start-up included).

    .venv/bin/python bench/bench_hmm_stage.py            # the recorded case (~8 min, 2 cores)
    .venv/bin/python bench/bench_hmm_stage.py --runs 10 --steps 100 --restarts 1   # smoke
"""

import argparse
import base64
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from threadpoolctl import threadpool_limits

from trainmap.hmm.fit import fit_state_count
from trainmap.hmm.selection import select_state_count
from trainmap.hmm.sequences import feature_columns, observations

ROOT = Path(__file__).resolve().parents[1]

SETTING = "bench"


def planted_runs(n_runs: int, n_steps: int, n_features: int, seed: int = 0) -> pd.DataFrame:
    """Runs from a 4-state left-to-right Gaussian HMM; eval_accuracy 1 from state 3 on."""
    from hmmlearn.hmm import GaussianHMM

    rng = np.random.default_rng(seed)
    model = GaussianHMM(4, covariance_type="full", init_params="", params="")
    model.startprob_ = np.array([1.0, 0.0, 0.0, 0.0])
    stay = 1 - 4 / n_steps  # about n_steps / 4 steps per state
    model.transmat_ = np.diag([stay, stay, stay, 1.0]) + np.diag([1 - stay] * 3, k=1)
    model.means_ = rng.normal(0.0, 2.0, size=(4, n_features))
    factors = rng.normal(0.0, 0.3, size=(4, n_features, n_features))
    model.covars_ = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(n_features)
    tables = []
    for run in range(n_runs):
        X, states = model.sample(n_steps, random_state=seed * 100_003 + run)
        table = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(n_features)])
        table.insert(0, "seed", run)
        table.insert(1, "step", np.arange(n_steps) * 10)
        table["eval_accuracy"] = (states >= 2).astype(float)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def write_setting(workdir: Path, args: argparse.Namespace) -> Path:
    table = planted_runs(args.runs, args.steps, args.features)
    table.to_parquet(workdir / "runs.parquet", index=False)
    config = {
        "settings": {
            SETTING: {
                "source": "table",
                "table": "runs.parquet",
                "features": [c for c in table.columns if c.startswith("f")],
                "convergence": {"column": "eval_accuracy", "threshold": 0.5},
            }
        },
        "hmm": {
            "states": list(range(1, args.max_states + 1)),
            "restarts": args.restarts,
            "n_iter": args.n_iter,
            "covariance": "full",
            "normalize": "per_run",
            "val_fraction": args.val_runs / args.runs,
            "max_checkpoints": args.steps,
            "seed": 0,
        },
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, config: Path, target: str, cores: int) -> float:
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        target,
        *("-s", str(ROOT / "Snakefile"), "--directory", str(workdir)),
        *("--configfile", str(config), "--cores", str(cores), "--quiet", "all"),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def sequential(workdir: Path, config: Path) -> tuple[dict[int, float], float, int]:
    """Every K's fit_state_count then the selection, in this process, one thread.

    Returns (seconds per K, total seconds, selected K).
    """
    hmm = yaml.safe_load(config.read_text())["hmm"]
    defaults = {"tol": 0.01, "min_covar": 0.001, "covariance_guard": "singular"}  # schema defaults
    table = pd.read_parquet(workdir / "results" / SETTING / "hmm" / "sequences.parquet")
    features = feature_columns(table)
    start = time.perf_counter()
    fit, val = observations(table, features, "fit"), observations(table, features, "val")
    options = {key: hmm[key] for key in ("restarts", "n_iter", "covariance", "seed")}
    fits, per_k = [], {}
    with threadpool_limits(limits=1):
        for k in hmm["states"]:
            begin = time.perf_counter()
            fits.append(fit_state_count(fit, val, k, features, **options, **defaults))
            per_k[k] = time.perf_counter() - begin
    selected = select_state_count(fits)["n_states"]
    return per_k, time.perf_counter() - start, selected


def job_times(workdir: Path) -> dict[str, tuple[float, float]]:
    """(start, end) of each job's output, from Snakemake's metadata records."""
    times = {}
    for record in (workdir / ".snakemake" / "metadata").iterdir():
        path = base64.b64decode(record.name.replace("@", "/") + "===").decode()
        data = json.loads(record.read_text())
        times[path] = (data["starttime"], data["endtime"])
    return times


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_until_quiet(threshold: float, timeout_s: float = 600.0) -> float:
    """On a shared machine, start a timed phase only once the 1-min load is below threshold."""
    deadline = time.monotonic() + timeout_s
    while load() >= threshold and time.monotonic() < deadline:
        time.sleep(10)
    return load()


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    model = names[0] if names else platform.processor()
    return f"{os.cpu_count()}-core {platform.machine()}, {model}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs in all (fit + validation)")
    parser.add_argument("--val-runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--features", type=int, default=14)
    parser.add_argument("--max-states", type=int, default=8)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--n-iter", type=int, default=32)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=0.5,
        help="wait (up to 10 min) for the 1-min load average to drop below this before (a), (b)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_hmm_") as tmp:
        workdir = Path(tmp)
        config = write_setting(workdir, args)
        target = f"results/{SETTING}/hmm/sequences.parquet"
        prepare_s = snakemake(workdir, config, target, args.cores)
        loads = [wait_until_quiet(args.quiet_load)]
        per_k, seq_s, seq_k = sequential(workdir, config)
        loads += [load(), wait_until_quiet(args.quiet_load)]
        cpu = children_cpu()
        flow_s = snakemake(workdir, config, f"results/{SETTING}/hmm/selection.json", args.cores)
        flow_cpu = children_cpu() - cpu
        loads.append(load())
        results = workdir / "results" / SETTING / "hmm"
        selection = json.loads((results / "selection.json").read_text())
        jobs = job_times(workdir)
    print(f"machine: {machine()}")
    print(
        f"data: {args.runs - args.val_runs} fit + {args.val_runs} val runs x {args.steps} steps "
        f"x {args.features} features; K=1..{args.max_states}, {args.restarts} restarts, "
        f"{args.n_iter} iterations, full covariance"
    )
    print(f"collect + prepare (workflow, not compared): {prepare_s:.1f} s")
    print(f"(a) sequential, one process, one thread: {seq_s:.1f} s (selected K={seq_k})")
    print(
        f"(b) workflow, --cores {args.cores}: {flow_s:.1f} s (selected K={selection['n_states']}); "
        f"CPU time of all its processes {flow_cpu:.1f} s"
    )
    print(f"ratio (b)/(a): {flow_s / seq_s:.2f}")
    print(
        "1-min load average at the start and end of (a), of (b): "
        + ", ".join(f"{value:.2f}" for value in loads)
    )
    first = min(start for start, _ in jobs.values())
    print("K | (a) s | (b) job start..end s")
    for k, seconds in per_k.items():
        start, end = jobs[f"results/{SETTING}/hmm/k{k}.json"]
        print(f"{k} | {seconds:.1f} | {start - first:.1f}..{end - first:.1f}")


if __name__ == "__main__":
    main()
