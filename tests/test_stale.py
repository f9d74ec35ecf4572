"""A setting's results are removed when its runs are redone, so a failed rerun leaves none."""

import pytest
from conftest import planned_jobs, run_workflow
from test_bad_inputs import runs_csv, table_config

from trainmap.io.stale import remove_stale_results


def test_removes_what_was_derived_and_keeps_the_runs(tmp_path):
    setting = tmp_path / "results" / "mine"
    for name in ("map.json", "hmm/k2.json", "runs/seed0/metrics.parquet", "tokenizer.json"):
        (setting / name).parent.mkdir(parents=True, exist_ok=True)
        (setting / name).write_text("x")
    (tmp_path / "results" / "other").mkdir()
    (tmp_path / "results" / "other" / "map.json").write_text("x")
    (tmp_path / "results" / "summary.md").write_text("x")
    removed = remove_stale_results(setting)
    assert sorted(p.name for p in removed) == ["hmm", "map.json", "summary.md"]
    assert (setting / "runs/seed0/metrics.parquet").exists() and (
        setting / "tokenizer.json"
    ).exists()
    assert (tmp_path / "results" / "other" / "map.json").exists()  # another setting's
    assert remove_stale_results(tmp_path / "results" / "absent") == []


@pytest.mark.slow
def test_a_failed_rerun_leaves_no_stale_results(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    table = work / "runs.csv"
    table.write_text(runs_csv(n_runs=6))
    config = table_config(tmp_path, "runs.csv")
    run_workflow(work, config)
    results = work / "results"
    for name in ("mine/map.json", "mine/regression.json", "mine/detours.csv", "summary.md"):
        assert (results / name).exists()

    table.write_text(runs_csv(n_runs=6).replace(",0.2\n", ",n/a\n", 1))  # broken
    assert run_workflow(work, config, check=False).returncode != 0
    for name in (
        "mine/map.json",
        "mine/regression.json",
        "mine/trajectories.parquet",
        "summary.md",
    ):
        assert not (results / name).exists(), name
    log = (work / "logs/mine/collect_trajectories.log").read_text()
    assert "removed results of the previous inputs" in log and "map.json" in log

    table.write_text(runs_csv(n_runs=6))  # fixed: everything is planned again (the jobs
    planned = {job.rule for job in planned_jobs(work, config)}  # are the first run's)
    assert {"collect_trajectories", "draw_training_map", "summarize_settings"} <= planned


def test_clean_resume_removes_states_of_seeds_that_left_the_config(tmp_path, capsys):
    from conftest import TINY_CONFIG

    from trainmap.cli import main as cli

    runs = tmp_path / "results" / "parity" / "runs"
    for name in (".resume-seed0", ".resume-seed1", ".resume-seed7", "group0"):
        (runs / name).mkdir(parents=True)
    gone = tmp_path / "results" / "removed_setting" / "runs" / ".resume-seed0"
    gone.mkdir(parents=True)
    argv = ["clean-resume", str(TINY_CONFIG), "--directory", str(tmp_path)]
    assert cli([*argv, "--dry-run"]) == 0
    assert (runs / ".resume-seed7").exists() and gone.exists()
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "removed results/parity/runs/.resume-seed7" in out
    assert "removed results/removed_setting/runs/.resume-seed0" in out
    assert not (runs / ".resume-seed7").exists() and not gone.exists()
    assert (runs / ".resume-seed0").exists() and (runs / ".resume-seed1").exists()  # seeds 0, 1
    assert (runs / "group0").exists()
