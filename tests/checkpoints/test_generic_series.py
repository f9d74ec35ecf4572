"""source: checkpoints of a Llama-style series (issue 32): validation, bad input, name
patterns, bias-free models, file formats, and the workflow end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file
from test_architectures import build, oracle

from trainmap.checkpoints.read import read_weights, seed_table
from trainmap.checkpoints.stream import checkpoint_metrics, series_metrics
from trainmap.checkpoints.validate import check_checkpoint_settings
from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.io.biases import BIAS_COLUMNS
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.fast import out_of_tolerance

CPU = torch.device("cpu")
SEEDS, STEPS = [0, 1, 2], [0, 1, 2, 3, 4]


def write_llama_series(root, seeds=SEEDS, steps=STEPS) -> dict[tuple[int, int], dict]:
    """save_pretrained of a tiny Llama per (seed, step), drifting; the oracle's metrics."""
    expected = {}
    for seed in seeds:
        model = build("llama", seed)
        for step in steps:
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.0 + 0.02 * step)
            model.save_pretrained(root / f"seed{seed}" / f"step{step}")
            expected[seed, step] = oracle("llama", model)[0]
    return expected


@pytest.fixture(scope="module")
def llama_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama")
    return root, write_llama_series(root, [0, 1], [0, 1])


def validated(config: dict) -> dict:
    """validate_config's settings (two runs: no HMM split here), the checkpoints checked as
    the Snakefile and `trainmap check` check them."""
    return check_checkpoint_settings(validate_config(config, predict_split=False))


def setting(root, **extra) -> dict:
    entry = {"source": "checkpoints", "checkpoints": f"{root}/seed{{seed}}/step{{step}}"}
    return {"settings": {"llama": {**entry, "seeds": [0, 1], **extra}}}


def test_a_llama_series_validates_bias_free_with_default_features_less_the_bias_ones(
    llama_series,
):
    root, expected = llama_series
    s = validated(setting(root))["llama"]
    assert s.bias_free and s.series.bias_free and s.series.model is None
    assert s.features == [c for c in METRIC_COLUMNS if c not in BIAS_COLUMNS]
    metrics, record = series_metrics(s.series.locations(1), False, None, {}, CPU)
    assert record["family"] == "generic" and record["architecture"] == "LlamaForCausalLM"
    assert record["bias_free"] and "not divergence" in record["note"]
    table = seed_table("llama", 1, metrics, None, record["bias_free"])
    assert table[list(BIAS_COLUMNS)].isna().all(axis=None) and not table["diverged"].any()
    for step in (0, 1):
        assert not out_of_tolerance(metrics.iloc[step].to_dict(), expected[1, step])


def test_features_naming_the_bias_metrics_of_a_bias_free_model_are_refused(llama_series):
    root, _ = llama_series
    with pytest.raises(ConfigError, match=r"llama\.features: \['var_b'\]: a bias-free model"):
        validated(setting(root, features=["l1", "var_b"]))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"matrices": ["*.nothing"]}, r"matrices: '\*\.nothing' matches nothing; it holds "
                                      r"lm_head\.weight \(64, 16\)"),
        ({"biases": ["*.bias"]}, r"biases: '\*\.bias' matches nothing; it holds no bias at all"),
        ({"model": "bert"}, r"weights do not fit family 'bert'"),
        ({"model": "sparse_parity", "biases": []}, r"biases name tensors .* is a task"),
    ],
)  # fmt: skip
def test_bad_patterns_and_families_are_refused_naming_the_checkpoint(llama_series, extra, message):
    root, _ = llama_series
    where = rf"settings\.llama(\.checkpoints: {root}/seed0/step0)?: "
    with pytest.raises(ConfigError, match=rf"{where}.*{message}"):
        validated(setting(root, **extra))


def test_tensors_that_do_not_fit_the_config_are_refused_naming_file_and_tensor(tmp_path):
    write_llama_series(tmp_path, [0, 1], [0])
    config = tmp_path / "seed1" / "step0" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "intermediate_size": 48}))
    where = rf"{tmp_path}/seed1/step0: tensor model\.layers\.0\.mlp\.\w+_proj\.weight has shape"
    with pytest.raises(ConfigError, match=rf"{where} .* describes \(LlamaForCausalLM\) has"):
        validated(setting(tmp_path))
    save_file({"model.layers.0.self_attn.q_proj.weight": torch.ones(16, 16)},
              tmp_path / "seed1" / "step0" / "model.safetensors")  # fmt: skip
    with pytest.raises(ConfigError, match=r"step0: holds no tensor for \d+ parameter"):
        validated(setting(tmp_path))


