"""Snakemake adapter: the runs of a setting in function space (PCA of their probe losses):
function_space.parquet, function_space.json, function_space.png and function_space.html."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import logging

from trainmap.figures.function_space import function_space_page, plot_function_space
from trainmap.figures.html import write_page
from trainmap.figures.style import detour_states, save_figure
from trainmap.function_space.pca import (
    fit_function_space,
    function_space_table,
    loss_matrix,
    summary,
)
from trainmap.io.files import read_json, read_parquet, write_json, write_parquet
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    ids, losses, columns = loss_matrix([read_parquet(path) for path in inputs.losses])
    fit = fit_function_space(losses, params.components)
    table = function_space_table(ids, fit["coords"], read_parquet(inputs.states))
    info = summary(fit, ids, columns)
    logging.info("explained variance ratio: %s", info["explained_variance_ratio"])
    write_parquet(table, outputs.table)
    write_json(info, outputs.summary)
    n_states = read_json(inputs.map)["n_states"]
    detours = detour_states(read_detour_table(inputs.detours))
    ratios = info["explained_variance_ratio"]
    save_figure(plot_function_space(table, ratios, n_states, detours, params.setting),
                outputs.figure)  # fmt: skip
    write_page(function_space_page(table, ratios, n_states, detours, params.setting),
               outputs.page)  # fmt: skip


main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
