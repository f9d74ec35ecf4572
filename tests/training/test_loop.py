"""The training loop: determinism per seed, checkpoint schedule, divergence."""

import numpy as np
import pandas as pd
import pytest
import torch

from trainmap.errors import ConfigError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training.choose import train_group
from trainmap.training.common import resolve_device
from trainmap.training.loop import train

# The tasks without data sets; tests/tasks/test_tasks.py covers mnist_mlp, cifar100_resnet18
# and masked_lm.
TINY = {
    "sparse_parity": {"n_bits": 8, "n_train": 64, "n_eval": 32, "hidden": 16, "epochs": 4},
    "modular_addition": {
        "p": 7,
        "train_fraction": 0.5,
        "d_model": 16,
        "n_heads": 2,
        "d_head": 8,
        "d_mlp": 32,
        "batch_size": 8,
        "epochs": 4,
    },
}


def run(task_name: str, seed: int, **overrides) -> tuple[pd.DataFrame, dict]:
    task = get_task(task_name)
    params = parse_params(task.params, {**TINY[task_name], "eval_every": 1, **overrides}, "t")
    return train(task, params, seed)


@pytest.mark.parametrize("task_name", sorted(TINY))
def test_same_seed_gives_identical_metrics(task_name):
    first, weights = run(task_name, seed=3)
    second, weights_again = run(task_name, seed=3)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    for key in weights:
        assert torch.equal(weights[key], weights_again[key])


def test_a_group_trains_each_seed_as_alone(caplog):
    """One job's seeds, one after another: each table equals the seed trained alone, and
    the log says how far the job is."""
    task = get_task("modular_addition")
    params = parse_params(task.params, {**TINY["modular_addition"], "eval_every": 1}, "t")
    caplog.set_level("INFO", logger="trainmap.training.loop")
    runs = list(train_group(task, params, [4, 1], vectorize="false"))
    assert [seed for seed, _, _ in runs] == [4, 1]
    for seed, table, weights in runs:
        alone, alone_weights = run("modular_addition", seed=seed)
        pd.testing.assert_frame_equal(table, alone, check_exact=True)
        assert all(torch.equal(weights[k], alone_weights[k]) for k in weights)
    assert "run 2 of 2 in this job: seed 1" in caplog.text
    assert "2 of 2 runs done" in caplog.text


@pytest.mark.parametrize("task_name", sorted(TINY))
def test_different_seeds_differ(task_name):
    first, _ = run(task_name, seed=0)
    second, _ = run(task_name, seed=1)
    assert not np.allclose(first["l2"], second["l2"])
    assert first.loc[0, "l2"] != second.loc[0, "l2"]  # the init differs, not only the data


@pytest.mark.parametrize("task_name", sorted(TINY))
def test_checkpoints_cover_init_and_last_step(task_name):
    table, _ = run(task_name, seed=0, epochs=5, eval_every=2)
    assert table["epoch"].tolist() == [0, 2, 4, 5]
    assert table["step"].iloc[0] == 0
    assert table["step"].is_monotonic_increasing
    assert set(METRIC_COLUMNS) <= set(table.columns)
    assert np.isfinite(table[METRIC_COLUMNS[:-3]].to_numpy()).all()
    assert not table["diverged"].any()


def test_step_unit_checkpoints():
    table, _ = run("sparse_parity", seed=0, epochs=2, eval_every=3, eval_unit="step")
    # 64 examples in batches of 32: 2 steps an epoch, 4 in all; the last step always counts.
    assert table["step"].tolist() == [0, 3, 4]
    assert table["epoch"].tolist() == [0, 1, 2]


def test_final_weights_are_the_last_checkpoint():
    table, weights = run("sparse_parity", seed=2)
    model = get_task("sparse_parity").make_model(
        parse_params(get_task("sparse_parity").params, TINY["sparse_parity"], "t")
    )
    model.load_state_dict(weights)
    from trainmap.metrics.weights import compute_metrics

    last = compute_metrics(model.weight_groups())
    assert last["l2"] == pytest.approx(table["l2"].iloc[-1], rel=1e-12)


def test_divergence_keeps_rows_and_marks_the_run():
    table, _ = run("modular_addition", seed=0, lr=1e12, epochs=50)
    assert table["diverged"].all()
    assert len(table) >= 2  # rows up to the divergence are kept
    assert not np.isfinite(table["train_loss"].iloc[-1])
    assert table["epoch"].iloc[-1] < 50  # training stopped at the non-finite checkpoint


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 0}, "epochs: 0 is out of range; allowed: >= 1"),
        ({"epochs": 2.5}, "epochs: expected int, got 2.5"),
        ({"lrr": 0.1}, "lrr: unknown key"),
        ({"optimizer": "adam"}, "optimizer: 'adam' is not one of adamw, sgd"),
        ({"betas": [0.9]}, "betas: expected"),
        ({"layer_norm": 1}, "layer_norm: expected bool, got 1"),
    ],
)
def test_bad_hyperparameters_name_key_and_value(values, message):
    with pytest.raises(ConfigError, match="settings.m." + message.replace(".", r"\.")[:40]):
        parse_params(get_task("modular_addition").params, values, "settings.m")


def test_unknown_task_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown task 'grok'.*modular_addition"):
        get_task("grok", where="settings.x.task")


def test_last_position_transformer_matches_full_causal_computation():
    """The model computes only the last position's stream; a full causal pass agrees."""
    from torch import nn

    from trainmap.tasks.modular_addition.model import OneLayerTransformer
    from trainmap.training.common import generator

    model = OneLayerTransformer(14, 13, 3, 16, 2, 8, 32, layer_norm=True)
    model.reset_parameters(generator("init", 0))
    tokens = torch.randint(0, 14, (9, 3), generator=generator("data", 0))
    attn = model.attn
    with torch.no_grad():
        x = model.embed(tokens) + model.pos_embed
        h = model.ln1(x)

        def heads(proj):
            return proj(h).view(9, 3, attn.n_heads, attn.d_head).transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(
            heads(attn.W_Q), heads(attn.W_K), heads(attn.W_V), is_causal=True
        )
        x = x + attn.W_O(out.transpose(1, 2).reshape(9, 3, -1))
        x = x + model.W_out(torch.relu(model.W_in(model.ln2(x))))
        expected = model.unembed(x[:, -1])
        torch.testing.assert_close(model(tokens), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_falls_back_to_cpu_only_when_asked():
    """`auto` trains on the CPU without a GPU; an explicit `cuda` stops with a clear error."""
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="device 'cuda' requested but torch sees no CUDA"):
        resolve_device("cuda")
