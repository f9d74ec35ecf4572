"""One run is a map too (hmm.selection: time): a planted single run's phases come back,
K is chosen on held-out blocks of its checkpoints (or in sample when the run is short),
there is no detour regression, and the config checks name the keys."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG, run_workflow
from planted import FEATURES, table_config
from threadpoolctl import threadpool_limits

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.figures.map import map_geometry, plot_map
from trainmap.figures.summary import setting_details
from trainmap.hmm.blocks import IN_SAMPLE
from trainmap.hmm.sequences import SequenceError, prepare_sequences
from trainmap.maps.no_regression import ONE_RUN
from trainmap.maps.phases import phases_text, run_phases
from trainmap.maps.pipeline import map_setting

# Four phases of one run; each change moves two features (l1 and spectral up, then l2
# up and spectral down, then var_w down and spectral up), 10 SDs of the noise each.
PHASE_MEANS = np.array(
    [[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 3.0], [3.0, 3.0, 0.0, 0.0], [3.0, 3.0, -3.0, 3.0]]
)
# the changes (checkpoints 45, 100, 152) fall inside blocks, not at their edges
PHASE_LENGTHS = (45, 55, 52, 48)
CHANGED = ("l1", "l2", "var_w")
EVERY = 10  # steps between checkpoints
NOISE = 0.3  # SD of the metrics within a phase


def planted_run(lengths=PHASE_LENGTHS, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """One run (seed 7) through the planted phases: (trajectory, the true phase of each
    checkpoint). Steps 0, 10, 20, ...; eval_accuracy rises in the last phase."""
    rng = np.random.default_rng(seed)
    path = np.repeat(np.arange(len(lengths)), lengths)
    X = PHASE_MEANS[path] + rng.normal(scale=NOISE, size=(len(path), len(FEATURES)))
    frame = pd.DataFrame(X, columns=FEATURES)
    frame.insert(0, "seed", 7)
    frame.insert(1, "step", EVERY * np.arange(len(path)))
    frame["eval_accuracy"] = np.where(path == len(lengths) - 1, 0.95, 0.4)
    return frame.assign(diverged=False), path


def one_run_setting(tmp_path, trajectory: pd.DataFrame, **hmm):
    """A validated ``source: table`` setting of the one run, K chosen over time."""
    hmm = {"states": [1, 2, 3, 4, 5], "restarts": 2, "covariance": "diag", "selection": "time",
           **hmm}  # fmt: skip
    config = table_config(tmp_path, "one", trajectory, hmm)
    return validate_config(config)["one"]


@pytest.fixture(scope="module")
def planted_map(tmp_path_factory):
    trajectory, path = planted_run()
    setting = one_run_setting(tmp_path_factory.mktemp("one_run"), trajectory)
    with threadpool_limits(limits=1):
        return map_setting(trajectory, setting), path


def test_planted_phases_of_one_run_come_back(planted_map):
    result, truth = planted_map
    selection, training_map = result["selection"], result["map"]
    assert selection["selection"] == "time" and selection["held_out"] == "blocks"
    assert selection["n_states"] == 4 and len(selection["fold_n_states"]) == 5
    found = result["states"].sort_values("step")["state"].to_numpy()
    assert np.mean(found == truth) > 0.97  # numbered in first-reach order, like the plant
    phases = training_map["phases"]
    assert [p["state"] for p in phases] == [0, 1, 2, 3]
    starts = np.cumsum((0, *PHASE_LENGTHS[:-1]))
    assert [p["first_step"] for p in phases] == pytest.approx(EVERY * starts, abs=EVERY)
    assert [p["checkpoints"] for p in phases] == pytest.approx(PHASE_LENGTHS, abs=1)
    # dwell in steps: to the next phase's first checkpoint; the last to the run's end
    assert phases[0]["steps"] == phases[1]["first_step"] - phases[0]["first_step"]
    assert phases[-1]["steps"] == phases[-1]["last_step"] - phases[-1]["first_step"]
    assert [p["next_state"] for p in phases] == [1, 2, 3, None]
    for phase, feature, sign in zip(phases[:3], CHANGED, (1, 1, -1), strict=True):
        assert np.sign(phase["feature_changes"][feature]) == sign
    assert phases[-1]["feature_changes"] == {}


def test_one_run_has_no_detour_regression_and_says_so(planted_map):
    result, _ = planted_map
    regression = result["regression"]
    assert regression["reason"] == ONE_RUN and regression["r2"] is None
    assert not regression["significant"] and regression["n_detours"] == 0
    assert not result["detours"]["is_detour"].any()
    assert all(s["kind"] == "" for s in result["map"]["states"])
    details = setting_details(result["map"])
    assert details[-1].startswith("phases of the one run: S0 (steps 0–")


def test_the_map_of_one_run_writes_the_dwell_under_each_state(planted_map):
    result, _ = planted_map
    training_map = result["map"]
    lines = map_geometry(training_map, result["detours"])["node_lines"]
    first = training_map["phases"][0]
    assert lines[0][0] == f"steps 0–{first['last_step']} · {first['checkpoints']} checkpoints"
    assert not any("runs" in line for k in lines for line in lines[k])
    figure = plot_map(training_map, result["detours"], result["regression"], "one")
    assert "one run: no detour regression" in figure.axes[0].get_title()
    assert "detour states: not assessed" in figure.axes[0].get_title()  # not "none"


def test_kept_model_is_fit_on_every_checkpoint(planted_map):
    result, truth = planted_map
    model = result["model"]
    assert model["selection"] == "time" and model["n_fit_rows"] == len(truth)
    assert model["fitted_on"] == "all runs" and len(model["cv"]["fold_n_val_rows"]) == 5


def test_a_short_run_gets_the_in_sample_bic_and_a_note(tmp_path):
    trajectory, _ = planted_run(lengths=(12, 12, 12))
    setting = one_run_setting(tmp_path, trajectory, states=[1, 2, 3, 4])
    with threadpool_limits(limits=1):
        result = map_setting(trajectory, setting)
    selection = result["selection"]
    assert selection["held_out"] == IN_SAMPLE and "in-sample" in selection["rule"]
    assert selection["n_states"] == 3
    notes = " ".join(result["map"]["notes"])
    assert "too few for 5 folds of held-out blocks" in notes
    assert [p["state"] for p in result["map"]["phases"]] == [0, 1, 2]


def test_phases_cut_the_path_where_the_state_changes():
    states = pd.DataFrame({"seed": 0, "step": [0, 5, 10, 20, 40, 80], "state": [0, 0, 1, 1, 0, 2]})
    edges = [
        {"source": 0, "target": 1, "feature_changes": {"l1": 1.0}},
        {"source": 1, "target": 0, "feature_changes": {"l1": -1.0}},
        {"source": 0, "target": 2, "feature_changes": {"l2": 2.0}},
    ]
    phases = run_phases(states, edges)
    assert [(p["state"], p["first_step"], p["last_step"]) for p in phases] == [
        (0, 0, 5),
        (1, 10, 20),
        (0, 40, 40),
        (2, 80, 80),
    ]
    assert [p["steps"] for p in phases] == [10, 30, 40, 0]
    assert [p["checkpoints"] for p in phases] == [2, 2, 1, 1]
    assert phases[2]["feature_changes"] == {"l2": 2.0} and phases[3]["next_state"] is None
    assert phases_text(phases[:1]) == "S0 (steps 0–5, 2 checkpoints)"
    with pytest.raises(ValueError, match="phases are drawn for one run; got 2"):
        run_phases(pd.concat([states, states.assign(seed=1)]), edges)


PARITY_ONE = {
    "source": "train",
    "task": "sparse_parity",
    "seeds": [3],
    "epochs": 20,
    "eval_every": 1,
    "convergence": {"column": "eval_accuracy", "threshold": 0.9},
}


def test_a_setting_of_one_seed_gets_selection_time():
    setting = validate_config({"settings": {"solo": PARITY_ONE}})["solo"]
    assert setting.hmm["selection"] == "time"
    two = validate_config({"settings": {"duo": {**PARITY_ONE, "seeds": 2}}})["duo"]
    assert two.hmm["selection"] == "split"
    # the top-level resamples (the default config's 5) are off for it, not refused
    config = {"settings": {"solo": PARITY_ONE, "duo": {**PARITY_ONE, "seeds": 2}}}
    settings = validate_config({**config, "stability": {"resamples": 2}})
    assert settings["solo"].stability["resamples"] == 0
    assert settings["duo"].stability["resamples"] == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"stability": {"resamples": 3}},
            "settings.solo.stability.resamples: 3 resamples redraw which runs fit and which "
            "validate, but the setting has one run",
        ),
        (
            {"epochs": 6},
            "settings.solo: hmm.selection time: one run of 7 checkpoints: choosing K over "
            "time needs at least 10",
        ),
        (
            {"epochs": 30, "hmm": {"states": [1, 40]}},
            "settings.solo: hmm.selection time: one run of 31 checkpoints: hmm.states K=[40]",
        ),
    ],
)
def test_one_seed_settings_that_cannot_map_are_refused_naming_the_keys(entry, message):
    with pytest.raises(ConfigError) as error:
        validate_config({"settings": {"solo": {**PARITY_ONE, **entry}}})
    assert message in str(error.value)


def test_one_run_with_a_split_points_to_selection_time():
    trajectory, _ = planted_run()
    with pytest.raises(Exception, match="for one run use hmm.selection: time"):
        prepare_sequences(trajectory, FEATURES, max_checkpoints=1000, normalize="global",
                          val_fraction=0.2, seed=0)  # fmt: skip


def test_a_table_run_too_short_for_time_is_refused_naming_the_key():
    trajectory, _ = planted_run(lengths=(4, 4))
    with pytest.raises(SequenceError, match="hmm.selection time: one run of 8 checkpoints"):
        prepare_sequences(trajectory, FEATURES, max_checkpoints=1000, normalize="global",
                          val_fraction=0.2, seed=0, states=[1, 2], blocks=5)  # fmt: skip


@pytest.mark.slow
def test_a_setting_of_one_seed_maps_end_to_end(tmp_path):
    """The whole workflow on one trained seed: K over time (2 folds of blocks of its 21
    checkpoints), map.json with the run's phases, no regression, and summary.md says so."""
    config = {
        "settings": {
            "solo": {
                **yaml.safe_load(TINY_CONFIG.read_text())["settings"]["parity"],
                "seeds": [1],
                "seeds_per_job": 1,
                "stability": {"resamples": 0},
            }
        },
        "hmm": {"states": [1, 2], "restarts": 2, "n_iter": 8, "covariance": "diag", "folds": 2},
        "stability": {"resamples": 2},  # off for the one-seed setting, not refused
    }
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump(config))
    run_workflow(tmp_path / "run", path)
    results = tmp_path / "run" / "results"
    selection = json.loads((results / "solo/hmm/selection.json").read_text())
    assert selection["selection"] == "time" and selection["held_out"] == "blocks"
    assert len(selection["fold_n_states"]) == 2
    training_map = json.loads((results / "solo/map.json").read_text())
    phases = training_map["phases"]
    assert training_map["n_runs"] == 1 and phases[0]["first_step"] == 0
    assert sum(p["checkpoints"] for p in phases) == 21
    regression = json.loads((results / "solo/regression.json").read_text())
    assert regression["reason"] == ONE_RUN
    summary = (results / "summary.md").read_text()
    assert "no detour regression" in summary and "phases of the one run: S0 (steps 0–" in summary
