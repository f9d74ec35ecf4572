"""What a map page and summary.md say besides the map: the runs left out, and the notes on
what the data cannot carry (trainmap.hmm.adequacy).

``map.json`` gets two extra keys:

- ``excluded_runs``: ``[{"seed", "reason", "left_out_of"}]``, every run not on the map or
  not in the regression: runs the HMM left out (diverged: ``left_out_of`` = ``"map and
  regression"``, from prepare.json) and runs without a convergence value (drawn on the
  map, marked unmeasured: ``"regression"``, from regression.json);
- ``notes``: the sequence stage's notes (bias-free runs, mixed step grids) and the fit's
  (parameters per candidate K against fit rows, near-identical state means, decoded
  transitions of negligible probability), each logged as a warning where it is found.
"""

import logging

import numpy as np
import pandas as pd

from trainmap.hmm.adequacy import near_means_note, negligible_transitions_note, parameter_note

log = logging.getLogger(__name__)


def excluded_runs(prepare: dict, regression: dict) -> list[dict]:
    """Every run the map or the regression left out, with the reason, sorted by seed."""
    out = [
        {"seed": e["seed"], "reason": e["reason"], "left_out_of": "map and regression"}
        for e in prepare.get("excluded", [])
    ]
    column = (regression.get("convergence") or {}).get("column", "convergence")
    out += [
        {
            "seed": seed,
            "reason": f"unmeasured: no finite {column} value (drawn on the map, marked so)",
            "left_out_of": "regression",
        }
        for seed in regression.get("unmeasured_runs") or []
    ]
    return sorted(out, key=lambda e: (str(type(e["seed"])), e["seed"]))


def fit_notes(
    candidates: list[int], model: dict, sequences: pd.DataFrame, states: pd.DataFrame
) -> list[str]:
    """The fit's notes, each also logged as a warning.

    candidates: the K of every fitted model; model: the selected k<K>.json; sequences: the
    prepared rows (``split``, and ``fold`` with selection kfold or ``block`` with time,
    trainmap.hmm.blocks); states: the decoded
    ``seed, step, state``.
    """
    n_fit = int((sequences["split"] == "fit").sum())
    for folds in ("fold", "block"):  # each fold's model is fitted on the other folds' rows
        if folds in sequences:
            n_fit -= int(sequences.groupby(folds).size().max())
    notes = [
        parameter_note(candidates, len(model["features"]), n_fit, model["covariance"]),
        near_means_note(np.asarray(model["means"], dtype=float)),
        negligible_transitions_note(states, np.asarray(model["transmat"], dtype=float)),
    ]
    notes = [note for note in notes if note]
    for note in notes:
        log.warning("%s", note)
    return notes


def with_notes(training_map: dict, prepare: dict, regression: dict, notes: list[str]) -> dict:
    """Copy of ``training_map`` with ``excluded_runs`` and ``notes`` (the sequence stage's,
    then ``notes``)."""
    return {
        **training_map,
        "excluded_runs": excluded_runs(prepare, regression),
        "notes": [*prepare.get("notes", []), *notes],
    }
