"""`trainmap check` reads `source: runs` folders and `source: table` files as the jobs will:
what the workflow would refuse is a problem, what it would only warn about a warning."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from trainmap.config.check import main
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.record import Recorder

NAN = float("nan")
CONVERGENCE = {"column": "eval_accuracy", "threshold": 0.9}


def record(directory, seed, *, steps=range(0, 300, 20), bias=True, **scalars):
    """A small model drifting between logs, recorded at ``steps`` (scalars: name ->
    function of the checkpoint index)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8, bias=bias), nn.ReLU(), nn.Linear(8, 3, bias=bias))
    scalars = scalars or {"eval_accuracy": lambda i: min(1.0, 0.1 * i)}
    with Recorder(directory, seed=seed, model=model, flush_every=0) as rec:
        for i, step in enumerate(steps):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p) + 0.01)
            rec.log(step, **{name: f(i) for name, f in scalars.items()})


def check(tmp_path, capsys, entry, hmm=None) -> tuple[int, list[str], str]:
    """Run `trainmap check` on one setting; (exit status, stderr lines, stdout)."""
    setting = {**entry, "convergence": entry.get("convergence", CONVERGENCE)}
    config = {"settings": {"mine": setting}}
    if hmm:
        config["hmm"] = hmm
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    status = main([str(tmp_path / "c.yaml"), "--directory", str(tmp_path)])
    captured = capsys.readouterr()
    return status, captured.err.strip().splitlines(), captured.out


def one_line_has(err: list[str], *parts: str) -> bool:
    """Whether one stderr line holds every part (each problem is reported on one line)."""
    return any(all(part in line for part in parts) for line in err)


def runs(tmp_path, n=5, **options):
    for seed in range(n):
        record(tmp_path / "runs", seed, **options)
    return {"source": "runs", "runs": "runs"}


@pytest.fixture(autouse=True)
def _restore_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # main() changes directory; monkeypatch changes it back


def test_a_good_runs_folder_is_valid(tmp_path, capsys):
    entry = {**runs(tmp_path), "features": ["l2", "spectral", "var_w"]}
    status, err, out = check(tmp_path, capsys, entry, hmm={"states": [1, 2, 3]})
    assert status == 0, err
    assert err == [] and out.strip() == "c.yaml: valid"


def test_a_missing_runs_folder(tmp_path, capsys):
    status, err, _ = check(tmp_path, capsys, {"source": "runs", "runs": "nowhere"})
    assert status == 1
    assert err == [
        "c.yaml:4: settings.mine.runs: nowhere: no such directory in the working directory "
        f"{tmp_path} (runs recorded with trainmap.record.Recorder live in "
        "<dir>/seed<seed>/metrics.parquet)"
    ]


