"""trainmap.record.Recorder: the same metrics as the workflow's, training untouched, rows
that survive restarts and kills, and every bad selection refused when it is made."""

import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from trainmap.errors import RecordError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.weights import compute_metrics
from trainmap.record import Recorder
from trainmap.record.selection import select_weights
from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training.loop import evaluate, init_run, train

PARITY = {
    "n_bits": 8,
    "n_train": 64,
    "n_eval": 32,
    "hidden": 16,
    "epochs": 3,
    "batch_size": 16,
    "eval_unit": "step",
    "eval_every": 1,
    "device": "cpu",
}


def user_loop(seed: int, recorder_dir=None, family="auto"):
    """Sparse parity trained as a user's own loop would (the steps of trainmap.training.loop),
    with a Recorder logging at every step when ``recorder_dir`` is given."""
    task = get_task("sparse_parity")
    p = parse_params(task.params, PARITY, "test")
    data, state = init_run(task, p, seed, torch.device("cpu"))
    model, optimizer = state.model, state.optimizer
    rec = None
    if recorder_dir is not None:
        rec = Recorder(recorder_dir, seed=seed, model=model, family=family, flush_every=0)

    def log(step, epoch):
        if rec is not None:
            eval_loss, eval_acc = evaluate(task, model, data.eval_x, data.eval_y)
            rec.log(step, epoch=epoch, eval_loss=eval_loss, eval_accuracy=eval_acc)

    step = 0
    log(step, 0)
    for epoch in range(1, p.epochs + 1):
        order = torch.randperm(len(data.train_x), generator=state.order_gen)
        for start in range(0, len(order), p.batch_size):
            idx = order[start : start + p.batch_size]
            loss = task.loss(model(data.train_x[idx]), data.train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            log(step, epoch)
    if rec is not None:
        rec.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_recorded_metrics_equal_the_workflows_own(tmp_path):
    """A built-in run re-recorded step by step through the Recorder: the rows the
    workflow's training writes, metric for metric, and the same final weights."""
    task = get_task("sparse_parity")
    table, weights = train(task, parse_params(task.params, PARITY, "test"), seed=5)
    final = user_loop(5, tmp_path / "task")
    recorded = pd.read_parquet(tmp_path / "task" / "seed5" / "metrics.parquet")
    assert list(recorded["step"]) == list(table["step"])
    assert (recorded["seed"] == 5).all() and not recorded["diverged"].any()
    np.testing.assert_allclose(recorded[METRIC_COLUMNS], table[METRIC_COLUMNS], rtol=1e-12)
    np.testing.assert_allclose(recorded["eval_accuracy"], table["eval_accuracy"], rtol=1e-6)
    for name, tensor in weights.items():
        assert torch.equal(final[name], tensor), name
    # The generic rule reads an MLP as its own weight_groups() does.
    user_loop(5, tmp_path / "generic", family="generic")
    generic = pd.read_parquet(tmp_path / "generic" / "seed5" / "metrics.parquet")
    np.testing.assert_allclose(generic[METRIC_COLUMNS], table[METRIC_COLUMNS], rtol=1e-12)


def test_training_is_bit_identical_with_and_without_the_recorder(tmp_path):
    """Dropout draws from torch's global generator: the Recorder must not draw from it,
    nor change weights, gradients or the optimizer."""

    def run(record: bool):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        rec = Recorder(tmp_path, seed=0, model=model, flush_every=0) if record else None
        for step in range(20):
            x = torch.randn(8, 6)
            loss = model(x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            if rec is not None:  # between backward and step: gradients exist
                rec.log(step, train_loss=loss)
            optimizer.step()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        return state, optimizer.state_dict(), torch.get_rng_state()

    plain, recorded = run(False), run(True)
    for name in plain[0]:
        assert torch.equal(plain[0][name], recorded[0][name]), name
    for index, values in plain[1]["state"].items():
        for key, value in values.items():
            assert torch.equal(value, recorded[1]["state"][index][key])
    assert torch.equal(plain[2], recorded[2])
    assert len(pd.read_parquet(tmp_path / "seed0" / "metrics.parquet")) == 20


def small_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))


