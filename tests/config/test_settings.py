"""Config validation: every bad value is refused before any job, naming key and value."""

from pathlib import Path

import pytest

from trainmap.config.settings import load_yaml, validate_config
from trainmap.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
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
    assert setting.hmm["n_iter"] == 300  # the schema default
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
        (config_with(epochs=0), r"settings\.parity\.epochs: 0 is out of range; allowed: >= 1"),
        (config_with(epochs=-3), r"settings\.parity\.epochs: -3 is out of range; allowed"),
        (config_with(hiden=64), r"settings\.parity\.hiden: unknown key"),
        (config_with(vectorise=True), r"parity\.vectorise: unknown key .*did you mean 'vectorize'"),
        (config_with(lr="fast"), r"settings\.parity\.lr: expected float, got 'fast'"),
        (config_with(source="s3"), r"settings\.parity\.source: 's3' is not one of"),
        (config_with(source="checkpoints"), r"parity: .*task \(source 'train'\) does not"),
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
    keys = r"seeds \(source 'train' or 'checkpoints'\), seeds_per_job \(source 'train'\), "
    keys += r"task \(source"
    with pytest.raises(ConfigError, match=rf"settings\.parity: {keys}.* do not apply to source"):
        validate_config(config)
    table = {k: v for k, v in config_with(source="table", table="t.csv")["settings"]["parity"]
             .items() if k not in ("task", "seeds")}  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"mine\.lr: a task hyperparameter; it only applies to source 'train'"
    ):
        validate_config({"settings": {"mine": {**table, "lr": 0.1}}})


def test_trained_setting_rejects_table_keys():
    """The other direction: `table:` on a trained setting was silently dropped."""
    message = r"settings\.parity: table \(source 'table'\) does not apply to source 'train'"
    with pytest.raises(ConfigError, match=message + "; remove it"):
        validate_config(config_with(table="runs.csv"))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"k": 41}, r"settings\.parity\.k: 41 exceeds n_bits \(40\); allowed: 1 \.\. n_bits"),
        ({"hidden": 0}, r"settings\.parity\.hidden: 0 is out of range; allowed: >= 1"),
        ({"n_eval": 0}, r"settings\.parity\.n_eval: 0 is out of range; allowed: >= 1"),
        ({"lr": 0}, r"settings\.parity\.lr: 0 is out of range; allowed: > 0"),
        ({"momentum": 1.5}, r"parity\.momentum: 1\.5 is out of range; allowed: in \[0, 1\)"),
        ({"task": "modular_addition", "train_fraction": 1.5},
         r"settings\.parity\.train_fraction: 1\.5 is out of range; allowed: in \(0, 1\)"),
        ({"task": "modular_addition", "p": 3, "train_fraction": 0.01},
         r"settings\.parity\.train_fraction: 0\.01 of the 9 pairs leaves 0 to train"),
        ({"task": "modular_addition", "betas": [0.9, 1.0]},
         r"settings\.parity\.betas: \[0\.9, 1\.0\] is out of range; allowed: in \[0, 1\)"),
        ({"features": ["l2", "step"]}, r"settings\.parity\.features: \['step'\] identify"),
        ({"features": ["seed"]}, r"settings\.parity\.features: \['seed'\] identify"),
        ({"features": ["l2", "grad_norm"]},
         r"settings\.parity\.features: \['grad_norm'\] are not logged by training"),
        ({"convergence": {"column": "val_acc", "threshold": 0.9}},
         r"settings\.parity\.convergence\.column: 'val_acc' is not logged by training"),
        ({"resume_every": -1}, r"settings\.parity\.resume_every: -1 is less than the minimum"),
    ],
)  # fmt: skip
def test_task_keys_are_range_checked_at_validation(setting, message):
    """Values that used to train a different task or fail after training (issue 11)."""
    with pytest.raises(ConfigError, match=message):
        validate_config(config_with(**setting))


