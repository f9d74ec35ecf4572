"""Re-select K on one trained setting at several checkpoint spacings (no retraining).

Reads a setting's ``trajectories.parquet`` (``make run`` writes
``results/parity/trajectories.parquet``, 40 runs x 151 checkpoints, every 2 epochs),
keeps every m-th checkpoint of every run (m = 1, 2, 3, 5, 10 by default: every 2, 4, 6,
10, 20 epochs), and runs the workflow's own HMM stage on each subsample: prepare the
sequences, fit K = 1..8 (5 restarts, 32 EM iterations, full covariance, per-run z-scores:
the default config) and select K by validation BIC. Prints one table row per spacing:
checkpoints per run, the selected K, whether it is the largest candidate, how many
restarts alone agree, the validation BIC at K-1, K, K+1, and the CPU time of the fits
(relative to the densest spacing, measured in the same run). The fits run one after
another with one BLAS thread, as each fit_hmm job does.

    .venv/bin/python bench/bench_spacing.py results/parity/trajectories.parquet
    .venv/bin/python bench/bench_spacing.py TRAJ --every 1 5 --selection kfold   # 5 folds
    .venv/bin/python bench/bench_spacing.py TRAJ --every 1 5 --states 1 2 3 --restarts 1  # smoke
"""

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from trainmap.hmm.fit import fit_state_count
from trainmap.hmm.kfold import cross_validation, fit_fold
from trainmap.hmm.selection import select_state_count
from trainmap.hmm.sequences import observations, prepare_sequences
from trainmap.io.columns import METRIC_COLUMNS


def every_mth(trajectories: pd.DataFrame, m: int) -> pd.DataFrame:
    """Every m-th checkpoint of every run, starting at the first (positions 0, m, 2m, ...)."""
    runs = trajectories.sort_values(["seed", "step"], kind="stable")
    position = runs.groupby("seed").cumcount()
    return runs[position % m == 0]


def select_at(trajectories: pd.DataFrame, args: argparse.Namespace) -> dict:
    kfold = args.selection == "kfold"
    prepared = prepare_sequences(
        trajectories,
        args.features,
        max_checkpoints=1000,
        normalize=args.normalize,
        val_fraction=0.2,
        seed=0,
        states=args.states,
        folds=args.folds if kfold else None,
    )
    options = {
        "restarts": args.restarts,
        "n_iter": args.n_iter,
        "covariance": args.covariance,
        "seed": 0,
    }
    start = time.process_time()
    with threadpool_limits(limits=1):
        if kfold:
            fits = [cross_validated(prepared.table, k, args, options) for k in args.states]
        else:
            fit = observations(prepared.table, args.features, "fit")
            val = observations(prepared.table, args.features, "val")
            fits = [fit_state_count(fit, val, k, args.features, **options) for k in args.states]
    cpu = time.process_time() - start
    return {"selection": select_state_count(fits), "cpu_s": cpu, "n_rows": len(prepared.table)}


def cross_validated(table: pd.DataFrame, k: int, args: argparse.Namespace, options: dict) -> dict:
    """What selection needs of a kfold k<K>.json (the folds' scores), without the refit on
    all runs, which only the map needs."""
    folds = [fit_fold(table, args.features, k, f, **options) for f in range(args.folds)]
    cv = cross_validation(folds)
    scores = {key: float(np.sum(cv[f"fold_{key}"])) for key in ("val_loglik", "val_aic", "val_bic")}
    return {"n_states": k, **scores, "cv": cv}


def spacing_label(trajectories: pd.DataFrame, m: int) -> str:
    """Epochs (or steps) between kept checkpoints, from the first run's first two."""
    run = trajectories[trajectories["seed"] == trajectories["seed"].min()].sort_values("step")
    column = "epoch" if "epoch" in run and run["epoch"].nunique() > 1 else "step"
    gap = (run[column].iloc[1] - run[column].iloc[0]) * m
    return f"{gap:g} {column}s"


def bic_near(selection: dict) -> str:
    rows = {row["n_states"]: row["val_bic"] for row in selection["scores"]}
    k = selection["n_states"]
    return " / ".join(f"{rows[j]:,.0f}" if j in rows else "–" for j in (k - 1, k, k + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trajectories", type=Path)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--states", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--n-iter", type=int, default=32)
    parser.add_argument("--covariance", default="full")
    parser.add_argument("--normalize", default="per_run")
    parser.add_argument("--features", nargs="+", default=list(METRIC_COLUMNS))
    parser.add_argument("--selection", choices=["split", "kfold"], default="split")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    trajectories = pd.read_parquet(args.trajectories)
    digest = hashlib.sha256(args.trajectories.read_bytes()).hexdigest()[:12]
    print(f"# {args.trajectories} (sha256 {digest}), {trajectories['seed'].nunique()} runs")
    print(f"# machine: {platform.machine()} {platform.processor() or ''}, load {load()}")
    print(
        f"# selection: {args.selection}"
        + (f", {args.folds} folds" if args.selection == "kfold" else "")
    )
    print(
        "| spacing | checkpoints per run | selected K | largest candidate | "
        "restarts agreeing | folds agreeing | val BIC at K-1 / K / K+1 | fit CPU s | "
        "CPU vs densest |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows, baseline = [], None
    for m in sorted(args.every):
        subsample = every_mth(trajectories, m)
        result = select_at(subsample, args)
        selection = result["selection"]
        baseline = baseline or result["cpu_s"]
        restarts = selection["stability"]["restarts"]
        folds = selection["stability"].get("folds")
        fold_text = f"{folds['agree']}/{folds['n']} {folds['picks']}" if folds else "–"
        row = {
            "every": m,
            "spacing": spacing_label(trajectories, m),
            "checkpoints_per_run": int(subsample.groupby("seed").size().max()),
            "n_states": selection["n_states"],
            "at_largest_candidate": selection["at_largest_candidate"],
            "restarts_agreeing": f"{restarts['agree']}/{restarts['n']}",
            "restart_picks": restarts["picks"],
            "fold_n_states": selection.get("fold_n_states"),
            "val_bic": {r["n_states"]: r["val_bic"] for r in selection["scores"]},
            "cpu_s": result["cpu_s"],
        }
        rows.append(row)
        print(
            f"| {row['spacing']} | {row['checkpoints_per_run']} | {row['n_states']} | "
            f"{'yes' if row['at_largest_candidate'] else 'no'} | {row['restarts_agreeing']} "
            f"{restarts['picks']} | {fold_text} | {bic_near(selection)} | {row['cpu_s']:.1f} | "
            f"{row['cpu_s'] / baseline:.2f} |",
            flush=True,
        )
    print(f"# load at the end {load()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
