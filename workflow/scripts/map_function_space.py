"""Snakemake adapter: the runs of a setting in function space (the PCA of their probe
losses, rule fit_function_space, joined to the decoded states): function_space.parquet,
function_space.json, function_space.png and function_space.html."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.function_space import function_space_page, plot_function_space
from trainmap.figures.html import write_page
from trainmap.figures.style import detour_states, save_figure
from trainmap.function_space.pca import function_space_table
from trainmap.io.files import read_json, read_parquet, write_json, write_parquet
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    coords = read_parquet(inputs.coords)  # rule fit_function_space: one PCA per setting
    names = [c for c in coords.columns if c not in ("seed", "step")]
    table = function_space_table(
        coords[["seed", "step"]], coords[names].to_numpy(), read_parquet(inputs.states)
    )
    info = read_json(inputs.pca)
    write_parquet(table, outputs.table)
    write_json(info, outputs.summary)
    n_states = read_json(inputs.map)["n_states"]
    detours = detour_states(read_detour_table(inputs.detours))
    ratios = info["explained_variance_ratio"]
    save_figure(plot_function_space(table, ratios, n_states, detours, params.setting),
                outputs.figure)  # fmt: skip
    write_page(function_space_page(table, ratios, n_states, detours, params.setting),
               outputs.page)  # fmt: skip


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