def test_name_patterns_read_a_bare_weights_file_and_override_the_rule(llama_series, tmp_path):
    root, expected = llama_series
    tensors = read_weights(root / "seed0" / "step1")
    save_file(tensors, tmp_path / "bare.safetensors")  # no config.json beside it
    with pytest.raises(Exception, match=r"no config\.json .* matrices: \(and biases:\) patterns"):
        checkpoint_metrics(tmp_path / "bare.safetensors", None, {}, CPU)
    patterns = {"matrices": ["*_proj.weight"], "biases": ["*norm.weight"]}
    got, record = series_metrics({1: str(tmp_path / "bare.safetensors")}, False, None, {}, CPU,
                                 patterns=patterns)  # fmt: skip
    assert record["family"] == "names" and len(record["matrices"]) == 14
    assert len(record["biases"]) == 5 and not record["bias_free"]  # 2 x 2 layer norms + final
    row = got.iloc[0].to_dict()
    assert not out_of_tolerance({**row, "mean_b": np.nan, "median_b": np.nan, "var_b": np.nan},
                                expected[0, 1])  # fmt: skip
    assert np.isfinite(row["var_b"])


def test_sharded_and_bin_checkpoints_give_the_same_metrics(llama_series, tmp_path):
    root, expected = llama_series
    model = build("llama", 5)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    (tmp_path / "bin").mkdir()
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    config = (tmp_path / "sharded" / "config.json").read_text()
    (tmp_path / "bin" / "config.json").write_text(config)
    want = oracle("llama", model)[0]
    for where in ("sharded", "bin"):
        assert not out_of_tolerance(checkpoint_metrics(tmp_path / where, None, {}, CPU), want)


@pytest.mark.slow
def test_a_tiny_llama_series_maps_end_to_end(tmp_path):
    """3 seeds x 5 checkpoints saved with save_pretrained: config, metrics, HMM, map.json.
    (One run alone, K over time and its phases: tests/maps/test_one_run.py; the stages
    after the metrics do not depend on the source.)"""
    from conftest import run_workflow

    expected = write_llama_series(tmp_path / "ckpts")
    config = {
        "settings": {
            "llama": {"source": "checkpoints", "checkpoints": "ckpts/seed{seed}/step{step}",
                      "seeds": SEEDS, "device": "cpu"},
        },
        "hmm": {"states": [1, 2], "restarts": 1, "n_iter": 5, "covariance": "diag",
                "val_fraction": 0.67},
    }  # fmt: skip
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_workflow(tmp_path, configfile)
    results = tmp_path / "results" / "llama"
    trajectories = pd.read_parquet(results / "trajectories.parquet")
    assert not trajectories["diverged"].any() and trajectories["var_b"].isna().all()
    for (seed, step), want in expected.items():
        row = trajectories[(trajectories["seed"] == seed) & (trajectories["step"] == step)]
        assert not out_of_tolerance(row[METRIC_COLUMNS].iloc[0].to_dict(), want)
    weights = json.loads((results / "runs" / "seed2" / "weights.json").read_text())
    assert weights["family"] == "generic" and weights["bias_free"]
    training_map = json.loads((results / "map.json").read_text())
    assert training_map["n_runs"] == 3 and training_map["states"]
    assert "bias-free" in (tmp_path / "results" / "summary.md").read_text()


def test_a_model_with_no_matrix_for_the_rule_is_refused_not_an_all_nan_run(tmp_path):
    """An architecture whose tensors hold no Linear (embeddings only): refused at
    validation naming the file, never a series of NaN metrics dropped as diverged."""
    import transformers

    config = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, vocab_size=64,
                                      num_hidden_layers=0, num_attention_heads=4)  # fmt: skip
    for seed in (0, 1):
        transformers.LlamaModel(config).save_pretrained(tmp_path / f"seed{seed}" / "step0")
    with pytest.raises(ConfigError, match=rf"{tmp_path}/seed0/step0: rule 'generic' finds no"):
        validated(setting(tmp_path))


def test_trainmap_check_reports_a_bad_checkpoint_at_its_line(llama_series, tmp_path, capsys):
    from trainmap.config.check import main

    root, _ = llama_series
    config = setting(root, matrices=["*.nothing"])
    config["settings"]["llama"]["hmm"] = {"selection": "kfold", "folds": 2}
    file = tmp_path / "cfg.yaml"
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main([str(file)]) == 1
    out = capsys.readouterr()
    assert f"cfg.yaml:4: settings.llama.checkpoints: {root}/seed0/step0: matrices:" in (
        out.out + out.err
    )
