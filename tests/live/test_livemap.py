"""LiveRun on the planted map: the detour is seen when a run enters it, and predictions
follow the fit runs' convergence."""

import json

import numpy as np
import pytest
from live_maps import planted_live, write_planted_live
from planted import FEATURES, MEANS, planted_runs

from trainmap.errors import LiveMapError
from trainmap.live import livemap
from trainmap.live.livemap import LiveMap, changes
from trainmap.live.survival import quantiles, survival_curves
from trainmap.maps.convergence import passed


def rows(planted, seed):
    run = planted.trajectories[planted.trajectories["seed"] == seed]
    return run.to_dict("records")


def test_p_detour_rises_when_a_run_enters_the_planted_detour_and_falls_after():
    planted = planted_runs()
    live = LiveMap(planted_live(planted))
    for seed in planted.detour_runs[:4]:
        path = planted.states.loc[planted.states["seed"] == seed, "state"].to_numpy()
        run = live.run(seed)
        p = np.array([run.update(r["step"], r).p_detour for r in rows(planted, seed)])
        inside = path == 1
        assert p[:3].max() < 0.2  # it starts on the main road
        assert np.median(p[inside]) > 0.9
        assert p[-3:].max() < 0.2  # and is back on it at the end
    for seed in sorted(set(range(24)) - set(planted.detour_runs))[:4]:
        run = live.run(seed)
        assert max(run.update(r["step"], r).p_detour for r in rows(planted, seed)) < 0.5


def test_a_run_in_the_detour_is_predicted_to_converge_later():
    planted = planted_runs(seed=3)
    live = LiveMap(planted_live(planted_runs(seed=0)))  # fit runs other than these
    step = 150  # checkpoint 15: detour runs are in state 1, the others mostly in 2
    late, early = [], []
    for seed in range(24):
        run = live.run(seed)
        for r in rows(planted, seed):
            if r["step"] > step:
                break
            prediction = run.update(r["step"], r)
        if prediction.converged_at is None:
            (late if seed in planted.detour_runs else early).append(prediction)
    assert late
    assert all(p.low <= p.predicted_convergence_step <= p.high for p in late if p.high)
    mean_late = np.mean([p.predicted_convergence_step for p in late])
    assert all(p.predicted_convergence_step < mean_late for p in early)


def test_a_converged_run_is_predicted_at_its_convergence_step():
    planted = planted_runs()
    live = LiveMap(planted_live(planted))
    run = live.run(0)
    for r in rows(planted, 0):
        last = run.update(r["step"], r)
    assert last.converged_at is not None
    assert last.predicted_convergence_step == last.low == last.high == last.converged_at


