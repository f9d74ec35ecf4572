"""`python -m trainmap check|clean-resume|run ...`: the `trainmap` console script."""

import sys

from trainmap.cli import main

sys.exit(main())
