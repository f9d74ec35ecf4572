"""Wall times of the workflow on this machine, against the budgets in the issues.

    .venv/bin/python bench/bench_workflow.py [--skip-training]

1. `snakemake --dry-run` over config/paper.yaml (3 settings x 40 seeds): budget 10 s.
2. The training + metrics stages of config/config.yaml (every trajectories.parquet),
   from a clean working directory with all local cores: budget 6 min.
3. The whole default job (`all`), continuing from 2: budget 10 min in all.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def timed_snakemake(workdir: Path, configfile: Path, *args: str) -> float:
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    command += ["--configfile", str(configfile), "--cores", str(os.cpu_count())]
    start = time.perf_counter()
    subprocess.run([*command, *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def report(name: str, seconds: float, budget: float) -> None:
    print(f"{name:<45} {seconds:8.1f} s   budget {budget:6.0f} s   ratio {seconds / budget:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--keep", type=Path, help="run the default job in this directory")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        dry = timed_snakemake(Path(tmp), ROOT / "config" / "paper.yaml", "--dry-run")
        report("dry run, config/paper.yaml (120 runs)", dry, 10)
    if args.skip_training:
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        if any(workdir.glob("results/*")):
            sys.exit(f"{workdir} already holds results: give an empty --keep directory")
        config = ROOT / "config" / "config.yaml"
        targets = [f"results/{s}/trajectories.parquet" for s in ("parity", "modular")]
        training = timed_snakemake(workdir, config, *targets)
        report("training + metrics, config/config.yaml", training, 360)
        rest = timed_snakemake(workdir, config)
        report("whole default job (all stages)", training + rest, 600)


if __name__ == "__main__":
    main()