def test_restart_keeps_rows_before_the_first_new_step(tmp_path):
    model = small_model()
    path = tmp_path / "seed3" / "metrics.parquet"
    with Recorder(tmp_path, seed=3, model=model, flush_every=0) as rec:
        for step in range(0, 60, 10):
            rec.log(step, train_loss=1.0, epoch=step // 20)
    before = pd.read_parquet(path)
    # Opened again and closed without a log: the file is untouched.
    Recorder(tmp_path, seed=3, model=model).close()
    pd.testing.assert_frame_equal(pd.read_parquet(path), before)
    # Resumed from a checkpoint at step 30: rows 30, 40, 50 are redone, 0-20 kept.
    with torch.no_grad():
        model[1].weight.mul_(2.0)
    with Recorder(tmp_path, seed=3, model=model) as rec:
        for step in range(30, 80, 10):
            rec.log(step, train_loss=2.0, eval_accuracy=0.5)
    after = pd.read_parquet(path)
    assert list(after["step"]) == [0, 10, 20, 30, 40, 50, 60, 70]
    pd.testing.assert_frame_equal(
        after.iloc[:3][before.columns], before.iloc[:3], check_dtype=False
    )
    assert (after["train_loss"] == [1.0] * 3 + [2.0] * 5).all()
    assert after["eval_accuracy"].iloc[:3].isna().all()  # a scalar new since the restart
    assert (after["l1"].iloc[3:] > before["l1"].iloc[2]).all()
    with pytest.raises(RecordError, match="another seed"):
        path.rename(tmp_path / "seed3" / "x.parquet")
        (tmp_path / "seed4").mkdir()
        (tmp_path / "seed3" / "x.parquet").rename(tmp_path / "seed4" / "metrics.parquet")
        Recorder(tmp_path, seed=4, model=model)


KILLED = """
import os, signal, sys, torch
from torch import nn
from trainmap.record import Recorder
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
rec = Recorder(sys.argv[1], seed=1, model=model, flush_every=float(sys.argv[2]))
for step in range(5):
    rec.log(step, train_loss=0.5)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(("flush_every", "rows"), [(0, 5), (3600, 5)])
def test_a_killed_process_leaves_a_valid_file(tmp_path, flush_every, rows):
    """Rows up to the last write survive SIGKILL; in its first minute a Recorder writes at
    every log, whatever flush_every says (a job killed at 40 s keeps every row). The
    killed process's lock stays behind, stale, and the next Recorder takes it over."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(tmp_path), str(flush_every)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    table = pd.read_parquet(tmp_path / "seed1" / "metrics.parquet")
    assert list(table["step"]) == list(range(rows))
    assert sorted(p.name for p in (tmp_path / "seed1").iterdir()) == [
        "metrics.parquet",
        "recorder.lock",
        "weights.json",
    ]
    with Recorder(tmp_path, seed=1, model=small_model()) as rec:
        rec.log(rows)
    assert not (tmp_path / "seed1" / "recorder.lock").exists()


def test_rows_reach_disk_at_every_log_early_then_every_flush_every_seconds(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("trainmap.record.recorder.time.monotonic", lambda: clock[0])
    rec = Recorder(tmp_path, seed=0, model=small_model(), flush_every=60)
    path = tmp_path / "seed0" / "metrics.parquet"
    times = [100.0, 130.0, 159.0, 161.0, 200.0, 219.0, 220.0]
    expected = [1, 2, 3, 3, 3, 6, 6]  # every log up to 60 s, then 60 s after the last write
    for step, now in enumerate(times):
        clock[0] = now
        rec.log(step)
        assert len(pd.read_parquet(path)) == expected[step], (step, now)
    rec.close()
    assert len(pd.read_parquet(path)) == len(times)


def test_non_finite_loss_marks_the_row_and_the_rest_diverged(tmp_path, caplog):
    with (
        caplog.at_level("WARNING", "trainmap"),
        Recorder(tmp_path, seed=0, model=small_model()) as rec,
    ):
        rec.log(0, train_loss=1.0)
        rec.log(1, train_loss=float("inf"), eval_accuracy=float("nan"))
        rec.log(2, train_loss=1.0)
        rec.log(3, train_loss=float("nan"))
    table = pd.read_parquet(tmp_path / "seed0" / "metrics.parquet")
    assert list(table["diverged"]) == [False, True, True, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once, at the first non-finite loss
    assert warnings[0].endswith(
        "train_loss turned non-finite at step 1 after finite values: rows from step 1 are "
        "marked diverged (the HMM leaves this run out)"
    )


def test_scalars_of_every_numeric_kind(tmp_path):
    with Recorder(tmp_path, seed=0, model=small_model()) as rec:
        row = rec.log(
            np.int64(3), a=1, b=2.5, c=np.float32(0.25), d=torch.tensor(0.5), e=np.array(7)
        )
    assert {k: row[k] for k in "abcde"} == {"a": 1, "b": 2.5, "c": 0.25, "d": 0.5, "e": 7}
    table = pd.read_parquet(tmp_path / "seed0" / "metrics.parquet")
    assert list(table.columns) == ["seed", "step", *"abcde", *METRIC_COLUMNS, "diverged"]


@pytest.mark.parametrize(
    ("step", "scalars", "message"),
    [
        (1, {"loss": torch.ones(3)}, r"loss is a Tensor of shape \(3,\), not a scalar"),
        (1, {"note": "fine"}, "note='fine' \\(str\\) is not a number"),
        (1, {"done": True}, "boolean"),
        (1, {"l2": 1.0}, "'l2' is a column the Recorder writes itself"),
        (0, {}, "step 0 after step 0; steps must increase"),
        (1.5, {}, "step must be an integer"),
    ],
)
def test_bad_log_calls_are_refused_by_name(tmp_path, step, scalars, message):
    rec = Recorder(tmp_path, seed=0, model=small_model())
    rec.log(0)
    with pytest.raises(RecordError, match=message):
        rec.log(step, **scalars)
    rec.close()
    with pytest.raises(RecordError, match="after close"):
        rec.log(5)


class NoMatrix(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.norm = nn.LayerNorm(3)


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (small_model(), {"family": "mlp"}, "family='mlp' is unknown; known families: auto"),
        (small_model(), {"family": "task"}, "needs a model with weight_groups"),
        (small_model(), {"family": "bert"}, "family 'bert' does not fit Sequential"),
        (small_model(), {"matrices": ["3.*", "encoder.*"]}, "'encoder.*' matches no parameter"),
        (small_model(), {"matrices": ["2.*"]}, "'2.\\*' matches no matrix"),
        (small_model(), {"matrices": "1.weight"}, "takes a list of names or patterns"),
        (small_model(), {"biases": ["9.bias"]}, "biases=: '9.bias' matches no parameter"),
        (NoMatrix(), {}, "family 'generic' finds no weight matrix in NoMatrix"),
        (NoMatrix(), {"matrices": ["embed.weight"], "biases": ["norm.*"]}, None),
        (small_model(), {"seed": -1}, "seed must be >= 0"),
        (small_model(), {"seed": "3"}, "seed must be an integer"),
        (small_model(), {"flush_every": -1}, "flush_every must be a number"),
        ("model", {}, "model must be a torch.nn.Module, got str"),
    ],
)
def test_every_bad_selection_fails_when_the_recorder_is_made(tmp_path, model, options, message):
    options = {"seed": 0, **options}
    if message is None:  # the escape hatch: the user names what to read
        Recorder(tmp_path, model=model, **options).close()
        return
    with pytest.raises(RecordError, match=message) as error:
        Recorder(tmp_path, model=model, **options)
    if isinstance(model, nn.Module) and "family=" not in message and "seed" not in message:
        names = [name for name, _ in model.named_parameters()]
        if "matches" in message or "weight matrix" in message or "fit" in message:
            assert all(name in str(error.value) for name in names)
    assert not (tmp_path / "seed0").exists()


def test_generic_rule_of_method_section_2():
    """Linear, Conv1D-like, attention in-projection and conv kernels are read; embeddings,
    norms and a head tied to an embedding are not."""
    model = nn.ModuleDict(
        {
            "embed": nn.Embedding(10, 8),
            "attn": nn.MultiheadAttention(8, 2),
            "norm": nn.BatchNorm2d(3),
            "conv": nn.Conv2d(3, 4, 3),
            "pointwise": nn.Conv2d(4, 4, 1, bias=False),
            "fc": nn.Linear(8, 5),
            "head": nn.Linear(8, 10, bias=False),
        }
    )
    model["head"].weight = model["embed"].weight  # tied
    names = select_weights(model).names
    assert names["matrices"] == ["attn.in_proj_weight", "attn.out_proj.weight", "fc.weight"]
    assert names["kernels"] == ["conv.weight"]
    assert "pointwise.weight" in names["weights"] and "embed.weight" not in names["weights"]
    assert names["biases"] == ["attn.in_proj_bias", "attn.out_proj.bias", "conv.bias", "fc.bias"]
    groups = select_weights(model).groups(model)
    assert len(groups.matrices) == 5  # Q, K, V, out_proj, fc


def test_task_models_and_the_resnet_rule():
    """The CIFAR ResNet's own weight_groups and the generic rule give the same metrics:
    3x3 kernels per slice, 1x1 kernels pooled only, BatchNorm out, fc the one matrix."""
    pytest.importorskip("torchvision")  # the workflow's; not in a Recorder-only install
    task = get_task("cifar100_resnet18")
    model = task.make_model(task.params())
    own = compute_metrics(model.weight_groups())
    selection = select_weights(model, family="generic")
    generic = compute_metrics(selection.groups(model))
    assert select_weights(model).family == "task"
    assert generic.keys() == own.keys()
    for key in own:
        assert math.isclose(generic[key], own[key], rel_tol=1e-9), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_of_a_model_on_the_gpu_stay_there(tmp_path):
    """The model is read where it lives (no copy to the host) and gives the CPU's metrics."""
    model = small_model()
    cpu = compute_metrics(select_weights(model).groups(model))
    model.cuda()
    with Recorder(tmp_path, seed=0, model=model) as rec:
        row = rec.log(0)
    assert all(p.is_cuda for p in model.parameters())
    assert {k: row[k] for k in METRIC_COLUMNS} == pytest.approx(cpu, rel=1e-9)


@pytest.mark.parametrize("model_type", ["gpt2", "gpt_neox", "bert"])
def test_transformers_models_get_their_family_rule(model_type):
    """By config.model_type, the rules that source: checkpoints applies to the same weights."""
    transformers = pytest.importorskip("transformers")
    from trainmap.metrics.families import FAMILIES

    configs = {
        "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel,
                 {"n_embd": 16, "n_layer": 2, "n_head": 2, "vocab_size": 20, "n_positions": 8}),
        "gpt_neox": (transformers.GPTNeoXConfig, transformers.GPTNeoXForCausalLM,
                     {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 32, "vocab_size": 20}),
        "bert": (transformers.BertConfig, transformers.BertForMaskedLM,
                 {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 32, "vocab_size": 20}),
    }  # fmt: skip
    config_class, model_class, options = configs[model_type]
    torch.manual_seed(0)
    model = model_class(config_class(**options))
    selection = select_weights(model)
    assert selection.family == model_type
    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    expected = compute_metrics(FAMILIES[model_type](tensors, model.config.to_dict()))
    got = compute_metrics(selection.groups(model))
    assert got == pytest.approx(expected, rel=1e-12)
    assert not any("embed" in name or "wte" in name for name in selection.names["matrices"])


def test_a_damaged_or_foreign_file_in_the_way_is_named(tmp_path):
    path = tmp_path / "seed0" / "metrics.parquet"
    path.parent.mkdir()
    path.write_bytes(b"PAR1 cut short")
    with pytest.raises(RecordError, match=r"seed0/metrics\.parquet: unreadable Parquet"):
        Recorder(tmp_path, seed=0, model=small_model())
    pd.DataFrame({"seed": [0], "loss": [1.0]}).to_parquet(path)
    with pytest.raises(RecordError, match=r"metrics\.parquet: not a Recorder's file \(no 'step'"):
        Recorder(tmp_path, seed=0, model=small_model())


def test_probe_losses_go_beside_the_metrics_and_survive_a_restart(tmp_path):
    """log(..., probe_losses=...) writes seed, step, probe_0.. (the trained runs' columns);
    a resumed Recorder keeps the probe rows before its first step, as it keeps the rows."""
    model = small_model()
    probe = tmp_path / "seed1" / "probe_losses.parquet"
    with Recorder(tmp_path, seed=1, model=model, flush_every=0) as rec:
        for step in range(0, 50, 10):
            rec.log(step, train_loss=1.0, probe_losses=torch.full((12,), step / 10.0))
    table = pd.read_parquet(probe)
    assert list(table.columns) == ["seed", "step", *[f"probe_{i:02d}" for i in range(12)]]
    assert list(table["step"]) == [0, 10, 20, 30, 40]
    assert (table["probe_07"] == [0.0, 1.0, 2.0, 3.0, 4.0]).all()
    with Recorder(tmp_path, seed=1, model=model) as rec:  # resumed from step 20
        rec.log(20, train_loss=1.0, probe_losses=np.full(12, 9.0))
        rec.log(30, train_loss=1.0)  # no probe at this call: no probe row
        with pytest.raises(RecordError, match="has 3 values, earlier calls 12"):
            rec.log(40, probe_losses=[1.0, 2.0, 3.0])
    table = pd.read_parquet(probe)
    assert list(table["step"]) == [0, 10, 20]
    assert list(table["probe_00"]) == [0.0, 1.0, 9.0]
    assert list(pd.read_parquet(tmp_path / "seed1" / "metrics.parquet")["step"]) == [0, 10, 20, 30]


@pytest.mark.parametrize(
    ("losses", "message"),
    [
        (torch.zeros(3, 4), r"1-d vector .* shape \(3, 4\)"),
        ([1.0], r"2 or more"),
        (["a", "b"], "not a vector of numbers"),
    ],
)
def test_bad_probe_losses_are_refused(tmp_path, losses, message):
    with Recorder(tmp_path, seed=0, model=small_model()) as rec:
        with pytest.raises(RecordError, match=message):
            rec.log(0, probe_losses=losses)
