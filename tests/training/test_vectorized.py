"""Seed-parallel training: a vectorised group gives each seed's loop results, bit for bit."""

import dataclasses

import pytest
import torch
from conftest import REPO

from trainmap.errors import ConfigError
from trainmap.io.files import write_parquet
from trainmap.metrics.weights import WeightGroups, compute_metrics, compute_metrics_stacked
from trainmap.seeding import derive_seed
from trainmap.seedops import REFERENCE, SeedKernels
from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training import vectorized
from trainmap.training.choose import should_vectorize, train_group
from trainmap.training.loop import save_weights, train
from trainmap.training.seed_group import init_group
from trainmap.training.vectorized import train_steps, train_vectorized

MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"

TINY_MODULAR = {
    **{"p": 11, "train_fraction": 0.5, "batch_size": 16},
    **{"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
}
# Small but real shapes: every matmul of the parity MLP (incl. its matrix-vector output
# layer and a short last batch) and of the transformer (3-D inputs, strided last position).
SETTINGS = {
    "parity_sgd": ("sparse_parity", {"n_bits": 12, "hidden": 24, "n_train": 80, "n_eval": 40}),
    # tests/configs/tiny.yaml's parity: its first layer takes the transposed product, whose
    # output layout the output layer's matmul is sensitive to.
    "parity_tiny": ("sparse_parity", {"n_bits": 10, "hidden": 32, "n_train": 200, "n_eval": 100}),
    "parity_momentum": (
        "sparse_parity",
        {"n_bits": 12, "hidden": 24, "n_train": 70, "n_eval": 40, "momentum": 0.9},
    ),
    # The MNIST MLP: one data set shared by the seeds, train-probe and eval subsets, eval
    # chunks with a short last one, checkpoints mid-epoch, 2 hidden layers, AdamW.
    "mnist_mlp": (
        "mnist_mlp",
        {
            "data_root": str(MNIST_DIR),
            "train_from_test": 150,
            "n_eval": 70,
            "n_train_eval": 50,
            "eval_batch_size": 32,
            "hidden": [12, 8],
            "batch_size": 64,
            "eval_unit": "step",
        },
    ),
    "modular_adamw": ("modular_addition", TINY_MODULAR),
    "modular_layer_norm": (
        "modular_addition",
        {**TINY_MODULAR, "layer_norm": True},
    ),
}


def params_of(name: str, **overrides):
    task_name, values = SETTINGS[name]
    task = get_task(task_name)
    return task, parse_params(
        task.params, {**values, "epochs": 3, "eval_every": 1, **overrides}, "t"
    )


def files_of(tmp_path, tag: str, seed: int, table, weights) -> tuple[bytes, bytes]:
    """The bytes of metrics.parquet and model.safetensors as train_run writes them."""
    folder = tmp_path / tag / f"seed{seed}"
    table = table.copy()
    table.insert(0, "setting", "s")
    table.insert(1, "seed", seed)
    write_parquet(table, folder / "metrics.parquet")
    save_weights(weights, folder / "model.safetensors")
    return (folder / "metrics.parquet").read_bytes(), (folder / "model.safetensors").read_bytes()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_vectorised_group_writes_the_loops_files_byte_for_byte(name, tmp_path):
    task, p = params_of(name)
    seeds = [3, 0, 5]
    for seed, table, weights in train_vectorized(task, p, seeds):
        alone = train(task, p, seed)
        assert files_of(tmp_path, "group", seed, table, weights) == files_of(
            tmp_path, "alone", seed, *alone
        ), f"{name}: seed {seed} differs from the seed trained alone"


def blow_up_seed(task, seed: int, scale: float = 1e38):
    """``task`` with seed ``seed``'s training inputs scaled by ``scale`` (by default to
    overflow at the first step)."""
    marker = derive_seed("data", seed)

    def make_data(params, gen):
        data = task.make_data(params, gen)
        if gen.initial_seed() == marker:
            data = dataclasses.replace(data, train_x=data.train_x * scale)
        return data

    return dataclasses.replace(task, make_data=make_data)


def test_a_group_of_two_mnist_seeds_with_adamw_is_exact(tmp_path):
    """A 10-element output bias stacked over 2 seeds: fused AdamW's moments round unlike
    one seed's (seen only from the 9th step on, in the moments first), so the optimizer
    form is checked on the group's own shapes and on the optimizer's state too."""
    task, p = params_of("mnist_mlp", hidden=[64], train_from_test=8000, epochs=1, eval_every=16)
    for seed, table, weights in train_vectorized(task, p, [0, 1]):
        assert files_of(tmp_path, "g", seed, table, weights) == files_of(
            tmp_path, "a", seed, *train(task, p, seed)
        ), f"seed {seed}"


def test_one_diverging_seed_stops_alone(tmp_path):
    """Seed 1's inputs are scaled to overflow: it stops with its rows kept and marked
    diverged; seeds 0 and 2 train to the end, each equal to its run alone."""
    task, p = params_of("parity_sgd", epochs=4)
    bad_task = blow_up_seed(task, 1)
    runs = {seed: (table, w) for seed, table, w in train_vectorized(bad_task, p, [0, 1, 2])}
    assert runs[1][0]["diverged"].all() and len(runs[1][0]) < 5
    assert not runs[0][0]["diverged"].any() and runs[0][0]["epoch"].iloc[-1] == 4
    for seed, (table, weights) in runs.items():
        alone = train(bad_task, p, seed)
        assert files_of(tmp_path, "g", seed, table, weights) == files_of(
            tmp_path, "a", seed, *alone
        )


@pytest.mark.parametrize("forms", [("stacked", "per seed"), ("per seed", "stacked")])
def test_a_seed_leaving_carries_the_optimizer_state_across_forms(forms, monkeypatch, tmp_path):
    """The form is checked again when a diverged seed leaves (S changes); SGD with
    momentum is exact in both, so forcing a switch tests that the momentum buffers move
    to the new layout: the kept seeds still equal their runs alone."""
    from trainmap.training import seed_group

    picks = iter(forms)
    monkeypatch.setattr(seed_group, "optimizer_form", lambda p, params: next(picks, forms[1]))
    task, p = params_of("parity_momentum", epochs=4)
    bad_task = blow_up_seed(task, 1, scale=1e15)  # finite at first, then overflows
    runs = {seed: (t, w) for seed, t, w in train_vectorized(bad_task, p, [0, 1, 2])}
    assert runs[1][0]["diverged"].all() and not runs[0][0]["diverged"].any()
    assert 1 < len(runs[1][0]) < 5  # left after some steps: momentum buffers to move
    for seed in (0, 2):
        assert files_of(tmp_path, "g", seed, *runs[seed]) == files_of(
            tmp_path, "a", seed, *train(bad_task, p, seed)
        )


@pytest.mark.parametrize("name", ["modular_adamw", "parity_momentum", "classes"])
def test_a_saved_group_resumes_where_it_stopped(name, tmp_path):
    """state_dict after 2 of 4 epochs -> torch.save/load (weights_only) -> a fresh group
    trains on: the same files as a group never interrupted; for the float-input tasks
    (SGD momentum, AdamW over per-seed views) with a seed that had diverged and left the
    stacks before the save."""
    if name == "classes":
        task, p = classes_task()
        p = dataclasses.replace(p, epochs=4)
    else:
        task, p = params_of(name, epochs=4)
    seeds = [2, 7, 5]
    if name != "modular_adamw":  # token inputs cannot be scaled to overflow
        task = blow_up_seed(task, 7)
    straight = {seed: (t, w) for seed, t, w in train_vectorized(task, p, seeds)}
    assert straight[7][0]["diverged"].all() == (name != "modular_adamw")

    device = torch.device("cpu")
    data, state = init_group(task, p, seeds, device)
    kernels = SeedKernels()
    progress = vectorized.GroupProgress(seeds, 100)
    data = vectorized.checkpoint_and_drop(task, data, state, kernels, lambda state: None)
    train_steps(task, dataclasses.replace(p, epochs=2), data, state, kernels, progress)
    assert state.epoch == 2 and state.seeds == ([2, 7, 5] if name == "modular_adamw" else [2, 5])
    torch.save(state.state_dict(), tmp_path / "group.pt")

    saved = torch.load(tmp_path / "group.pt", weights_only=True)
    for seed, table, weights in train_vectorized(task, p, seeds, saved=saved):
        assert files_of(tmp_path, "r", seed, table, weights) == files_of(
            tmp_path, "s", seed, *straight[seed]
        ), f"seed {seed}"


def test_group_state_holds_every_seeds_generator_and_counters():
    task, p = params_of("parity_sgd")
    _, state = init_group(task, p, [4, 9], torch.device("cpu"))
    saved = state.state_dict()
    assert saved["seeds"] == [4, 9]
    assert set(saved["params"]) == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    }
    assert saved["params"]["layers.0.weight"].shape == (2, 24, 12)
    assert len(saved["order_gens"]) == 2 and saved["order_gens"][0].dtype == torch.uint8
    assert {"optimizer", "epoch", "step", "position", "orders", "rows", "finished"} <= set(saved)
    # Each seed's module views its slice of the stacked parameters.
    with torch.no_grad():
        state.params["layers.0.bias"][1].fill_(7.0)
    assert torch.equal(state.models[1].layers[0].bias, torch.full((24,), 7.0))