def test_the_outlook_is_the_kaplan_meier_median_of_the_runs_in_that_state():
    """A filter certain of state 0 at step 10: every fit run is in state 0 and at risk,
    so the prediction is the median convergence step of all fit runs."""
    planted = planted_runs()
    live = LiveMap(planted_live(planted))
    ends = sorted(r["convergence_step"] for r in planted_live(planted)["runs"])
    median, low, high = live.outlook(10, np.array([1.0, 0.0, 0.0]))
    assert median == ends[len(ends) // 2 - 1]  # the first end at which S <= 0.5
    assert low <= median <= high


def test_bad_input_is_named(tmp_path):
    planted = planted_runs()
    live = LiveMap(planted_live(planted))
    with pytest.raises(LiveMapError, match="has no var_w, feature"):
        live.run(1).update(10, {f: 0.0 for f in FEATURES if f != "var_w"})
    with pytest.raises(LiveMapError, match="mean_b|not finite"):
        live.run(1).update(10, {**dict.fromkeys(FEATURES, 0.0), "l1": float("nan")})
    run = live.run(1)
    run.update(10, dict(zip(FEATURES, MEANS[0], strict=True)))
    with pytest.raises(LiveMapError, match="step 5 after step 10"):
        run.update(5, dict(zip(FEATURES, MEANS[0], strict=True)))
    with pytest.raises(LiveMapError, match="no live map"):
        LiveMap.load(tmp_path)
    (tmp_path / "map.json").write_text("{}")
    with pytest.raises(LiveMapError, match="has a map but no live.json"):
        LiveMap.load(tmp_path)
    (tmp_path / "live.json").write_text(json.dumps({"format": 1, "refused": "per_run: why"}))
    with pytest.raises(LiveMapError, match="cannot be used live: per_run: why"):
        LiveMap.load(tmp_path)
    assert LiveMap.load(write_planted_live(tmp_path / "ok")).features == FEATURES


def test_a_row_without_finite_features_moves_the_filter_by_the_transitions_only():
    live = LiveMap(planted_live())
    run = live.run(0)
    run.update(10, dict(zip(FEATURES, MEANS[0], strict=True)))
    after = run.update(20, dict.fromkeys(FEATURES, float("nan")))
    np.testing.assert_allclose(after.probabilities, [0.9, 0.05, 0.05], atol=1e-6)


def test_changes_name_a_new_state_and_each_crossing():
    live = LiveMap(planted_live())
    run = live.run(0)
    first = run.update(10, dict(zip(FEATURES, MEANS[0], strict=True)))
    assert changes(None, first, 0.5) == ["now in state S0"]
    second = run.update(20, dict(zip(FEATURES, MEANS[1], strict=True)))
    assert changes(first, second, 0.5) == [
        "now in state S1 (was S0)",
        f"P(detour or dead end) {second.p_detour:.2f}, above 0.5",
    ]
    assert changes(second, second, 0.5) == []


def test_kept_curves_give_the_outlook_of_a_fresh_map_at_every_step_in_any_order():
    """LiveMap keeps the Kaplan-Meier curves between steps (they change only where a fit
    run's path or risk set does): in any order of steps, each outlook is the one a map
    that never saw another step computes."""
    data = planted_live()
    kept = LiveMap(data)
    ends = [r["convergence_step"] for r in data["runs"]]
    steps = sorted({0, 5, *ends, *(e - 1 for e in ends), *(e + 1 for e in ends), 10**6})
    rng = np.random.default_rng(0)
    for step in [*steps, *rng.permutation(steps)]:
        p = rng.dirichlet(np.ones(3))
        assert kept.outlook(step, p) == LiveMap(data).outlook(step, p), step


RULES = [
    {"column": "eval_accuracy", "threshold": 0.9},
    {"column": "eval_loss", "threshold": 0.1, "direction": "below"},
]


@pytest.mark.parametrize("rule", RULES)
def test_the_per_log_convergence_check_is_the_maps_rule(rule):
    data = {**planted_live(), "convergence": rule}
    run = LiveMap(data).run(0)
    values = [0.05, 0.1, 0.5, 0.9, 0.95, float("nan")]
    assert [run._passed(v) for v in values] == passed(np.array(values), rule).tolist()


def test_the_outlook_is_the_quantiles_of_the_mixture_of_the_states_curves():
    """The reference: Kaplan-Meier per state over the fit runs at risk in it (a state
    with none: all runs at risk), mixed by P(s_t), then survival.quantiles."""
    data = planted_live()
    live = LiveMap(data)
    rng = np.random.default_rng(3)
    for step in (0, 40, 90, 150, 200):
        at_risk = live._ends > step
        column = max(int(np.searchsorted(live._grid, step, side="right")) - 1, 0)
        states = live._paths[:, column]
        groups = [at_risk & (states == k) for k in range(3)]
        curves = survival_curves(np.vstack([*groups, at_risk]), live._events)
        if not at_risk.any():
            assert live.outlook(step, np.ones(3) / 3) == (None, None, None)
            continue
        for _ in range(5):
            p = rng.dirichlet(np.ones(3))
            rows = [curves[k] if groups[k].any() else curves[-1] for k in range(3)]
            expected = quantiles(live._ends, p @ np.vstack(rows), [0.5, 0.1, 0.9])
            assert live.outlook(step, p) == tuple(expected), step


def test_the_table_made_at_load_gives_what_the_curves_made_on_the_way_give(monkeypatch):
    """A map small enough gets every stretch's curves when it is loaded; a larger one
    (TABLE_SIZE) makes them when a run gets there: the same outlook at every step."""
    data = planted_live()
    table = LiveMap(data)
    assert table._table is not None
    monkeypatch.setattr(livemap, "TABLE_SIZE", 0)
    on_the_way = LiveMap(data)
    assert on_the_way._table is None
    ends = [r["convergence_step"] for r in data["runs"]]
    starts = [s for r in data["runs"] for s in r["starts"]]
    steps = sorted({-5, 0, *ends, *starts, *(v - 1 for v in ends + starts), 10**6})
    rng = np.random.default_rng(1)
    for step in steps:
        p = rng.dirichlet(np.ones(3))
        assert table.outlook(step, p) == on_the_way.outlook(step, p), step
