"""Snakemake adapter: convergence-time histogram and regression coefficients of a setting."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.plots import plot_coefficients, plot_convergence, plot_no_convergence
from trainmap.figures.style import save_figure
from trainmap.io.files import read_json, read_parquet
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    detours = read_detour_table(inputs.detours)
    regression = read_json(inputs.regression)
    runs = read_parquet(inputs.runs)
    if regression.get("convergence"):
        figure = plot_convergence(runs, detours, regression, params.setting)
    else:  # no convergence column (trainmap.maps.no_regression)
        figure = plot_no_convergence(regression, params.setting)
    save_figure(figure, outputs.convergence)
    figure = plot_coefficients(detours, regression, read_json(inputs.map), params.setting)
    save_figure(figure, outputs.coefficients)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