def test_an_empty_runs_folder(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    status, err, _ = check(tmp_path, capsys, {"source": "runs", "runs": "runs"})
    assert status == 1
    assert err[0].startswith("c.yaml:4: settings.mine.runs: runs: no seed<seed>/metrics.parquet")


def test_a_convergence_column_no_run_logs(tmp_path, capsys):
    entry = runs(tmp_path, 2)
    entry["convergence"] = {"column": "eval_loss", "threshold": 0.5, "direction": "below"}
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 1
    (line,) = err
    assert line.startswith(
        "c.yaml:6: settings.mine.convergence.column: no run logs 'eval_loss'; the runs log: "
        "code_sparsity, computational_sparsity, eval_accuracy, l1"
    )


def test_a_column_only_some_seeds_logged(tmp_path, capsys):
    entry = runs(tmp_path, 4)
    record(tmp_path / "runs", 4, eval_accuracy=lambda i: 0.1 * i, lr=lambda i: 0.1)
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 0, err
    assert (
        "c.yaml:2: warning: settings.mine: column(s) logged by only some seeds: lr (seed(s) 4)"
        in err
    )
    entry["convergence"] = {"column": "lr", "threshold": 0.5}
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 1
    assert (
        "c.yaml:6: settings.mine.convergence.column: 'lr' is logged by seed(s) 4 only; "
        "seed(s) 0, 1, 2, 3 lack it"
    ) in err


def test_runs_with_one_row(tmp_path, capsys):
    entry = runs(tmp_path, 4)
    record(tmp_path / "runs", 4, steps=[0])  # a job killed after its first log
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 1
    assert one_line_has(
        err, "settings.mine: run(s) [4] have fewer than 2 checkpoints (1 in all; rows: 1)"
    ), err


def test_a_validation_split_too_small(tmp_path, capsys):
    """4 runs of 9 checkpoints, 20% validation: one run, 9 rows; the workflow refuses it."""
    entry = runs(tmp_path, 4, steps=range(0, 90, 10))
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 1
    assert one_line_has(err, "settings.mine: the validation split has 9 rows (1 run(s)"), err


def test_default_features_all_nan(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    for seed in range(4):
        rows = {"seed": seed, "step": np.arange(12), "eval_accuracy": 0.5, "diverged": False}
        rows.update({m: NAN for m in METRIC_COLUMNS})
        path = tmp_path / "runs" / f"seed{seed}" / "metrics.parquet"
        path.parent.mkdir()
        pd.DataFrame(rows).to_parquet(path)
    status, err, _ = check(tmp_path, capsys, {"source": "runs", "runs": "runs"})
    assert status == 1
    assert one_line_has(
        err,
        "settings.mine: default features (the 14 weight metrics) ['l1', 'l2',",
        "are NaN at every checkpoint of every run",
    ), err


def test_mixed_step_grids_and_a_seed_folder_without_metrics_are_warnings(tmp_path, capsys):
    entry = runs(tmp_path, 2)
    for seed in (2, 3):
        record(tmp_path / "runs", seed, steps=range(0, 600, 40))
    (tmp_path / "runs" / "seed7").mkdir()
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 0, err
    assert (
        "c.yaml:2: warning: settings.mine: runs log on different step grids: every 20 steps "
        "(seed(s) 0, 1); every 40 steps (seed(s) 2, 3). The HMM counts checkpoints, so dwell "
        "times mix the scales: log every seed at the same interval"
    ) in err
    assert (
        "c.yaml:2: warning: settings.mine: seed folder(s) seed7 of runs have no "
        "metrics.parquet: those seeds are not mapped (a job that never logged, or a file "
        "moved away)"
    ) in err


def test_bias_free_runs_in_check(tmp_path, capsys):
    entry = runs(tmp_path, 5, bias=False)
    status, err, _ = check(tmp_path, capsys, entry)
    assert status == 0, err
    assert one_line_has(
        err, "warning: settings.mine: 5 of 5 run(s) (0, 1, 2, 3, 4) have no biases"
    ), err
    status, err, _ = check(tmp_path, capsys, {**entry, "features": ["l2", "mean_b"]})
    assert status == 1
    assert one_line_has(
        err, "settings.mine: features: mean_b are NaN at every checkpoint of 5 of 5 run(s)"
    ), err


def test_more_parameters_than_fit_rows_is_a_warning_naming_the_largest_k(tmp_path, capsys):
    """The issue's case: 14 features, full covariance, 126 fit rows: K=2 has 241."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(10):  # 8 fit runs of ~16 rows; 2 validation runs
        n = 16 if seed < 9 else 14
        frame = pd.DataFrame(rng.normal(size=(n, 14)), columns=list(METRIC_COLUMNS))
        frame.insert(0, "step", np.arange(n) * 10)
        frame.insert(0, "seed", seed)
        frame["acc"] = np.linspace(0, 1, n)
        rows.append(frame)
    pd.concat(rows).to_csv(tmp_path / "t.csv", index=False)
    entry = {"source": "table", "table": "t.csv",
             "convergence": {"column": "acc", "threshold": 0.9}}  # fmt: skip
    status, err, _ = check(tmp_path, capsys, entry, hmm={"states": [1, 2, 3]})
    assert status == 0, err
    (line,) = [e for e in err if "free parameters" in e]
    assert "settings.mine: hmm.states: K=2, 3 have more free parameters than the" in line
    assert "(K=2: 241 with 14 features, full covariance)" in line
    assert "the largest K they carry is K=1" in line
    assert "covariance: diag (K=2: 59 parameters)" in line


def test_one_recorded_run_maps_over_time_and_a_split_points_there(tmp_path, capsys):
    record(tmp_path / "runs", 0, steps=range(0, 600, 20))  # 30 checkpoints
    entry = {"source": "runs", "runs": "runs", "features": ["l2", "spectral", "var_w"]}
    status, err, _ = check(tmp_path, capsys, entry, hmm={"states": [1, 2], "selection": "time"})
    assert status == 0, err
    status, err, _ = check(tmp_path, capsys, entry, hmm={"states": [1, 2]})
    assert status == 1 and "for one run use hmm.selection: time" in " ".join(err)