def test_stacked_metrics_equal_per_model_metrics():
    gen = torch.Generator().manual_seed(0)

    def groups() -> WeightGroups:
        heads = [torch.randn(8, 16, generator=gen) for _ in range(6)]
        matrices = [
            *heads,
            torch.randn(16, 16, generator=gen),
            torch.randn(32, 16, generator=gen),
            torch.randn(16, 32, generator=gen),
            torch.randn(1, 16, generator=gen),
        ]
        kernels = [torch.randn(4, 3, 3, 3, generator=gen)]
        biases = [torch.randn(32, generator=gen), torch.zeros(16)]
        return WeightGroups(matrices, kernels, matrices, biases)

    seeds = [groups() for _ in range(4)]
    expected = [compute_metrics(g) for g in seeds]
    assert compute_metrics_stacked(seeds) == expected
    # a stacked group's seeds are views into one (S, ...) parameter: the same values there
    stacked = [torch.stack(ts) for ts in zip(*(g.matrices for g in seeds), strict=True)]
    views = [WeightGroups([m[s] for m in stacked], g.kernels, [m[s] for m in stacked], g.biases)
             for s, g in enumerate(seeds)]  # fmt: skip
    assert compute_metrics_stacked(views) == expected


def test_a_group_that_cannot_fit_names_seeds_per_job(monkeypatch):
    task, p = params_of("parity_sgd")
    monkeypatch.setattr(vectorized, "available_bytes", lambda device: 1000)
    with pytest.raises(MemoryError, match=r"group of 3 seeds needs ~.* GiB.*lower seeds_per_job"):
        next(train_vectorized(task, p, [0, 1, 2]))


