"""How much the reported map moves with ``hmm.seed``, protocol by protocol (issue 30).

Reads a setting's ``trajectories.parquet`` (``make run`` writes
``results/parity/trajectories.parquet``: 40 runs x 151 checkpoints), and for every
protocol and every ``hmm.seed`` in ``--seeds`` runs the workflow's own HMM, map and
support steps in one process (trainmap.maps.pipeline.map_setting, one BLAS thread, as
the jobs run). A protocol is the default config's ``hmm``/``stability`` blocks with some
keys changed (``--protocol name key=value ...``). Per protocol it prints the reported K
of every seed, the robust detour and dead-end calls (support >= 0.5 with resamples, the
map's own calls without), how many of the seeds agree with the most common K and calls,
the mean and lowest pairwise adjusted Rand index of the decoded paths of every run,
the restarts that stopped at ``n_iter``, and the CPU seconds per seed with their ratio to
the first protocol's (measured in the same run). Results are cached per (protocol,
seed) in ``--cache`` so that a protocol added later reuses the others.

    .venv/bin/python bench/bench_stability.py results/parity/trajectories.parquet \\
        --protocol paper protocol=paper --protocol default
    .venv/bin/python bench/bench_stability.py TRAJ --seeds 0 1 --protocol smoke \\
        states=[1,2,3] restarts=1 resamples=2   # a minute
"""

import argparse
import itertools
import json
import os
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from trainmap.config.settings import load_yaml, validate_config
from trainmap.maps.pipeline import map_setting

REPO = Path(__file__).resolve().parents[1]
STABILITY_KEYS = ("resamples", "method", "rule")


def setting_for(protocol: list[str], seed: int, config: Path, name: str):
    """The validated setting of ``name`` in ``config`` with the protocol's keys and seed."""
    data = load_yaml(config)
    entry = data["settings"][name]
    hmm, stability = dict(entry.pop("hmm", {})), dict(entry.pop("stability", {}))
    for item in protocol:
        key, value = item.split("=", 1)
        (stability if key in STABILITY_KEYS else hmm)[key] = yaml.safe_load(value)
    data["settings"] = {name: {**entry, "hmm": {**hmm, "seed": seed}, "stability": stability}}
    return validate_config(data, predict_split=False)[name]


def run_one(job: tuple) -> dict:
    """One (protocol, seed): what map.json and selection.json would report, cached."""
    label, protocol, seed, args = job
    path = Path(args.cache) / f"{label}-seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    setting = setting_for(protocol, seed, Path(args.config), args.setting)
    trajectories = pd.read_parquet(args.trajectories)
    start = time.process_time()
    with threadpool_limits(limits=1):
        out = map_setting(trajectories, setting)
    cpu = time.process_time() - start
    training_map = out["map"]
    # The map's own calls, each marked "?" where fewer than half the resamples repeat it.
    calls = {
        kind: sorted(
            f"S{s['id']}{'?' if s.get('uncertain') else ''}"
            for s in training_map["states"]
            if s["kind"] == kind
        )
        for kind in ("detour", "dead_end")
    }
    fits = [out["model"], *out["refits"]]
    result = {
        "protocol": label,
        "seed": seed,
        "n_states": out["selection"]["n_states"],
        "split_n_states": out["selection"].get("split_n_states"),
        "picks": out["selection"].get("resamples", {}).get("picks"),
        "resamples": out["selection"].get("resamples"),
        "supports": [
            {k: s.get(k) for k in ("id", "support", "detour_support", "dead_end_support")}
            for s in training_map["states"]
        ],
        "detours": calls["detour"],
        "dead_ends": calls["dead_end"],
        "route_r2_cv": out["regression"].get("route_r2_cv"),
        "r2": out["regression"].get("r2"),
        "r2_last_state": out["regression"].get("r2_last_state"),
        "capped": sum(f.get("capped", 0) for f in fits if isinstance(f, dict)),
        "states": out["states"].sort_values(["seed", "step"])["state"].tolist(),
        "cpu_s": cpu,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def agreement(values: list) -> tuple[object, int]:
    """The most common value and how many share it."""
    value, count = Counter(json.dumps(v) for v in values).most_common(1)[0]
    return json.loads(value), count


def report(label: str, results: list[dict], baseline_cpu: float | None) -> dict:
    ks = [r["n_states"] for r in results]
    calls = [(r["detours"], r["dead_ends"]) for r in results]
    aris = [
        adjusted_rand_score(a["states"], b["states"]) for a, b in itertools.combinations(results, 2)
    ]
    k, k_agree = agreement(ks)
    call, call_agree = agreement(calls)
    cpu = float(np.mean([r["cpu_s"] for r in results]))
    row = {
        "protocol": label,
        "K per seed": ks,
        "K agree": f"{k_agree}/{len(ks)} (K={k})",
        "detours, dead ends": f"{call_agree}/{len(ks)} ({call[0]}, {call[1]})",
        "ARI mean": round(float(np.mean(aris)), 3) if aris else None,
        "ARI min": round(float(np.min(aris)), 3) if aris else None,
        "route R2 cv": [
            None if r["route_r2_cv"] is None else round(r["route_r2_cv"], 2) for r in results
        ],  # fmt: skip
        "capped": sum(r["capped"] for r in results),
        "CPU s/seed": round(cpu, 1),
        "vs first": None if not baseline_cpu else round(cpu / baseline_cpu, 2),
    }
    print(json.dumps(row))
    for r in results:
        print(f"   seed {r['seed']}: K {r['n_states']} (split {r['split_n_states']}, picks "
              f"{r['picks']}), calls {r['detours']}/{r['dead_ends']}, "
              f"R2 {r['r2']}, last-state {r['r2_last_state']}")  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trajectories")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--setting", default="parity")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--protocol", nargs="+", action="append", required=True,
                        metavar="NAME [KEY=VALUE ...]")  # fmt: skip
    parser.add_argument("--cache", default="/tmp/trainmap-bench-stability")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print(f"# {args.trajectories}, seeds {args.seeds}, {args.jobs} processes, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    jobs = [(p[0], p[1:], seed, args) for p in args.protocol for seed in args.seeds]
    with Pool(args.jobs) as pool:
        results = pool.map(run_one, jobs, chunksize=1)
    baseline = None
    for protocol in args.protocol:
        rows = [r for r in results if r["protocol"] == protocol[0]]
        row = report(protocol[0], rows, baseline)
        baseline = baseline or row["CPU s/seed"]
    print(f"# load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
