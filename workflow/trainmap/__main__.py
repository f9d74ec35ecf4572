"""`python -m trainmap check CONFIG ...`: the `trainmap` console script without installing."""

import sys

from trainmap.config.check import cli

sys.exit(cli())
