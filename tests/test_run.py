"""``trainmap run``: the packaged workflow in the current directory (README "Install").

Its arguments (CONFIG, --profile, Snakemake's own passed through unchanged), the refusals
before anything runs (a missing or invalid config, a folder holding another config's
results), and a real run on recorded runs (``source: runs``) in an empty folder.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO
from torch import nn

from trainmap import run
from trainmap.record import Recorder
from trainmap.workflow_dir import workflow_dir

SNAKEFILE = str(workflow_dir() / "Snakefile")
PROFILES = workflow_dir() / "profiles"
HMM = {"states": [1, 2], "restarts": 1, "n_iter": 8, "covariance": "diag", "val_fraction": 0.5}


def runs_config(runs: Path, name: str = "mine") -> dict:
    return {
        "settings": {
            name: {"source": "runs", "runs": str(runs), "features": ["l2", "spectral", "var_w"],
                   "convergence": {"column": "eval_accuracy", "threshold": 0.8}},
        },
        "hmm": HMM,
    }  # fmt: skip


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def no_snakemake(monkeypatch):
    """Fail the test if trainmap run would start Snakemake."""

    def refuse(argv, *args, **kwargs):
        raise AssertionError(f"Snakemake was started: {argv}")

    monkeypatch.setattr(run.subprocess, "Popen", refuse)


@pytest.fixture
def started(monkeypatch) -> list[list[str]]:
    """Snakemake command lines trainmap run would start (none is started; exit 0)."""
    calls: list[list[str]] = []

    class Started:
        def __init__(self, argv):
            calls.append(argv)

        def wait(self):
            return 0

    monkeypatch.setattr(run.subprocess, "Popen", Started)
    return calls


def test_arguments_pass_to_snakemake_unchanged_and_first(tmp_path):
    config = tmp_path / "c.yaml"
    invocation = run.parse([str(config), "results/a/map.json", "--cores", "2", "--config",
                            "hmm={restarts: 2}", "--profile", "slurm", "-n"])  # fmt: skip
    assert invocation.snakemake == ["results/a/map.json", "--cores", "2", "--config",
                                    "hmm={restarts: 2}", "-n"]  # fmt: skip
    assert run.snakemake_argv(invocation) == [
        sys.executable, "-m", "snakemake", "results/a/map.json", "--cores", "2", "--config",
        "hmm={restarts: 2}", "-n", "--snakefile", SNAKEFILE,
        "--workflow-profile", str(PROFILES / "slurm"), "--configfile", str(config),
    ]  # fmt: skip


def test_the_default_config_profile_and_directory():
    invocation = run.parse(["--cores", "1"])
    assert invocation.config is None and invocation.configs is None
    assert invocation.profile == PROFILES / "workstation"
    assert invocation.directory == Path(".")
    argv = run.snakemake_argv(invocation)
    assert "--configfile" not in argv  # the Snakefile loads its default config
    assert run.parse(["c.yaml", "--directory", "elsewhere"]).directory == Path("elsewhere")
    assert run.parse(["c.yaml", "-d", "x", "--cores", "1"]).directory == Path("x")
    given = run.parse(["--configfile", "a.yaml", "b.yaml", "--cores", "1"])
    assert given.configs == [Path("a.yaml"), Path("b.yaml")] and given.config is None
    assert run.snakemake_argv(given).count("--configfile") == 1  # the user's, unchanged
    own = run.parse(["c.yaml", "--workflow-profile", "mine"])
    assert own.profile is None and "--workflow-profile" not in run.snakemake_argv(own)[5:]


def test_a_profile_folder_of_ones_own(tmp_path):
    (tmp_path / "config.yaml").write_text("cores: 1\n")
    assert run.parse(["--profile", str(tmp_path)]).profile == tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "laptop"], "--profile laptop: neither a packaged profile (slurm, "
                                  "workstation) nor a folder holding a config.yaml"),
        (["--profile"], "--profile needs a value"),
        (["c.yaml", "-s", "Other"], "trainmap run runs the packaged workflow: drop --snakefile"),
        (["c.yaml", "--configfile", "d.yaml"], "the config is given twice (c.yaml and"),
        (["--profile", "slurm", "--workflow-profile", "p"], "give --profile or --workflow-pro"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused(argv, message, tmp_path, monkeypatch, capsys, no_snakemake):
    monkeypatch.chdir(tmp_path)
    assert run.main(argv) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_config_is_named_before_anything_is_written(
    tmp_path, monkeypatch, capsys, no_snakemake
):
    monkeypatch.chdir(tmp_path)
    assert run.main(["cfg.yaml", "--cores", "1"]) == 1
    assert capsys.readouterr().err == "trainmap run: cfg.yaml: no such config file\n"
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_config_is_refused_with_trainmap_checks_messages(
    tmp_path, monkeypatch, capsys, no_snakemake
):
    monkeypatch.chdir(tmp_path)
    config = runs_config(tmp_path / "runs")
    config["settings"]["mine"]["featurs"] = ["l2"]
    write(tmp_path / "bad.yaml", config)
    assert run.main(["bad.yaml"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"bad\.yaml:\d+: settings\.mine\.featurs: unknown key", err), err
    assert "trainmap run: bad.yaml: not a valid config (the problems above" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def record_runs(folder: Path, seeds: int = 4, steps: int = 120, every: int = 6) -> Path:
    """Runs of a small MLP on an XOR-like task, recorded as a user's loop would."""
    for seed in range(seeds):
        torch.manual_seed(seed)
        x = torch.randn(512, 8)
        y = (x[:, 0] * x[:, 1] > 0).long()
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with Recorder(folder, seed=seed, model=model) as rec:
            for step in range(steps + 1):
                if step % every == 0:
                    with torch.no_grad():
                        accuracy = (model(x).argmax(1) == y).float().mean()
                    rec.log(step, eval_accuracy=accuracy)
                idx = torch.randint(512, (64,))
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return folder


