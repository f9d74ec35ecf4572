"""The default `make run`'s training stage with vectorised groups against `vectorize: false`.

    .venv/bin/python bench/bench_vectorize_workflow.py [--keep DIR]

Runs the training stage of config/config.yaml (every seed's metrics.parquet and
model.safetensors, through train_run and unpack_run) twice from clean working directories
in this one run, all local cores: first with every setting's `vectorize: false` (before),
then with the config as it is (after). Summarises Snakemake's `benchmark:` files of the
train_run jobs (benchmarks/<setting>/train_run/group<g>.tsv: wall seconds, peak RSS) per
setting, the stage's wall time, and checks that both runs wrote byte-identical files.
"""

import argparse
import csv
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def training_stage(workdir: Path, config: Path, settings: dict) -> float:
    """Wall seconds of Snakemake making every run's files of ``settings``."""
    targets = [
        f"results/{name}/runs/seed{seed}/{file}"
        for name, entry in settings.items()
        for seed in range(entry["seeds"])
        for file in ("metrics.parquet", "model.safetensors")
    ]
    command = [SNAKEMAKE, *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    command += ["--configfile", str(config), "--cores", str(os.cpu_count())]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def job_table(workdir: Path) -> dict[str, tuple[int, float, float, float]]:
    """Per setting: jobs, sum and max of job wall seconds, peak RSS (MB) of any job."""
    out = {}
    for setting in sorted(p.name for p in (workdir / "benchmarks").iterdir()):
        rows = []
        for tsv in sorted((workdir / "benchmarks" / setting / "train_run").glob("*.tsv")):
            with open(tsv) as f:
                rows += list(csv.DictReader(f, delimiter="\t"))
        seconds = [float(r["s"]) for r in rows]
        rss = [float(r["max_rss"]) for r in rows if r["max_rss"] not in ("", "NA", "-")]
        out[setting] = (len(rows), sum(seconds), max(seconds), max(rss, default=float("nan")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="keep the two working directories here")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    settings = {k: v for k, v in config["settings"].items() if v.get("source") == "train"}
    print(f"machine: {os.cpu_count()} cores; load average before {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        runs = {}
        for label, vectorize in (("before (vectorize: false)", "false"), ("after (config)", None)):
            workdir = base / label.split()[0]
            workdir.mkdir(parents=True)
            cfg = {**config, "settings": {k: dict(v) for k, v in config["settings"].items()}}
            if vectorize is not None:
                for entry in cfg["settings"].values():
                    if entry.get("source") == "train":
                        entry["vectorize"] = False
            cfg_path = workdir / "config.yaml"
            cfg_path.write_text(yaml.safe_dump(cfg))
            wall = training_stage(workdir, cfg_path, settings)
            runs[label] = (workdir, wall)
            print(f"\n{label}: training stage {wall:.1f} s wall; load average {os.getloadavg()}")
            print(
                f"  {'setting':<10}{'jobs':>6}{'job s sum':>11}{'job s max':>11}{'peak RSS MB':>13}"
            )
            for setting, (jobs, total, longest, rss) in job_table(workdir).items():
                print(f"  {setting:<10}{jobs:>6}{total:>11.1f}{longest:>11.1f}{rss:>13.0f}")
        (before, t_before), (after, t_after) = runs.values()
        print(f"\ntraining stage: {t_before:.1f} s -> {t_after:.1f} s, {t_before / t_after:.2f}x")
        same = [
            filecmp.cmp(before / rel, after / rel, shallow=False)
            for rel in (p.relative_to(before) for p in before.glob("results/*/runs/seed*/*"))
        ]
        print(f"files byte-identical: {sum(same)} of {len(same)}")


if __name__ == "__main__":
    main()
