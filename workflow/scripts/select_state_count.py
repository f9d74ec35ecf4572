"""Snakemake adapter: choose K (validation BIC, or the resamples' most frequent pick);
write selection.json and its figure."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.selection import plot_selection
from trainmap.hmm.selection import select_state_count
from trainmap.io.atomic import atomic_path
from trainmap.io.files import read_json, write_json
from trainmap.io.logs import log_to_file


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    resamples = [read_json(path) for path in inputs.resamples]
    fits = [read_json(path) for path in inputs.fits]
    selection = select_state_count(fits, resamples or None, params.stability["rule"])
    write_json(selection, outputs.selection)
    with atomic_path(outputs.figure) as tmp:
        plot_selection(selection, params.setting).savefig(tmp, format="png", dpi=120)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
