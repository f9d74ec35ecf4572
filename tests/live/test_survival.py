"""Kaplan-Meier curves computed for many groups at once, against the textbook product."""

import numpy as np

from trainmap.live.survival import quantiles, sorted_times, survival_curves


def textbook(times, events):
    """S(t) at each distinct event time: prod over event times u <= t of 1 - d_u / n_u."""
    out = {}
    s = 1.0
    for u in np.unique(times[events]):
        n = (times >= u).sum()
        d = ((times == u) & events).sum()
        s *= 1 - d / n
        out[float(u)] = s
    return out


def test_curves_match_the_textbook_estimate_with_ties_and_censoring():
    rng = np.random.default_rng(0)
    times = rng.integers(1, 12, size=40).astype(float)  # many ties
    events = rng.uniform(size=40) < 0.7
    groups = rng.uniform(size=(3, 40)) < 0.5
    order = sorted_times(times, events)
    curves = survival_curves(groups[:, order], events[order])
    for g in range(3):
        expected = textbook(times[groups[g]], events[groups[g]])
        for u, s in expected.items():
            last = np.flatnonzero(times[order] == u)[-1]  # after every run at time u
            np.testing.assert_allclose(curves[g, last], s)


def test_an_empty_group_stays_at_one_and_quantiles_say_none_when_not_reached():
    times = np.array([1.0, 2.0, 3.0, 4.0])
    events = np.array([True, True, False, False])
    curves = survival_curves(np.array([[0, 0, 0, 0], [1, 1, 1, 1]]), events)
    assert (curves[0] == 1).all()
    np.testing.assert_allclose(curves[1], [0.75, 0.5, 0.5, 0.5])
    assert quantiles(times, curves[1], [0.5, 0.9]) == [2.0, None]
