"""Snakemake adapter: two settings that differ in one switch, side by side."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.plots import plot_comparison
from trainmap.figures.style import save_figure
from trainmap.figures.summary import find_pair
from trainmap.io.files import read_json, read_parquet
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table


def bundle(name: str, map_path: str, detours: str, regression: str, runs: str) -> dict:
    return {
        "name": name,
        "map": read_json(map_path),
        "detours": read_detour_table(detours),
        "regression": read_json(regression),
        "runs": read_parquet(runs),
    }


def main(inputs, output: str, params, wildcards, log: str) -> None:
    log_to_file(log)
    pair = find_pair(params.pairs, wildcards.a, wildcards.b)
    first, second = (
        bundle(pair[side], inputs[f"map_{side}"], inputs[f"detours_{side}"],
               inputs[f"regression_{side}"], inputs[f"runs_{side}"])
        for side in ("a", "b")
    )  # fmt: skip
    save_figure(plot_comparison(first, second, pair), output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(
        snakemake.input,
        snakemake.output[0],
        snakemake.params,
        snakemake.wildcards,
        snakemake.log[0],
    )
