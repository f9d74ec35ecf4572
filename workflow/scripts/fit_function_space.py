"""Snakemake adapter: the PCA of a setting's probe losses, before the HMM:
pca/coords.parquet (every checkpoint's pc1..pcK) and pca/summary.json."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import logging

from trainmap.function_space.pca import coords_table, fit_function_space, loss_matrix, summary
from trainmap.io.files import read_parquet, write_json, write_parquet
from trainmap.io.logs import log_to_file


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    ids, losses, columns = loss_matrix([read_parquet(path) for path in inputs])
    fit = fit_function_space(losses, params.components)
    info = summary(fit, ids, columns)
    logging.info("explained variance ratio: %s", info["explained_variance_ratio"])
    write_parquet(coords_table(ids, fit["coords"]), outputs.coords)
    write_json(info, outputs.summary)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
