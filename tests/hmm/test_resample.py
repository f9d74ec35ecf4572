"""Resamples: their draws of runs, the rules that turn their BICs into K, and the keys a
config that asks for more than the runs can give is refused on."""

import json

import numpy as np
import pytest
import yaml

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.hmm.resample import draw_runs, fit_resample, run_observations
from trainmap.hmm.selection import resample_summary, select_state_count, selection_notes
from trainmap.hmm.split import distinct_draws


def test_split_draws_differ_by_resample_and_repeat_by_seed():
    runs = list(range(40))
    a = draw_runs(runs, 1, method="split", val_fraction=0.2, seed=0)
    b = draw_runs(runs, 2, method="split", val_fraction=0.2, seed=0)
    assert len(a[1]) == 8 and sorted(a[0] + a[1]) == runs and a != b
    assert draw_runs(runs, 1, method="split", val_fraction=0.2, seed=0) == a
    assert draw_runs(runs, 1, method="split", val_fraction=0.2, seed=1) != a


def test_bootstrap_draws_repeat_fit_runs_and_validate_on_the_rest():
    fit, val = draw_runs(list(range(40)), 3, method="bootstrap", val_fraction=0.2, seed=0)
    assert len(fit) == 40 and len(set(fit)) < 40
    assert set(val) == set(range(40)) - set(fit) and val == sorted(val)


def test_distinct_draws_count_splits_and_multisets():
    assert distinct_draws(5, "split", 0.2) == 5  # one of five validates
    assert distinct_draws(40, "split", 0.2) == 76904685  # C(40, 8)
    assert distinct_draws(3, "bootstrap", 0.2) == 10  # multisets of 3 from 3


def test_run_observations_repeat_a_run_as_often_as_listed():
    import pandas as pd

    table = pd.DataFrame({"seed": [0, 0, 1, 1, 1], "a": [1.0, 2.0, 3.0, 4.0, 5.0]})
    X, lengths = run_observations(table, ["a"], [1, 0, 1])
    assert X.ravel().tolist() == [3, 4, 5, 1, 2, 3, 4, 5] and lengths.tolist() == [3, 2, 3]


def scores(bics: dict[int, float]) -> list[dict]:
    return [{"n_states": k, "val_bic": v} for k, v in bics.items()]


def test_rules_over_resamples():
    """BIC flat from 4 to 6, noisy at 6: the lowest mean is 5, one SE admits 4."""
    resamples = [
        {"n_states": 5, "scores": scores({3: 130, 4: 103, 5: 100, 6: 104})},
        {"n_states": 4, "scores": scores({3: 128, 4: 98, 5: 99, 6: 90})},
        {"n_states": 6, "scores": scores({3: 131, 4: 101, 5: 100, 6: 120})},
    ]
    summary = resample_summary(resamples, "one_se")
    assert summary["by_rule"] == {
        "lowest_median": 5,  # above each resample's best: 4: 3, 8, 1; 5: 0, 9, 0; 6: 4, 0, 20
        "one_se": 4,
        "lowest_mean": 5,
        "most_picked": 4,
    }
    assert summary["n_states"] == 4 and summary["val_bic"]["6"] == [104, 90, 120]
    assert summary["picks"] == [5, 4, 6] and summary["counts"] == {"4": 1, "5": 1, "6": 1}
    assert summary["mean_val_bic"]["5"] == pytest.approx(299 / 3)
    # paired: K=4's gaps to K=5 are 3, -1, 1 -> mean 1, SE 2/sqrt(3)
    assert summary["se_gap"]["4"] == pytest.approx(2 / np.sqrt(3))
    assert summary["se_gap"]["5"] == 0.0
    with pytest.raises(ValueError, match="stability.rule: 'best'"):
        resample_summary(resamples, "best")


def open_k_fits() -> tuple[list[dict], list[dict]]:
    """The configured split's fits (lowest BIC at K = 5) and two resamples split
    between 4 and 5."""
    fits = [
        {"n_states": k, "val_bic": v, "train_loglik": 0.0, "val_loglik": 0.0}
        for k, v in {3: 120.0, 4: 110.0, 5: 100.0}.items()
    ]
    resamples = [
        {"n_states": 4, "scores": scores({3: 120, 4: 100, 5: 101})},
        {"n_states": 5, "scores": scores({3: 121, 4: 102, 5: 100})},
    ]
    return fits, resamples


def test_selection_with_resamples_reports_the_split_and_a_note_when_k_is_open():
    fits, resamples = open_k_fits()
    selection = select_state_count(fits, resamples, "one_se")
    assert selection["n_states"] == 4 and selection["split_n_states"] == 5
    assert select_state_count(fits, resamples)["resamples"]["rule"] == "lowest_median"
    assert selection["stability"]["resamples"]["agree"] == 1
    assert "standard error" in selection["rule"]
    assert json.loads(json.dumps(selection)) == selection
    notes = selection_notes(selection)
    assert any("picked by only 1/2 resamples (K=4 by 1, K=5 by 1)" in n for n in notes)
    assert not any("raise hmm.restarts" in n for n in notes)  # the resamples redraw them