def test_vectorize_setting_chooses_the_path(caplog):
    task, p = params_of("parity_sgd")
    assert should_vectorize(task, p, [0, 1], "auto")
    assert not should_vectorize(task, p, [0], "auto")  # nothing to stack
    assert not should_vectorize(task, p, [0, 1], "false")
    plain = dataclasses.replace(task, make_model=lambda params: torch.nn.Linear(2, 1))
    assert not should_vectorize(plain, p, [0, 1], "auto")
    with pytest.raises(ConfigError, match="vectorize: true, but task 'sparse_parity'"):
        should_vectorize(plain, p, [0, 1], "true")
    caplog.set_level("INFO")
    list(train_group(task, p, [0, 1], "true"))
    assert "vectorised on cpu" in caplog.text


@pytest.mark.parametrize("task_name", ["cifar100_resnet18", "masked_lm"])
def test_tasks_with_a_batch_hook_train_one_after_another(task_name):
    """Augmentation and masking draw per seed inside the loop's step: never stacked."""
    task = get_task(task_name)
    p = task.params()
    assert not should_vectorize(task, p, [0, 1], "auto")
    with pytest.raises(ConfigError, match=rf"vectorize: true, but task '{task_name}'"):
        should_vectorize(task, p, [0, 1], "true")


def test_auto_stacks_small_mlps_on_a_cpu_only():
    """Measured (BENCHMARKS.md): a small MLP gains stacked on a CPU, the MNIST MLP's
    784-800-10 loses (its matmuls already run at speed seed by seed)."""
    task, p = params_of("mnist_mlp")  # 784-12-8-10
    assert should_vectorize(task, p, [0, 1], "auto")
    paper = dataclasses.replace(p, hidden=(800,), device="cpu")
    assert not should_vectorize(task, paper, [0, 1], "auto")
    assert should_vectorize(task, paper, [0, 1], "true")


