"""Snakemake adapter: results/summary.md, the table across settings and the comparisons."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.summary import headline, setting_details, summary_markdown
from trainmap.io.atomic import atomic_path
from trainmap.io.biases import with_note
from trainmap.io.files import read_json
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    maps = {name: read_json(m) for name, m in zip(params.settings, inputs.maps, strict=True)}
    headlines = {
        name: headline(maps[name], read_detour_table(d), read_json(r), read_json(s))
        for name, d, r, s in zip(
            params.settings,
            inputs.detours,
            inputs.regressions,
            inputs.selections,
            strict=True,
        )
    }
    details = {name: setting_details(training_map) for name, training_map in maps.items()}
    for name in params.bias_free:
        headlines[name]["note"] = with_note(headlines[name]["note"])
    results = Path(output).parent
    figures = {
        f"{pair['a']}--{pair['b']}": str(Path(path).relative_to(results))
        for pair, path in zip(params.pairs, inputs.comparisons, strict=True)
    }
    with atomic_path(output) as tmp:
        text = summary_markdown(headlines, params.pairs, figures, frozenset(params.probed), details)
        tmp.write_text(text)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
