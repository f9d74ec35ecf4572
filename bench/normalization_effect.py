"""Which K does BIC select under per-run vs global z-scoring? (docs/normalization.md)

Samples 40 runs x 100 steps from a planted 4-state left-to-right Gaussian HMM (the model
of tests/hmm/test_selection.py; ``--stay`` sets how long a run stays in each state, so how far
runs get in 100 steps), prepares them both ways and fits K = 1..8 with the workflow's
defaults (5 restarts, 32 iterations, full covariance). Prints, per normalisation, the
selected K, the restart-mean choice and the share of steps whose decoded state matches
the planted one after Hungarian matching. One thread; about a minute per line.

    .venv/bin/python bench/normalization_effect.py --stay 0.96 0.98
"""

import argparse

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from trainmap.hmm.decode import decode_states
from trainmap.hmm.fit import fit_state_count, model_from_json
from trainmap.hmm.selection import select_state_count
from trainmap.hmm.sequences import observations, prepare_sequences

FEATURES = ["a", "b", "c"]


def planted_runs(stay: float, n_runs: int = 40, length: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    model = GaussianHMM(4, covariance_type="full", init_params="", params="")
    model.startprob_ = np.array([1.0, 0.0, 0.0, 0.0])
    model.transmat_ = np.diag([stay, stay, stay, 1.0]) + np.diag([1 - stay] * 3, k=1)
    model.means_ = 3.0 * np.array([[0, 0, 0], [1, 0, 1], [1, 1, 0], [0, 1, 1]], float)
    factors = rng.normal(0.0, 0.3, size=(4, 3, 3))
    model.covars_ = factors @ factors.transpose(0, 2, 1) + 0.2 * np.eye(3)
    tables = []
    for run in range(n_runs):
        X, states = model.sample(length, random_state=run)
        table = pd.DataFrame(X, columns=FEATURES)
        table.insert(0, "seed", run)
        table.insert(1, "step", np.arange(length))
        table["true"] = states
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def measure(runs: pd.DataFrame, normalize: str, states: list[int]) -> dict:
    prepared = prepare_sequences(
        runs, FEATURES, max_checkpoints=1000, normalize=normalize, val_fraction=0.2, seed=0
    )
    fit = observations(prepared.table, FEATURES, "fit")
    val = observations(prepared.table, FEATURES, "val")
    options = {"restarts": 5, "n_iter": 32, "covariance": "full", "seed": 0}
    fits = [fit_state_count(fit, val, k, FEATURES, **options) for k in states]
    selection = select_state_count(fits)
    kept = next(f for f in fits if f["n_states"] == selection["n_states"])
    decoded = decode_states(model_from_json(kept), prepared.table, FEATURES)
    both = decoded.merge(runs[["seed", "step", "true"]], on=["seed", "step"])
    counts = np.zeros((selection["n_states"], 4))
    np.add.at(counts, (both["state"], both["true"]), 1)
    rows, cols = linear_sum_assignment(-counts)
    return {
        "selected": selection["n_states"],
        "mean_rule": selection["mean_n_states"],
        "matched": counts[rows, cols].sum() / len(both),
        "bic": [round(row["val_bic"]) for row in selection["scores"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stay", type=float, nargs="+", default=[0.96, 0.98])
    parser.add_argument("--max-states", type=int, default=8)
    args = parser.parse_args()
    states = list(range(1, args.max_states + 1))
    columns = [
        "stay",
        "runs ending in state 0/1/2/3",
        "z-scoring",
        "BIC selects K",
        "restart-mean rule",
        "steps matched",
        "validation BIC, K = 1..",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    with threadpool_limits(limits=1):
        for stay in args.stay:
            runs = planted_runs(stay)
            ends = runs.groupby("seed")["true"].max().value_counts()
            reached = "/".join(str(ends.get(k, 0)) for k in range(4))
            for normalize in ("global", "per_run"):
                r = measure(runs, normalize, states)
                print(
                    f"| {stay} | {reached} | {normalize} | {r['selected']} | {r['mean_rule']} "
                    f"| {r['matched']:.1%} | {', '.join(map(str, r['bic']))} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
