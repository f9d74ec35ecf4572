"""Function space, training side (trainmap.training.probe): a fixed probe set per setting,
per-example losses at every checkpoint, the same bits vectorised and one by one."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_resume import KillAfterSaves, Killed, KillGroupAfterSaves, params
from test_vectorized import files_of, params_of

from trainmap.errors import ConfigError
from trainmap.io.columns import probe_columns
from trainmap.training.loop import train
from trainmap.training.probe import PROBE_KEY, draw_probe, probe_table
from trainmap.training.resume import GroupResume, SeedResume
from trainmap.training.vectorized import train_vectorized

OPTIONS = {"n": 16, "split": "eval", "seed": 0}


@pytest.mark.parametrize("name", ["parity_tiny", "modular_adamw"])
def test_vectorised_probe_losses_equal_one_by_one_bit_for_bit(name, tmp_path):
    task, p = params_of(name)
    probe = draw_probe(task, p, OPTIONS)
    seeds = [3, 0]
    for seed, table, weights in train_vectorized(task, p, seeds, probe=probe):
        alone, alone_weights = train(task, p, seed, probe=probe)
        group_losses = np.stack(table.pop(PROBE_KEY).tolist())
        alone_losses = np.stack(alone.pop(PROBE_KEY).tolist())
        assert group_losses.shape == (len(table), 16)
        assert np.array_equal(group_losses, alone_losses), f"{name}: seed {seed}"
        assert np.isfinite(group_losses).all()
        # the probe changes nothing else: the same files as a run without it
        plain = train(task, p, seed)
        assert files_of(tmp_path, "probe", seed, table, weights) == files_of(
            tmp_path, "plain", seed, *plain
        )


@pytest.mark.parametrize("name", ["parity_tiny", "modular_adamw"])
def test_probe_losses_average_to_the_tasks_loss_on_the_probe_set(name):
    """The last checkpoint's losses are the final model's: their mean is the task's mean
    loss over the probe examples, and each one is that loss on the example alone."""
    task, p = params_of(name)
    probe = draw_probe(task, p, OPTIONS)
    table, weights = train(task, p, 1, probe=probe)
    losses = torch.from_numpy(table[PROBE_KEY].iloc[-1])
    model = task.make_model(p)
    model.load_state_dict(weights)
    model.eval()
    with torch.no_grad():
        out = model(probe.x)
        assert float(losses.mean()) == pytest.approx(float(task.loss(out, probe.y)), rel=1e-5)
        assert float(losses[5]) == pytest.approx(float(task.loss(out[5:6], probe.y[5:6])), rel=1e-5)
    assert not np.array_equal(table[PROBE_KEY].iloc[0], table[PROBE_KEY].iloc[-1])


def test_the_probe_set_is_fixed_and_the_same_for_every_seed():
    task, p = params_of("parity_tiny")
    a, b = draw_probe(task, p, OPTIONS), draw_probe(task, p, OPTIONS)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    other = draw_probe(task, p, {**OPTIONS, "seed": 1})
    assert not torch.equal(a.x, other.x)
    train_split = draw_probe(task, p, {**OPTIONS, "split": "train"})
    assert len(train_split) == 16 and not torch.equal(a.x, train_split.x)


def test_a_probe_larger_than_its_split_is_refused():
    task, p = params_of("parity_tiny")  # n_eval 100
    with pytest.raises(ConfigError, match=r"settings.x.probe.n: 500 .* eval split has 100"):
        draw_probe(task, p, {**OPTIONS, "n": 500}, "settings.x.probe")


def test_probe_table_is_wide_with_padded_columns():
    losses = pd.Series([np.full(12, 0.5, np.float32), np.full(12, 0.25, np.float32)])
    table = probe_table(losses, pd.Series([0, 10]), "s", 4)
    assert list(table.columns[:3]) == ["setting", "seed", "step"]
    assert list(table.columns[3:]) == probe_columns(12) == [f"probe_{i:02d}" for i in range(12)]
    assert table["step"].tolist() == [0, 10] and (table["seed"] == 4).all()
    assert table["probe_11"].dtype == np.float32


def probe_matrix(table: pd.DataFrame) -> np.ndarray:
    return np.stack(table[PROBE_KEY].tolist())


def test_a_killed_run_resumes_with_its_earlier_probe_losses(tmp_path):
    """The probe losses travel in the resumable rows: a run killed after its 2nd save and
    resumed has every checkpoint's losses, equal to an uninterrupted run's."""
    task, p = params("sparse_parity")
    probe = draw_probe(task, p, OPTIONS)
    expected, _ = train(task, p, 5, probe=probe)
    with pytest.raises(Killed):
        train(task, p, 5, KillAfterSaves(tmp_path, 5, "fp", 0.0, n=2), probe=probe)
    table, _ = train(task, p, 5, SeedResume(tmp_path, 5, "fp", 0.0), probe=probe)
    assert np.array_equal(probe_matrix(table), probe_matrix(expected))
    assert len(table) == len(expected) > 3


def test_a_killed_vectorised_group_resumes_with_its_probe_losses(tmp_path):
    task, p = params("sparse_parity")
    probe = draw_probe(task, p, OPTIONS)
    seeds = [4, 1]
    straight = {seed: t for seed, t, _ in train_vectorized(task, p, seeds, probe=probe)}
    killer = KillGroupAfterSaves(tmp_path, seeds, "fp", 0.0, n=2)
    with pytest.raises(Killed):
        list(train_vectorized(task, p, seeds, resume=killer, probe=probe))
    resumed = GroupResume(tmp_path, seeds, "fp", 0.0)
    for seed, table, _ in train_vectorized(task, p, seeds, resume=resumed, probe=probe):
        assert np.array_equal(probe_matrix(table), probe_matrix(straight[seed]))