def test_results_of_another_config_are_refused(tmp_path, monkeypatch, capsys, started):
    monkeypatch.chdir(tmp_path)
    runs = record_runs(tmp_path / "runs", seeds=4, steps=24, every=2)
    first = write(tmp_path / "first.yaml", runs_config(runs))
    (tmp_path / "results" / "mine").mkdir(parents=True)  # as if Snakemake had made it
    assert run.main(["first.yaml", "--cores", "1"]) == 0
    assert started[0][-2:] == ["--configfile", str(first)]
    assert (tmp_path / run.RECORD).is_file()  # results are there: they are first.yaml's
    # the same file, edited: Snakemake reruns what changed
    write(first, {**runs_config(runs), "hmm": {**HMM, "n_iter": 9}})
    assert run.main(["first.yaml", "--cores", "1"]) == 0
    other = write(tmp_path / "other.yaml", runs_config(runs, name="theirs"))
    capsys.readouterr()
    assert run.main(["other.yaml", "--cores", "1"]) == 1
    assert len(started) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "trainmap run: results/ holds the results of first.yaml (its mine; recorded in "
        "results/.trainmap-run.json), not of other.yaml: run other.yaml in another folder"
    ), err
    # results made by plain snakemake (no record): a setting the config lacks is refused
    (tmp_path / "results" / ".trainmap-run.json").unlink()
    assert run.main([str(other), "--cores", "1"]) == 1
    assert f"results of settings that {other} does not define (mine)" in capsys.readouterr().err
    (tmp_path / run.RECORD).write_text("{not json")
    assert run.main(["first.yaml"]) == 1
    assert "results/.trainmap-run.json: not a record of trainmap run" in capsys.readouterr().err


@pytest.mark.slow
def test_trainmap_run_maps_recorded_runs_in_an_empty_folder(tmp_path):
    """As a user would: a config of recorded runs, `trainmap run cfg.yaml --cores 2` in an
    empty folder, then a second config in the same folder is refused."""
    runs = record_runs(tmp_path / "runs")
    project = tmp_path / "project"
    project.mkdir()
    write(project / "cfg.yaml", runs_config(runs))
    command = [sys.executable, "-m", "trainmap", "run", "cfg.yaml", "--cores", "2"]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "cfg.yaml: valid" in done.stdout
    chart = (project / "results" / "mine" / "map.json").read_text()
    assert '"n_states"' in chart and (project / "results" / "summary.md").is_file()
    assert (project / "logs").is_dir() and not (REPO / "results" / "mine").exists()
    write(project / "other.yaml", runs_config(runs, name="other"))
    command[4] = "other.yaml"
    refused = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1
    assert "results/ holds the results of cfg.yaml" in refused.stderr
    assert not (project / "results" / "other").exists()


def test_the_results_folders_that_are_not_settings():
    """run.NOT_SETTINGS lists every folder the rules write under results/ that is not a
    setting's (a new one would be taken for another config's setting)."""
    folders = set()
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        folders |= set(re.findall(r'"results/([a-z_]+)/', rules.read_text()))
    assert folders == run.NOT_SETTINGS
