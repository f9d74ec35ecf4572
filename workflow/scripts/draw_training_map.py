"""Snakemake adapter: the training map of a setting (map.json) and its drawing (map.png)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.map import plot_map
from trainmap.figures.style import save_figure
from trainmap.hmm.fit import model_from_json
from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table
from trainmap.maps.graph import build_map, mark_detours
from trainmap.maps.notes import fit_notes, with_notes


def selected_model(model_paths: list[str], selection_path: str) -> dict:
    """The k<K>.json that selection.json names."""
    name = f"k{read_json(selection_path)['n_states']}.json"
    (path,) = [p for p in model_paths if Path(p).name == name]
    return read_json(path)


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    model_json = selected_model(list(inputs.models), inputs.selection)
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
    training_map = mark_detours(training_map, detours)
    candidates = [read_json(path)["n_states"] for path in inputs.models]
    notes = fit_notes(candidates, model_json, sequences, states)
    training_map = with_notes(training_map, read_json(inputs.prepare), regression, notes)
    write_json(training_map, outputs.map)
    figure = plot_map(training_map, detours, regression, params.setting)
    save_figure(figure, outputs.figure)


main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
