"""Snakemake adapter: the training map of a setting (map.json) and its drawing (map.png)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.map import plot_map
from trainmap.figures.style import save_figure
from trainmap.hmm.fit import model_from_json
from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table
from trainmap.maps.graph import build_map, mark_detours
from trainmap.maps.notes import fit_notes, with_notes
from trainmap.maps.phases import with_phases
from trainmap.maps.support import attach_support


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    model_json = read_json(inputs.model)
    runs = read_parquet(inputs.runs).set_index("seed")
    detours = read_detour_table(inputs.detours)
    sequences, states = read_parquet(inputs.sequences), read_parquet(inputs.states)
    regression = read_json(inputs.regression)
    training_map = build_map(
        model_from_json(model_json),
        model_json["features"],
        sequences,
        states,
        runs,  # every decoded run; one without a convergence value is marked unmeasured
    )
    training_map = with_phases(mark_detours(training_map, detours), states)  # one run
    notes = fit_notes(params.candidates, model_json, sequences, states)
    training_map = with_notes(training_map, read_json(inputs.prepare), regression, notes)
    if inputs.support:  # stability.resamples > 0
        training_map = attach_support(training_map, read_json(inputs.support))
    write_json(training_map, outputs.map)
    figure = plot_map(training_map, detours, regression, params.setting)
    save_figure(figure, outputs.figure)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