def test_table_features_cannot_be_id_columns():
    entry = {"source": "table", "table": "t.csv", "features": ["step", "l2"],
             "convergence": PARITY["convergence"]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"settings\.mine\.features: \['step'\] identify"):
        validate_config({"settings": {"mine": entry}})


@pytest.mark.parametrize(
    ("seeds", "reason"),
    [
        ([1, 1], r"settings\.parity\.seeds: \[1, 1\] has non-unique elements"),
        ([0, -1], r"settings\.parity\.seeds\.1: -1 is less than the minimum of 0"),
        (0, r"settings\.parity\.seeds: 0 is less than the minimum of 1"),
        (["a"], r"settings\.parity\.seeds\.0: 'a' is not of type 'integer'"),
        ("40", r"'40' is not of type 'array'; settings\.parity\.seeds: '40' is not of type"),
        (2.0, r"settings\.parity\.seeds: 2\.0 is not of type 'integer'"),
    ],
)
def test_schema_alternatives_say_which_rule_failed(seeds, reason):
    with pytest.raises(ConfigError, match=reason):
        validate_config(config_with(seeds=seeds))


def test_empty_config_is_refused():
    with pytest.raises(ConfigError, match="the config is empty"):
        validate_config({})


def test_empty_and_non_mapping_config_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="the config is empty"):
        validate_config(load_yaml(empty))
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: a config is a mapping of keys, got list"):
        load_yaml(listing)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"task": "modular_addition", "momentum": 0.9},
         r"settings\.parity\.momentum: has no effect with optimizer 'adamw'"),
        ({"betas": [0.9, 0.99]}, r"settings\.parity\.betas: has no effect with optimizer 'sgd'"),
    ],
)  # fmt: skip
def test_options_without_effect_warn(setting, message):
    from trainmap.errors import ConfigWarning

    with pytest.warns(ConfigWarning, match=message):
        validate_config(config_with(**setting))


def test_resume_every_defaults_and_is_no_hyperparameter():
    setting = validate_config(config_with())["parity"]
    assert setting.resume_every == 60.0 and "resume_every" not in setting.params
    assert validate_config(config_with(resume_every=0))["parity"].resume_every == 0.0


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

    from trainmap.tasks.hyperparameters import HYPERPARAMETERS

    doc = (ROOT / "config" / "README.md").read_text()
    schema = load_yaml(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    keys = set(schema["definitions"]["setting"]["properties"])
    keys |= set(schema["definitions"]["hmm_values"]["properties"])
    for params in HYPERPARAMETERS.values():
        keys |= {field.name for field in dataclasses.fields(params)}
    missing = sorted(key for key in keys if f"`{key}`" not in doc)
    assert not missing, f"config/README.md does not document {missing}"


def test_registries_agree():
    from trainmap.tasks.hyperparameters import HYPERPARAMETERS
    from trainmap.tasks.registry import TASKS

    assert {name: task.params for name, task in TASKS.items()} == HYPERPARAMETERS


def test_config_validation_does_not_import_torch():
    """The Snakefile validates the config at every start (and in every cluster job)."""
    import subprocess
    import sys

    code = "import sys, trainmap.config.settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_live_fractions_default_and_are_refused_for_a_per_run_map():
    assert validate_config(config_with(live={}))["parity"].live == {"fractions": [0.1, 0.25, 0.5]}
    assert validate_config(config_with(live={"fractions": [0.5, 0.2]}))["parity"].live == {
        "fractions": [0.2, 0.5]
    }
    assert validate_config(config_with())["parity"].live == {}
    with pytest.raises(ConfigError, match="settings.parity.live: needs hmm.normalize: global"):
        validate_config(config_with(live={}, hmm={"normalize": "per_run"}))
    with pytest.raises(ConfigError, match="live.fractions"):
        validate_config(config_with(live={"fractions": [0]}))
    with pytest.raises(ConfigError, match="live"):
        validate_config(config_with(live={"fraction": [0.1]}))
