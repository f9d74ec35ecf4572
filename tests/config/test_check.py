"""`trainmap check`, the line-keeping loader, typed --config values and the predicted split."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG, run_workflow

from trainmap.config.check import main
from trainmap.config.loader import load_located
from trainmap.config.overrides import apply_overrides
from trainmap.config.settings import SCHEMA_PATH, load_yaml, validate_config
from trainmap.errors import ConfigError
from trainmap.hmm.sequences import split_runs
from trainmap.hmm.split import n_validation_runs, trained_checkpoints
from trainmap.tasks.params import parse_params

ROOT = Path(__file__).resolve().parents[2]
PARITY = """\
settings:
  parity:
    source: train
    task: sparse_parity
    seeds: 5
    epochs: 9
    eval_every: 1
    convergence: {column: eval_accuracy, threshold: 0.9}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("settings:\n  parity:\n\tsource: train\n", r"c\.yaml:3:1: found character '\\t'.*tab"),
        (
            "hmm:\n  states: [1, 2\n  restarts: 2\n",
            r"c\.yaml:3:11: .*flow sequence started at line 2",
        ),
        ("[settings]\nname = parity\n", r"c\.yaml:2:1: .*looks like an INI file"),
        ("- a\n- b\n", r"c\.yaml:1: a config is a mapping of keys .* got a list"),
        (
            "settings:\n  parity:\n    n_bits: yes\n    source: train\n    n_bits: 10\n",
            r"c\.yaml:5: key 'n_bits' given twice \(first at line 3\)",
        ),
        (
            "hmm:\n  restarts: 2\nhmm:\n  seed: 1\n",
            r"c\.yaml:3: key 'hmm' given twice \(first at line 1",
        ),
    ],
)
def test_loader_names_file_line_and_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_located(write(tmp_path, text))


