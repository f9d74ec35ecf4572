"""Config validation: every bad value is refused before any job, naming key and value."""

from pathlib import Path

import pytest

from trainmap.config import load_yaml, validate_config
from trainmap.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PARITY = {
    "source": "train",
    "task": "sparse_parity",
    "seeds": 3,
    "convergence": {"column": "eval_accuracy", "threshold": 0.9},
}


def config_with(**setting) -> dict:
    return {"settings": {"parity": {**PARITY, **setting}}}


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    settings = validate_config(load_yaml(ROOT / "config" / name))
    # A checkpoint series has the seeds that were released (MultiBERTs: 5).
    assert all(len(s.seeds) >= 8 for s in settings.values() if s.source == "train")


def test_paper_config_has_forty_seeds_per_setting():
    settings = validate_config(load_yaml(ROOT / "config" / "paper.yaml"))
    assert {"modular", "modular_ln", "parity"} <= set(settings)
    assert all(s.seeds == list(range(40)) for s in settings.values() if s.source == "train")
    assert settings["modular_ln"].params["layer_norm"] is True
    multiberts = settings["multiberts"]
    assert multiberts.seeds == [0, 1, 2, 3, 4] and multiberts.hmm["covariance"] == "diag"
    assert len(multiberts.series.steps[0]) == 29 and multiberts.series.model == "bert"
    assert multiberts.series.location(3, 1900) == "google/multiberts-seed_3-step_1900k"


def test_defaults_are_filled_and_overrides_merged():
    config = config_with(hmm={"covariance": "diag"}, lr=0.05)
    config["hmm"] = {"restarts": 3}
    setting = validate_config(config)["parity"]
    assert setting.hmm["covariance"] == "diag"  # the setting's override
    assert setting.hmm["restarts"] == 3  # the top-level value
    assert setting.hmm["n_iter"] == 32  # the schema default
    assert setting.hmm["covariance_guard"] == "singular"  # hmmlearn's EM unless singular
    assert setting.params["lr"] == 0.05 and setting.params["batch_size"] == 32
    assert setting.alpha == 0.001
    assert setting.seeds == [0, 1, 2]
    assert len(setting.features) == 14


def test_explicit_seed_list_is_sorted():
    assert validate_config(config_with(seeds=[5, 2, 9]))["parity"].seeds == [2, 5, 9]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (config_with(task="grokking"), r"settings\.parity\.task: unknown task 'grokking'"),
        (config_with(seeds=[1, 1]), r"settings\.parity\.seeds: \[1, 1\] is not valid"),
        (config_with(seeds=0), r"settings\.parity\.seeds: 0 is not valid"),
        (config_with(seeds="40"), r"settings\.parity\.seeds: '40' is not valid"),
        (config_with(seeds_per_job=0), r"settings\.parity\.seeds_per_job: 0 is less than"),
        (config_with(seeds_per_job=2.5), r"settings\.parity\.seeds_per_job: 2\.5 is not of"),
        (config_with(epochs=0), r"settings\.parity\.epochs: must be positive, got 0"),
        (config_with(epochs=-3), r"settings\.parity\.epochs: must be positive, got -3"),
        (config_with(hiden=64), r"settings\.parity\.hiden: unknown key"),
        (config_with(lr="fast"), r"settings\.parity\.lr: expected float, got 'fast'"),
        (config_with(source="s3"), r"settings\.parity\.source: 's3' is not one of"),
        (config_with(source="checkpoints"), r"settings\.parity\.task: does not apply to source"),
        (config_with(source="table"), r"settings\.parity\.table: required for source 'table'"),
        (config_with(convergence={"column": "x"}), r"convergence: 'threshold' is a required"),
        (config_with(hmm={"covariance": "tied"}), r"hmm\.covariance: 'tied' is not one of"),
        (config_with(hmm={"covariance_guard": "off"}), r"hmm\.covariance_guard: 'off' is not"),
        ({"settings": {"Parity": PARITY}}, r"settings: 'Parity' does not match"),
        ({"settings": {}}, r"settings: \{\} should be non-empty"),
        ({"settings": {"p": PARITY}, "hmmm": {}}, r"config: Additional properties"),
        ({"settings": {"p": PARITY}, "hmm": {"states": [0]}}, r"hmm\.states\.0: 0 is less"),
    ],
)
def test_bad_config_names_key_and_value(config, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_table_setting_rejects_training_keys():
    config = config_with(source="table", table="runs.csv", seeds_per_job=4)
    keys = r"\['seeds', 'seeds_per_job', 'task'\]"
    with pytest.raises(ConfigError, match=rf"settings\.parity: keys {keys} only apply"):
        validate_config(config)


def test_seed_groups_are_by_value():
    """Job g trains seeds g*n .. g*n+n-1: adding seeds never moves one to another job."""
    setting = validate_config(config_with(seeds=[0, 1, 2, 7, 9, 12], seeds_per_job=4))["parity"]
    assert setting.seed_groups() == {0: [0, 1, 2], 1: [7], 2: [9], 3: [12]}
    more = validate_config(config_with(seeds=[0, 1, 2, 3, 7, 9, 12], seeds_per_job=4))["parity"]
    assert more.seed_groups() == {0: [0, 1, 2, 3], 1: [7], 2: [9], 3: [12]}
    assert validate_config(config_with(seeds=3))["parity"].seed_groups() == {0: [0], 1: [1], 2: [2]}


def test_every_key_is_documented():
    """config/README.md names every schema key and every task hyperparameter."""
    import dataclasses

    from trainmap.hyperparameters import HYPERPARAMETERS

    doc = (ROOT / "config" / "README.md").read_text()
    schema = load_yaml(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    keys = set(schema["definitions"]["setting"]["properties"])
    keys |= set(schema["definitions"]["hmm_values"]["properties"])
    for params in HYPERPARAMETERS.values():
        keys |= {field.name for field in dataclasses.fields(params)}
    missing = sorted(key for key in keys if f"`{key}`" not in doc)
    assert not missing, f"config/README.md does not document {missing}"


def test_registries_agree():
    from trainmap.hyperparameters import HYPERPARAMETERS
    from trainmap.tasks import TASKS

    assert {name: task.params for name, task in TASKS.items()} == HYPERPARAMETERS


def test_config_validation_does_not_import_torch():
    """The Snakefile validates the config at every start (and in every cluster job)."""
    import subprocess
    import sys

    code = "import sys, trainmap.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
