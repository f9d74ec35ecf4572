"""Snakemake adapter: the live map's k-fold evaluation against the baselines (docs/live.md)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.config.settings import Setting
from trainmap.figures.live import plot_evaluation
from trainmap.figures.style import save_figure
from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file
from trainmap.live.evaluate import evaluate_live


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    n_states = read_json(inputs.selection)["n_states"]
    setting = Setting(**params.setting)  # plain values in params (common.smk)
    evaluation = evaluate_live(
        read_parquet(inputs.trajectories), setting, n_states, params.fractions
    )
    write_json(evaluation, outputs.evaluation)
    save_figure(plot_evaluation(evaluation), outputs.figure)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