def test_loader_keeps_each_keys_line_and_allows_merge_keys(tmp_path):
    text = (
        "base: &b {restarts: 2}\nhmm:\n  <<: *b\n  restarts: 3\n"
        "settings:\n  p:\n    seeds: [1, 2]\n"
    )
    located = load_located(write(tmp_path, text))
    assert located.data["hmm"] == {"restarts": 3}  # an override of a merge is no duplicate
    assert located.lines[("hmm", "restarts")] == 4
    assert located.lines[("settings", "p", "seeds", "1")] == 7
    assert located.line_of(("settings", "p", "lr")) == 6  # a missing key: its mapping's line
    with pytest.raises(ConfigError, match="no such config file"):
        load_located(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_located(tmp_path)


def test_check_prints_every_problem_with_its_line(tmp_path, capsys):
    text = PARITY.replace("    epochs: 9\n", "    hiden: 64\n    lr: fast\n    epochs: 9\n") + (
        "  mine:\n    source: table\n    table: nothere.csv\n"
        "    convergence: {column: eval_accuracy, threshold: 0.9}\n"
        "  bad:\n    source: train\n    task: sparse_parity\n    seeds: [1, 1]\n"
        "    convergence: {column: eval_accuracy, threshold: 0.9}\n"
    )
    config = write(tmp_path, text)
    os.chdir(tmp_path)
    assert main([str(config)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "c.yaml:18: settings.bad.seeds: [1, 1] is not valid under any of the given schemas "
        "(settings.bad.seeds: [1, 1] has non-unique elements)",
        "c.yaml:13: settings.mine.table: nothere.csv: no such file",
        lines[2],
        "c.yaml:7: settings.parity.lr: expected float, got 'fast'",
    ]
    assert lines[2].startswith("c.yaml:6: settings.parity.hiden: unknown key (value 64); did you")


def test_check_of_valid_files_exits_0_and_of_any_bad_one_1(tmp_path):
    command = [sys.executable, "-m", "trainmap", "check", str(TINY_CONFIG)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    ok = subprocess.run(command, capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("tiny.yaml: valid")
    bad = subprocess.run(
        [*command, str(tmp_path / "typo.yaml")], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1 and "typo.yaml: no such config file" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_check_reads_the_table_and_predicts_its_split(tmp_path, capsys):
    rows = ["seed,step,l2,eval_accuracy"] + [
        f"{s},{t},{s + t},0.5" for s in range(3) for t in range(3)
    ]
    write(tmp_path, "\n".join(rows) + "\n", "runs.csv")
    config = write(
        tmp_path,
        "settings:\n  mine:\n    source: table\n    table: runs.csv\n    features: [l2]\n"
        "    convergence: {column: eval_accuracy, threshold: 0.9}\n",
    )
    assert main([str(config), "--directory", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "c.yaml:2: settings.mine: the validation split has 3 rows" in err


def test_predicted_split_refuses_too_few_validation_rows_naming_numbers_and_keys():
    config = yaml.safe_load(PARITY)  # 5 seeds -> 1 validation run; 10 checkpoints each
    validate_config(config)  # 10 rows: enough
    config["settings"]["parity"]["epochs"] = 8
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert message.startswith("settings.parity: the validation split will have 9 rows (1 of 5")
    assert "hmm.val_fraction 0.2" in message and "epochs 8, eval_every 1 epoch(s)" in message
    assert "settings.parity.epochs, settings.parity.eval_every" in message
    config["hmm"] = {"val_fraction": 0.4}  # 2 validation runs
    validate_config(config)
    config["hmm"] = {"val_fraction": 0.4, "max_checkpoints": 4}
    with pytest.raises(ConfigError, match=r"8 rows .* cut to hmm\.max_checkpoints 4"):
        validate_config(config)


def test_predicted_state_counts_above_fit_rows_are_refused():
    config = yaml.safe_load(PARITY)
    config["settings"]["parity"]["seeds"] = 2
    config["settings"]["parity"]["epochs"] = 12  # 13 checkpoints; 1 fit run
    config["hmm"] = {"states": [2, 13, 14]}
    with pytest.raises(ConfigError, match=r"hmm\.states: K=\[14\] exceed the 13 fit rows"):
        validate_config(config)


@pytest.mark.parametrize(
    ("overrides", "count"),
    [
        ({"eval_unit": "step", "eval_every": 3, "n_train": 20, "batch_size": 8, "epochs": 2}, 3),
        ({"eval_unit": "step", "eval_every": 4, "n_train": 20, "batch_size": 8, "epochs": 2}, 3),
        ({"eval_unit": "epoch", "eval_every": 2, "epochs": 5}, 4),
        ({"eval_unit": "epoch", "eval_every": 1, "epochs": 3}, 4),
    ],
)
def test_predicted_checkpoints_equal_the_trained_rows(overrides, count):
    from trainmap.tasks.registry import get_task
    from trainmap.training.loop import train

    task = get_task("sparse_parity")
    tiny = {"n_bits": 6, "n_eval": 8, "hidden": 4, "device": "cpu", **overrides}
    params = parse_params(task.params, tiny, "t")
    table, _ = train(task, params, seed=0)
    predicted, _ = trained_checkpoints(vars(params), params.train_examples())
    assert predicted == len(table) == count


def test_split_size_formula_is_the_one_the_split_uses():
    for n in range(2, 30):
        for fraction in (0.05, 0.1, 0.2, 0.25, 0.5, 0.9):
            _, val = split_runs(list(range(n)), fraction, seed=0)
            assert len(val) == n_validation_runs(n, fraction)


def test_command_line_strings_are_typed_as_the_schema_expects():
    schema = load_yaml(SCHEMA_PATH)
    config = load_yaml(TINY_CONFIG)
    given = {
        "hmm": {"restarts": "3", "states": ["1", "2"], "val_fraction": "0.4"},
        "settings": {
            "parity": {"epochs": "30", "lr": "1e-2", "seeds": ["0", "1"], "vectorize": "no"}
        },
    }
    config["hmm"].update(given["hmm"])
    config["settings"]["parity"].update(given["settings"]["parity"])
    typed = apply_overrides(config, given, schema)
    hmm = typed["hmm"]
    assert (hmm["restarts"], hmm["states"], hmm["val_fraction"]) == (3, [1, 2], 0.4)
    parity = typed["settings"]["parity"]
    assert (parity["epochs"], parity["lr"], parity["seeds"]) == (30, 0.01, [0, 1])
    assert parity["vectorize"] == "no"  # an enum that holds strings: left for validation
    assert config["hmm"]["restarts"] == "3"  # the input is not changed
    bad = apply_overrides(config, {"hmm": {"restarts": "two"}}, schema)
    with pytest.raises(ConfigError, match="hmm.restarts: 'two' is not of type 'integer'"):
        validate_config(bad)


@pytest.mark.slow
def test_snakemake_types_config_values_and_refuses_keys_given_twice(tmp_path):
    result = run_workflow(
        tmp_path / "ok",
        extra_args=["--dry-run", "--config", "hmm={restarts: 3, states: [1, 2]}"],
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    text = TINY_CONFIG.read_text().replace("    n_bits: 10\n", "    n_bits: 10\n    n_bits: 12\n")
    twice = write(tmp_path, text, "twice.yaml")
    result = run_workflow(tmp_path / "dup", twice, extra_args=["--dry-run"], check=False)
    assert result.returncode != 0
    assert "twice.yaml:9: key 'n_bits' given twice (first at line 8)" in result.stdout


def test_workflow_config_is_a_new_dict_and_reads_the_default_only_without_files(tmp_path):
    from trainmap.config.snakefile import workflow_config

    config = load_yaml(TINY_CONFIG)
    checked = workflow_config(config, [TINY_CONFIG], {}, ROOT / "config" / "config.yaml")
    assert checked == config and checked is not config  # the Snakefile clears `config`
    default = workflow_config({}, [], {}, ROOT / "config" / "config.yaml")
    assert default == load_yaml(ROOT / "config" / "config.yaml")
    twice = write(tmp_path, "hmm:\n  seed: 1\n  seed: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:3: key 'seed' given twice"):
        workflow_config({"hmm": {"seed": 2}}, [twice], {}, ROOT / "config" / "config.yaml")


README_CASES = {
    "tab.yaml": "settings:\n  parity:\n\tsource: train\n",
    "bracket.yaml": "hmm:\n  states: [1, 2\n  restarts: 2\n",
    "ini.yaml": "[settings]\nsource = train\n",
    "twice.yaml": (
        "settings:\n  parity:\n    source: train\n    task: sparse_parity\n    seeds: 40\n"
        "    n_bits: yes\n    n_bits: 10\n"
        "    convergence: {column: eval_accuracy, threshold: 0.9}\n"
    ),
    "small.yaml": (
        "settings:\n  parity:\n    source: train\n    task: sparse_parity\n    seeds: 4\n"
        "    epochs: 50\n    eval_every: 25\n"
        "    convergence: {column: eval_accuracy, threshold: 0.9}\n"
    ),
}


def test_readme_troubleshooting_shows_the_messages_users_see(tmp_path, capsys):
    """Each message of README's troubleshooting table, as `trainmap check` prints it."""
    readme = (ROOT / "README.md").read_text()
    os.chdir(tmp_path)
    for name, text in README_CASES.items():
        write(tmp_path, text, name)
        assert main([name]) == 1
        message = capsys.readouterr().err.strip().replace(name, "cfg.yaml", 1)
        assert f"`{message}`" in readme, message


def test_check_shows_warnings_with_their_line_and_still_passes(tmp_path, capsys):
    config = write(
        tmp_path, PARITY.replace("    epochs: 9\n", "    epochs: 9\n    betas: [0.9, 0.99]\n")
    )
    os.chdir(tmp_path)
    assert main([str(config)]) == 0
    captured = capsys.readouterr()
    assert "c.yaml:7: warning: settings.parity.betas: has no effect with optimizer 'sgd'" in (
        captured.err
    )
    assert captured.out.strip() == "c.yaml: valid"


def test_make_run_checks_the_config_first():
    planned = subprocess.run(
        ["make", "-n", "run", "CONFIG=my.yaml"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    check = planned.index(".venv/bin/trainmap check my.yaml")
    assert check < planned.index("--configfile my.yaml")
    assert 'trainmap = "trainmap.cli:main"' in (ROOT / "pyproject.toml").read_text()
