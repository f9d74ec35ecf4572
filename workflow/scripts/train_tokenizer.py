"""Snakemake adapter: train a masked LM setting's WordPiece tokenizer on its corpus's
training lines and save it (a tokenizers JSON file)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.logs import log_to_file
from trainmap.tasks.masked_lm.corpus import build_tokenizer


def main(output: str, options: dict, log: str) -> None:
    log_to_file(log)
    build_tokenizer(options["corpus"], options["eval_fraction"], options["vocab_size"], output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.output[0], snakemake.params.options, snakemake.log[0])
