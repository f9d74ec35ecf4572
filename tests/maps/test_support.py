"""Support values: states matched by the checkpoints they hold, edges and calls counted
over resamples, and planted tables whose true states and detour come back every time."""

import numpy as np
import pandas as pd
import pytest
from planted import planted_runs, table_config
from threadpoolctl import threadpool_limits

from trainmap.config.settings import validate_config
from trainmap.maps.pipeline import map_setting
from trainmap.maps.support import map_support, match_states, robust_calls


def test_relabelled_states_match_with_jaccard_one_and_a_split_state_does_not():
    kept = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert match_states(kept, np.array([2, 2, 2, 2, 0, 0, 0, 0, 1, 1])) == {
        0: (2, 1.0),
        1: (0, 1.0),
        2: (1, 1.0),
    }
    # the refit splits state 0 in two halves and merges 1 with 2
    matches = match_states(kept, np.array([0, 0, 3, 3, 1, 1, 1, 1, 1, 1]))
    assert matches[0][1] == pytest.approx(0.5) and matches[1] == (1, pytest.approx(4 / 6))
    assert 2 not in matches or matches[2][1] < 0.5


def paths(rows: dict[int, list[int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"seed": s, "step": 10 * t, "state": k} for s, p in rows.items() for t, k in enumerate(p)]
    )


def test_supports_count_the_resamples_that_find_each_state_edge_and_call():
    kept = paths({0: [0, 0, 1, 1, 2, 2], 1: [0, 0, 0, 2, 2, 2], 2: [0, 3, 3, 3, 3, 3]})
    same = kept["state"].map({0: 1, 1: 0, 2: 2, 3: 3}).tolist()  # relabelled
    merged = kept["state"].map({0: 0, 1: 1, 2: 1, 3: 2}).tolist()  # 1 and 2 in one state
    refits = [
        {"n_states": 4, "states": same, "kinds": ["detour", "", "", "dead_end"]},  # S1 is 0
        {"n_states": 4, "states": same, "kinds": ["", "", "", "dead_end"]},
        {"n_states": 3, "states": merged, "kinds": ["", "", "dead_end"]},
    ]
    support = map_support(kept, ["", "detour", "", "dead_end"], 4, refits)
    states = {s["id"]: s for s in support["states"]}
    assert support["resamples"] == 3 and support["n_states"] == {"3": 1, "4": 2}
    assert states[0]["support"] == 1.0 and states[3]["dead_end_support"] == 1.0
    # the merged state holds 1 and 2: 2 (4 of 6 checkpoints) comes back, 1 (2 of 6) not
    assert states[1]["support"] == pytest.approx(2 / 3) and states[2]["support"] == 1.0
    assert states[1]["detour_support"] == pytest.approx(1 / 3)
    edges = {(e["source"], e["target"]): e["support"] for e in support["edges"]}
    assert edges[(0, 1)] == pytest.approx(2 / 3) and edges[(0, 2)] == 1.0
    assert edges[(0, 3)] == 1.0 and edges[(3, 3)] == 1.0
    assert robust_calls(support, "detour") == [] and robust_calls(support, "dead_end") == [3]


def test_resamples_decoded_on_other_sequences_are_refused():
    kept = paths({0: [0, 0, 1]})
    with pytest.raises(ValueError, match="resample 4 decoded 2 checkpoints, the kept map 3"):
        map_support(kept, ["", ""], 2, [{"resample": 4, "n_states": 2, "states": [0, 1]}])


def planted_setting(tmp_path, trajectories: pd.DataFrame, resamples: int):
    """A validated ``source: table`` setting over the planted runs (the schema's defaults
    but for a short candidate list, diagonal covariances and two restarts)."""
    hmm = {"states": [2, 3, 4], "restarts": 2, "covariance": "diag"}
    config = table_config(tmp_path, "planted", trajectories, hmm,
                          stability={"resamples": resamples})  # fmt: skip
    return validate_config(config)["planted"]


@pytest.mark.parametrize("detour", [True, False])
def test_planted_states_and_detour_come_back_in_every_resample(detour, tmp_path):
    planted = planted_runs(n_runs=24, detour=detour)
    setting = planted_setting(tmp_path, planted.trajectories, resamples=4)
    with threadpool_limits(limits=1):
        result = map_setting(planted.trajectories, setting)
    training_map = result["map"]
    assert training_map["n_states"] == 3 and training_map["support"]["n_states"] == {"3": 4}
    truth = planted.states.sort_values(["seed", "step"])["state"].to_numpy()
    found = result["states"].sort_values(["seed", "step"])["state"].to_numpy()
    assert np.mean(truth == found) > 0.97  # numbered like the plant: S0 start, S1, S2 end
    assert all(s["support"] >= 0.9 for s in training_map["states"])
    detour_support = {s["id"]: s["detour_support"] for s in training_map["states"]}
    if detour:
        assert detour_support[1] >= 0.9 and training_map["support"]["robust_detours"] == [1]
        assert training_map["states"][1]["kind"] == "detour"
    else:
        assert max(detour_support.values()) < 0.5
        assert training_map["support"]["robust_detours"] == []
    assert all(e["support"] >= 0.9 for e in training_map["edges"] if e["runs"] > 1)
