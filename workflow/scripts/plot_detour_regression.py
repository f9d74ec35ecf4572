"""Snakemake adapter: convergence-time histogram and regression coefficients of a setting."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.detours import read_detour_table
from trainmap.io import log_to_file, read_json, read_parquet
from trainmap.plot_style import save_figure
from trainmap.plots import plot_coefficients, plot_convergence, plot_no_convergence


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    detours = read_detour_table(inputs.detours)
    regression = read_json(inputs.regression)
    runs = read_parquet(inputs.runs)
    if regression.get("convergence"):
        figure = plot_convergence(runs, detours, regression, params.setting)
    else:  # no convergence column (trainmap.no_regression)
        figure = plot_no_convergence(regression, params.setting)
    save_figure(figure, outputs.convergence)
    figure = plot_coefficients(detours, regression, read_json(inputs.map), params.setting)
    save_figure(figure, outputs.coefficients)


main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