def test_a_restart_agreement_of_one_half_gets_the_note():
    selection = {
        "n_states": 3,
        "scores": [{"n_states": 3}, {"n_states": 4}],
        "stability": {"restarts": {"picks": [3, 4], "agree": 1, "n": 2, "share": 0.5}},
    }
    assert any("raise hmm.restarts" in n for n in selection_notes(selection))


def test_a_resample_fits_every_k_and_decodes_every_run():
    import pandas as pd

    rng = np.random.default_rng(0)
    means = np.array([[-2.0, 0.0], [2.0, 0.0]])
    rows = []
    for run in range(10):
        path = np.repeat([0, 1], [8, 12])
        X = means[path] + rng.normal(0, 0.3, (20, 2))
        rows += [{"seed": run, "step": t, "a": x[0], "b": x[1]} for t, x in enumerate(X)]
    table = pd.DataFrame(rows)
    options = {"restarts": 2, "n_iter": 50, "covariance": "diag", "seed": 0}
    result = fit_resample(
        table, ["a", "b"], [1, 2, 3], 1, method="split", val_fraction=0.2, options=options
    )
    assert [row["n_states"] for row in result["scores"]] == [1, 2, 3]
    assert result["n_states"] == 2 and len(result["states"]) == len(table)
    assert result["states"][:8] == [0] * 8 and set(result["states"][8:20]) == {1}
    assert len(result["val_runs"]) == 2 and "restarts" not in result["model"]


def config_with(stability: dict, seeds=5) -> dict:
    return {
        "settings": {
            "parity": {
                "source": "train",
                "task": "sparse_parity",
                "seeds": seeds,
                "epochs": 20,
                "eval_every": 2,
                "convergence": {"column": "eval_accuracy", "threshold": 0.9},
                "stability": stability,
            }
        }
    }


@pytest.mark.parametrize(
    ("stability", "seeds", "message"),
    [
        (
            {"resamples": 6},
            5,
            "settings.parity.stability.resamples: 6 resamples, but 5 runs give only 5 "
            "distinct split draws",
        ),
        (
            {"resamples": 2},
            1,
            "settings.parity.stability.resamples: 2 resamples redraw which runs fit and which "
            "validate, but the setting has one run",
        ),
        ({"resamples": 2, "method": "bootstrap"}, 2, "settings.parity.stability.method: bootstrap"),
        ({"resamples": 2, "rule": "best"}, 5, "stability.rule"),
    ],
)
def test_resamples_the_runs_cannot_give_are_refused_naming_the_key(stability, seeds, message):
    config = yaml.safe_load(yaml.safe_dump(config_with(stability, seeds)))
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate_config(config)


def test_protocol_paper_fills_the_keys_not_given():
    config = config_with({}, seeds=10)
    config["hmm"] = {"protocol": "paper", "n_iter": 40}
    setting = validate_config(config)["parity"]
    assert setting.hmm["normalize"] == "per_run" and setting.hmm["n_iter"] == 40
    assert setting.hmm["keep_by"] == "val_loglik" and setting.hmm["refit"] is False
    assert setting.stability["resamples"] == 0
    default = validate_config(config_with({}, seeds=10))["parity"]
    assert default.hmm["normalize"] == "global" and default.hmm["refit"] is True


def test_the_median_rule_pairs_each_k_with_its_resamples_best():
    """Splits shift every K's BIC together; unpaired medians (K=4: 100, K=5: 95) would
    pick 5 although 4 is best or nearly so in every resample (above best: 0, 5, 0)."""
    resamples = [
        {"n_states": 4, "scores": scores({4: 0, 5: 5})},
        {"n_states": 5, "scores": scores({4: 100, 5: 95})},
        {"n_states": 4, "scores": scores({4: 200, 5: 210})},
    ]
    summary = resample_summary(resamples, "lowest_median")
    assert summary["n_states"] == 4
    assert summary["median_above_best"] == {"4": 0.0, "5": 5.0}


def test_the_selection_figure_draws_the_resamples_median_curve():
    from trainmap.figures.selection import plot_selection

    fits, resamples = open_k_fits()
    figure = plot_selection(select_state_count(fits, resamples), "parity")
    panel = figure.axes[-1]
    assert len(figure.axes) == 3 and "2 resamples" in panel.get_title()
    median = [line for line in panel.get_lines() if line.get_label() == "median over resamples"]
    assert median[0].get_ydata().tolist() == [20.5, 1.0, 0.5]
