"""Bad inputs end in an error that names the file and what to do, in the job's own log."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, TINY_CONFIG, planned_jobs, run_workflow

from trainmap.errors import CorruptFileError
from trainmap.io.files import read_csv, read_json, read_parquet, write_json, write_parquet


def test_truncated_intermediate_files_name_the_file_and_the_rerun(tmp_path):
    write_json({"n_states": 3, "scores": [1.0, 2.0]}, tmp_path / "k3.json")
    cut = tmp_path / "k3.json"
    cut.write_text(cut.read_text()[:20])
    with pytest.raises(CorruptFileError, match=r"k3\.json: invalid JSON .*delete it and run"):
        read_json(cut)
    write_parquet(pd.DataFrame({"a": np.arange(1000.0)}), tmp_path / "s.parquet")
    data = (tmp_path / "s.parquet").read_bytes()
    (tmp_path / "s.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"s\.parquet: unreadable Parquet .*--forcerun"):
        read_parquet(tmp_path / "s.parquet")
    (tmp_path / "d.csv").write_bytes(b"state,coef\n0,1\n1,\xff\xfe,3\n")
    with pytest.raises(CorruptFileError, match=r"d\.csv: unreadable CSV"):
        read_csv(tmp_path / "d.csv")
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "absent.parquet")


def test_an_uncaught_error_lands_in_the_jobs_log_with_its_traceback(tmp_path):
    code = (
        "from trainmap.io.logs import log_to_file\n"
        f"log_to_file({str(tmp_path / 'job.log')!r})\n"
        "def inner():\n    raise ValueError('settings.x: boom')\n"
        "inner()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "ValueError: settings.x: boom" in result.stderr  # still on stderr too
    log = (tmp_path / "job.log").read_text()
    assert "the job failed: settings.x: boom" in log
    assert "Traceback (most recent call last)" in log and "in inner" in log


def table_config(tmp_path, table: str) -> str:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["settings"] = {
        "mine": {
            "source": "table",
            "table": table,
            "features": ["l2", "var_w"],
            "convergence": {"column": "acc", "threshold": 0.9},
        }
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def runs_csv(n_runs: int = 4, shift: float = 0.0) -> str:
    rng = np.random.default_rng(0)
    lines = ["seed,step,l2,var_w,acc"]
    for seed in range(n_runs):
        for step in range(0, 60, 10):
            l2, var_w = rng.normal(size=2) + shift
            lines.append(f"{seed},{step},{l2},{var_w},{step / 50}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_table_replaced_with_an_old_mtime_reruns_and_a_bad_one_fails_in_its_log(tmp_path):
    """`cp -p`/rsync keep an old mtime: the content digest still reruns the setting."""
    work = tmp_path / "work"
    work.mkdir()
    table = work / "runs.csv"
    table.write_text(runs_csv())
    config = table_config(tmp_path, "runs.csv")
    target = ["results/mine/trajectories.parquet"]
    run_workflow(work, config, targets=target)
    stamp = table.stat().st_mtime_ns
    assert planned_jobs(work, config, targets=target) == []

    table.write_text(runs_csv(shift=5.0))
    os.utime(table, ns=(stamp, stamp))  # new content, old modification time
    assert [job.rule for job in planned_jobs(work, config, targets=target)] == [
        "collect_trajectories"
    ]

    table.write_text(runs_csv().replace(",0.2\n", ",n/a\n", 1))
    result = run_workflow(work, config, targets=target, check=False)
    assert result.returncode != 0
    log = (work / "logs/mine/collect_trajectories.log").read_text()
    assert "runs.csv: column 'acc' has a missing value 'n/a'" in log
    assert "Traceback (most recent call last)" in log


@pytest.mark.slow
def test_an_empty_config_file_never_runs_the_default_config(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")  # loads as {}: it used to run the default config
    result = run_workflow(tmp_path, empty, extra_args=["--dry-run"], check=False)
    assert result.returncode != 0
    assert "the config is empty" in result.stdout
    assert "parity" not in result.stdout  # the default config's settings were not planned