def test_a_kernel_that_rounds_differently_is_not_kept():
    """The check keeps the first bit-identical candidate, else the per-seed reference."""
    kernels = SeedKernels()
    exact = torch.arange(4.0)
    out = kernels.pick(
        ("op",), lambda: exact, [("off by one ulp", lambda: exact.nextafter(exact + 1))]
    )
    assert torch.equal(out, exact) and kernels.choices[("op",)] == REFERENCE
    kernels.pick(
        ("op2",), lambda: exact, [("bad", lambda: exact + 1), ("good", lambda: exact.clone())]
    )
    assert kernels.choices[("op2",)] == "good"
    assert kernels.report() == {f"op: {REFERENCE}": 1, "op2: good": 1}


def classes_task():
    """An MNIST-like task on tiny data: one data set for every seed (the data generator is
    ignored, as MNIST's), a 3-layer MLP with cross-entropy and no stacked loss (the vmap
    path): what any task built on ``MLP`` gets."""
    from trainmap.tasks.base import Splits, Task, argmax_accuracy
    from trainmap.tasks.mlp import MLP
    from trainmap.tasks.params import TrainingParams

    def make_data(params, gen):
        fixed = torch.Generator().manual_seed(123)
        x = torch.rand(150, 4, 5, generator=fixed)  # images: the model flattens them
        y = torch.randint(0, 6, (150,), generator=fixed)
        return Splits(x[:100], y[:100], x[100:], y[100:])

    def make_model(params):
        model = MLP([20, 16, 12, 6])
        model.layers.insert(0, torch.nn.Flatten())
        return model

    task = Task(
        name="classes",
        params=TrainingParams,
        make_data=make_data,
        make_model=make_model,
        loss=torch.nn.functional.cross_entropy,
        accuracy=argmax_accuracy,
    )
    return task, TrainingParams(lr=0.01, batch_size=16, epochs=3, weight_decay=0.1)


def test_any_mlp_task_is_vectorised_exactly(tmp_path):
    task, p = classes_task()
    for seed, table, weights in train_vectorized(task, p, [1, 4]):
        assert files_of(tmp_path, "g", seed, table, weights) == files_of(
            tmp_path, "a", seed, *train(task, p, seed)
        )


def test_the_vectorize_key_is_validated():
    from trainmap.config.settings import validate_config

    def setting(**extra):
        entry = {"source": "train", "task": "sparse_parity", "seeds": 2, **extra}
        entry["convergence"] = {"column": "eval_accuracy", "threshold": 0.9}
        return {"settings": {"s": entry}}

    assert validate_config(setting())["s"].vectorize == "auto"
    assert validate_config(setting(vectorize=True))["s"].vectorize == "true"
    assert validate_config(setting(vectorize=False))["s"].vectorize == "false"
    with pytest.raises(ConfigError, match="settings.s.vectorize"):
        validate_config(setting(vectorize="sometimes"))
