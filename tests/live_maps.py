"""A live.json of the planted map (tests/planted.py), features already in z units."""

import json
from pathlib import Path

from planted import FEATURES, THRESHOLD, planted_runs

from trainmap.hmm.fit import model_to_json
from trainmap.live.build import live_map
from trainmap.maps.detours import convergence_times

RULE = {"column": "eval_accuracy", "threshold": THRESHOLD}


def planted_live(planted=None, kinds=("", "detour", "")) -> dict:
    """live.json's content for planted runs: the planted model, the true paths as the
    decoded ones, state 1 the detour; means 0 and SDs 1 so that values are z-scores."""
    planted = planted or planted_runs()
    times = convergence_times(planted.trajectories, "eval_accuracy", THRESHOLD)
    runs = times.assign(measured=True).rename_axis("seed").reset_index()
    prepare = {
        "normalize": "global",
        "scale": {"mean": dict.fromkeys(FEATURES, 0.0), "sd": dict.fromkeys(FEATURES, 1.0)},
    }
    states = {"states": [{"id": k, "kind": kind} for k, kind in enumerate(kinds)]}
    model = model_to_json(planted.model, FEATURES)
    return live_map("planted", model, prepare, states, planted.states, runs, RULE)


def write_planted_live(directory: Path, **kwargs) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "live.json").write_text(json.dumps(planted_live(**kwargs)))
    return directory
