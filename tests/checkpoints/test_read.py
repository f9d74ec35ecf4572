"""source: checkpoints: reading series of checkpoints, their families and their metrics."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
)

from trainmap.checkpoints.read import (
    CheckpointError,
    family_rule,
    hub_snapshot,
    read_evals,
    read_weights,
    seed_table,
)
from trainmap.checkpoints.series import TRANSFORMER_FAMILIES, known_families
from trainmap.checkpoints.stream import checkpoint_metrics, series_metrics
from trainmap.checkpoints.validate import check_checkpoint_settings
from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.families import FAMILIES, bert_encoder_groups
from trainmap.metrics.fast import out_of_tolerance
from trainmap.metrics.weights import compute_metrics
from trainmap.tasks.hyperparameters import HYPERPARAMETERS
from trainmap.tasks.registry import get_task

SEEDS, STEPS = [0, 1, 2], [0, 10, 20, 30]
# The whole-workflow test needs >= 10 validation rows (trainmap.hmm.sequences.MIN_VAL_ROWS)
# from its one validation run: 12 checkpoints per seed.
DAG_STEPS = list(range(0, 120, 10))
CONTRACT_COLUMNS = ["setting", "seed", "step", "epoch", "train_loss", "eval_loss"]
CONTRACT_COLUMNS += ["train_accuracy", "eval_accuracy", *METRIC_COLUMNS, "diverged"]
CPU = torch.device("cpu")
# The sizes of a tiny transformer: BertConfig and GPTNeoXConfig name them alike.
TINY = dict(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=16,
)
BERT = BertConfig(**TINY)
PARITY = {"n_bits": 10, "hidden": 8}


def drift(model: torch.nn.Module, seed: int, step: int) -> None:
    """Move every parameter by seeded noise that grows with the step (a fake training)."""
    gen = torch.Generator().manual_seed(1000 * seed + step)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.01 * step)


def seeded_model(model_class, config, seed: int = 0) -> torch.nn.Module:
    """``model_class(config)`` initialised from ``seed``, the global generator left as it was."""
    with torch.random.fork_rng():  # transformers initialises from the global generator
        torch.manual_seed(seed)
        return model_class(config)


def write_bert_series(root, steps=STEPS) -> dict[tuple[int, int], dict]:
    """save_pretrained of a tiny BertForMaskedLM per (seed, step); in-process metrics."""
    expected = {}
    for seed in SEEDS:
        model = seeded_model(BertForMaskedLM, BERT, seed)
        previous = 0
        for step in steps:
            drift(model, seed, step - previous)
            previous = step
            model.save_pretrained(root / f"seed{seed}" / f"step{step}")
            expected[seed, step] = compute_metrics(bert_encoder_groups(model.state_dict()))
    return expected


def write_parity_series(root, steps=STEPS) -> dict[tuple[int, int], dict]:
    """safetensors of the sparse_parity task's model per (seed, step)."""
    task = get_task("sparse_parity")
    params = task.params(**PARITY)
    expected = {}
    for seed in SEEDS:
        model = task.make_model(params)
        model.reset_parameters(torch.Generator().manual_seed(seed))
        for step in steps:
            drift(model, seed, 1)
            root.mkdir(parents=True, exist_ok=True)
            save_file(model.state_dict(), root / f"s{seed}_t{step}.safetensors")
            expected[seed, step] = compute_metrics(model.weight_groups())
    return expected


@pytest.fixture(scope="module")
def bert_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    return root, write_bert_series(root)


@pytest.fixture(scope="module")
def parity_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    return root, write_parity_series(root)


def checkpoint_config(**setting) -> dict:
    return {"settings": {"series": {"source": "checkpoints", "seeds": SEEDS, **setting}}}


def assert_metrics_equal(table: pd.DataFrame, expected: dict, seed: int, steps=STEPS) -> None:
    want = pd.DataFrame([expected[seed, step] for step in steps])[METRIC_COLUMNS]
    got = table[METRIC_COLUMNS].reset_index(drop=True)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=0)


def test_bert_series_gives_the_in_process_metrics(bert_series):
    root, expected = bert_series
    config = checkpoint_config(checkpoints=f"{root}/seed{{seed}}/step{{step}}")
    setting = validate_config(config, predict_split=False)  # 3 runs: too few for the HMM
    series = setting["series"].series
    assert series.steps == {seed: STEPS for seed in SEEDS}  # found on disk
    assert series.model is None  # each checkpoint's config.json names it
    for seed in SEEDS:
        metrics, record = series_metrics(series.locations(seed), False, None, {}, CPU)
        assert record["family"] == "bert" and record["bias_free"] is False
        table = seed_table("series", seed, metrics, None)
        assert table["step"].tolist() == STEPS
        assert_metrics_equal(table, expected, seed)
        assert table[["train_loss", "eval_loss", "eval_accuracy"]].isna().all(axis=None)
        assert not table["diverged"].any()


def test_task_safetensors_series_gives_the_in_process_metrics(parity_series):
    root, expected = parity_series
    config = checkpoint_config(
        checkpoints=f"{root}/s{{seed}}_t{{step}}.safetensors", model="sparse_parity", **PARITY
    )
    setting = validate_config(config, predict_split=False)["series"]
    assert setting.params["hidden"] == 8
    for seed in SEEDS:
        locations = setting.series.locations(seed)
        metrics, _ = series_metrics(locations, False, "sparse_parity", setting.params, CPU)
        assert_metrics_equal(metrics, expected, seed)


def test_task_checkpoint_of_another_shape_names_the_path(parity_series):
    root, _ = parity_series
    path = root / "s0_t0.safetensors"
    params = {**get_task("sparse_parity").params(n_bits=10, hidden=9).__dict__}
    with pytest.raises(CheckpointError, match=rf"{path}: weights do not fit family"):
        series_metrics({0: str(path)}, False, "sparse_parity", params, CPU)


def test_evals_join_by_seed_and_step_and_carry_their_columns(tmp_path):
    metrics = pd.DataFrame({"step": STEPS, **{c: 1.0 for c in METRIC_COLUMNS}})
    evals = pd.DataFrame(
        {"seed": [1, 0, 0, 0], "step": [0, 20, 0, 10], "eval_loss": [9.0, 3.0, 5.0, 4.0]}
    )
    evals["mlm_accuracy"] = [0.9, 0.6, 0.1, 0.3]
    evals.to_csv(tmp_path / "evals.csv", index=False)
    table = seed_table("s", 0, metrics, read_evals(tmp_path / "evals.csv", 0))
    assert table["eval_loss"].tolist()[:3] == [5.0, 4.0, 3.0]
    assert np.isnan(table["eval_loss"].iloc[3])  # step 30 has no evals row
    assert table["mlm_accuracy"].tolist()[:3] == [0.1, 0.3, 0.6]
    assert list(table.columns[-2:]) == ["diverged", "mlm_accuracy"]


def test_non_finite_weights_mark_the_series_diverged():
    metrics = pd.DataFrame({"step": [0, 1], **{c: [1.0, 1.0] for c in METRIC_COLUMNS}})
    metrics.loc[1, "l2"] = np.nan
    assert seed_table("s", 0, metrics, None)["diverged"].all()


def test_unknown_family_is_refused_naming_it_and_the_known(bert_series):
    root, _ = bert_series
    config = checkpoint_config(checkpoints=f"{root}/seed{{seed}}/step{{step}}", model="llama")
    known = ", ".join(known_families())
    with pytest.raises(ConfigError, match=rf"settings\.series\.model: .*'llama'.*{known}"):
        validate_config(config)
    assert {"bert", "gpt2", "gpt_neox", "sparse_parity"} <= set(known_families())
    with pytest.raises(ConfigError, match=r"x/config\.json: model_type: .*'roberta'"):
        family_rule("roberta", "x/config.json: model_type")


def test_unknown_model_type_in_config_json_is_refused_naming_the_file(tmp_path):
    for seed in SEEDS:
        folder = tmp_path / f"s{seed}" / "t0"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"model_type": "no_such_model"}')
        save_file({"w": torch.zeros(2, 2)}, folder / "model.safetensors")
    config = checkpoint_config(checkpoints=f"{tmp_path}/s{{seed}}/t{{step}}")
    where = rf"checkpoints: {tmp_path}/s0/t0/config\.json: model_type 'no_such_model' is not"
    with pytest.raises(ConfigError, match=rf"{where} an architecture transformers .* knows"):
        check_checkpoint_settings(validate_config(config, predict_split=False))


def test_registry_agrees_with_the_config_names():
    assert set(FAMILIES) == set(TRANSFORMER_FAMILIES)
    assert set(known_families()) == {"auto", "generic", *TRANSFORMER_FAMILIES, *HYPERPARAMETERS}
    assert set(TRANSFORMER_FAMILIES) <= set(FAMILIES)


def test_missing_checkpoint_is_refused_naming_the_path(bert_series):
    root, _ = bert_series
    config = checkpoint_config(checkpoints=f"{root}/seed{{seed}}/step{{step}}", steps=[0, 15])
    missing = rf"checkpoints: checkpoint not found: {root}/seed0/step15"
    with pytest.raises(ConfigError, match=missing):
        validate_config(config)
    with pytest.raises(CheckpointError, match=rf"checkpoint not found: {root}/nothing"):
        read_weights(root / "nothing")


def test_unreadable_checkpoint_names_the_path(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=rf"{bad}: cannot read the checkpoint"):
        read_weights(tmp_path)
    pickle = tmp_path / "run.bin"  # a pickle of a non-tensor object: never unpickled
    torch.save({"weights": object()}, pickle)
    with pytest.raises(CheckpointError, match=rf"{pickle}: cannot read the checkpoint"):
        read_weights(pickle)


@pytest.mark.parametrize("cut", [0, 100])  # bytes kept of a saved pytorch_model.bin
def test_empty_or_cut_off_bin_names_the_file_on_both_paths(tmp_path, cut):
    file = tmp_path / "pytorch_model.bin"
    torch.save({"encoder.layer.0.output.dense.weight": torch.ones(4, 4)}, file)
    file.write_bytes(file.read_bytes()[:cut])

    def fast(path):
        return checkpoint_metrics(path, "bert", {}, torch.device("cpu"))

    for read in (read_weights, fast):
        with pytest.raises(CheckpointError, match=rf"{file}: cannot read the checkpoint: \S"):
            read(tmp_path)


def test_pytorch_bin_checkpoint_is_read_with_weights_only(tmp_path):
    tensors = {"a.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    assert torch.equal(read_weights(tmp_path)["a.weight"], tensors["a.weight"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hub": "a/b-{seed}-{step}"}, r"settings\.series\.steps: required with hub"),
        ({"hub": "a/{seed}", "steps": [1]}, r"settings\.series\.hub: .* must contain \{seed\}"),
        ({"hub": "a/{seed}{step}{run}", "steps": [1]}, r"unknown fields \['run'\]"),
        ({"steps": [1]}, r"settings\.series: give exactly one of hub .* got neither"),
        ({"hub": "a/{seed}{step}", "checkpoints": "x", "steps": [1]}, r"exactly one of hub"),
        ({"hub": "a/{seed}{step}", "steps": [1], "task": "x"}, r"task \(source 'train'\) does not"),
        ({"hub": "a/{seed}{step}", "steps": [1], "lr": 0.1}, r"settings\.series\.lr: unknown"),
        ({"hub": "a/{seed}{step}", "steps": [1], "device": "tpu"}, r"series\.device: 'tpu'"),
        (
            {"hub": "a/{seed}{step}", "steps": [1], "convergence": {"column": "a", "threshold": 1}},
            r"settings\.series: columns \['a'\] .* need an evals table",
        ),
        (
            {"hub": "a/{seed}{step}", "steps": [1], "evals": "nope.csv"},
            r"settings\.series\.evals: evals file not found: nope\.csv",
        ),
    ],
)
def test_bad_checkpoint_setting_names_the_key(setting, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(checkpoint_config(**setting))


def test_evals_without_the_convergence_column_names_file_and_column(tmp_path):
    evals = tmp_path / "evals.csv"
    pd.DataFrame({"seed": [0], "step": [0], "eval_loss": [1.0]}).to_csv(evals, index=False)
    config = checkpoint_config(
        hub="a/{seed}-{step}",
        steps=[0],
        evals=str(evals),
        convergence={"column": "mlm_accuracy", "threshold": 0.5},
    )
    with pytest.raises(ConfigError, match=rf"{evals} has no column 'mlm_accuracy'"):
        validate_config(config)


def test_checkpoint_keys_are_refused_for_other_sources():
    config = {
        "settings": {
            "p": {
                "source": "train",
                "task": "sparse_parity",
                "seeds": 2,
                "hub": "a/{seed}{step}",
                "convergence": {"column": "eval_accuracy", "threshold": 0.9},
            }
        }
    }
    message = r"settings\.p: hub \(source 'checkpoints'\) does not apply to source 'train'"
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_hub_offline_fails_with_a_clear_message(tmp_path):
    """No network in tests: an empty cache in offline mode says what to do."""
    code = (
        "from trainmap.checkpoints.read import hub_snapshot\n"
        "hub_snapshot('google/multiberts-seed_0-step_0k')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("trainmap.checkpoints.read.CheckpointError: google/multiberts-seed_0")
    assert "cannot get the checkpoint from the Hugging Face Hub" in message
    assert "HF_HUB_OFFLINE=1" in message and str(tmp_path / "hf") in message
    assert "hf download google/multiberts-seed_0-step_0k" in message
    assert callable(hub_snapshot)


def fake_hub_cache(cache, repo_id: str, revision: str, snapshot, commit: str) -> None:
    """The Hub cache layout huggingface_hub reads offline: refs/<revision> -> commit,
    snapshots/<commit>/<files> (what a download of the repository leaves)."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    shutil.copytree(snapshot, folder / "snapshots" / commit)


def test_hub_series_is_read_from_the_cache_offline(bert_series, tmp_path):
    """The hub path end to end without a network: repo@revision, cache, family, metrics."""
    root, expected = bert_series
    cache = tmp_path / "hub"
    for i, step in enumerate(STEPS):
        snapshot = root / f"seed0/step{step}"
        fake_hub_cache(cache, "org/bert-seed0", f"step{step}", snapshot, f"{i:040x}")
    code = (
        "import json, torch\n"
        "from trainmap.checkpoints.stream import series_metrics\n"
        f"locations = {{s: f'org/bert-seed0@step{{s}}' for s in {STEPS}}}\n"
        "table, _ = series_metrics(locations, True, None, {}, torch.device('cpu'))\n"
        "print(json.dumps(table.to_dict('records')))\n"  # repr floats: exact round trip
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.DataFrame(json.loads(result.stdout.strip().splitlines()[-1]))
    assert table["step"].tolist() == STEPS
    assert_metrics_equal(table, expected, 0)


def test_gpt2_groups_are_whole_q_k_v_attention_and_mlp_matrices():
    config = GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=40, n_positions=16)
    config.bos_token_id = config.eos_token_id = 0
    tensors = seeded_model(GPT2LMHeadModel, config).state_dict()
    groups = family_rule("gpt2")(tensors, config.to_dict())
    shapes = [tuple(m.shape) for m in groups.matrices]
    # per block: Q, K, V, attention c_proj (16, 16); c_fc (64, 16); MLP c_proj (16, 64)
    assert shapes == [(16, 16)] * 4 + [(64, 16), (16, 64)] + [(16, 16)] * 4 + [(64, 16), (16, 64)]
    c_attn = tensors["transformer.h.0.attn.c_attn.weight"]
    for i in range(3):  # Q, K, V: x @ W_conv1d[:, i-th third] = x @ matrix.T
        assert torch.equal(groups.matrices[i], c_attn[:, 16 * i : 16 * (i + 1)].T)
    assert [tuple(b.shape) for b in groups.biases] == [(64,), (16,), (64,), (16,)]
    assert torch.equal(groups.biases[0], tensors["transformer.h.0.mlp.c_fc.bias"])
    assert [tuple(w.shape) for w in groups.weights[:4]] == [(16, 48), (16, 16), (16, 64), (64, 16)]


def test_gpt_neox_groups_split_the_fused_projection_into_q_k_v():
    config = GPTNeoXConfig(**{**TINY, "num_attention_heads": 4, "intermediate_size": 64})
    tensors = seeded_model(GPTNeoXForCausalLM, config).state_dict()
    groups = family_rule("gpt_neox")(tensors, config.to_dict())
    shapes = [tuple(m.shape) for m in groups.matrices]
    assert shapes == ([(16, 16)] * 4 + [(64, 16), (16, 64)]) * 2
    # The model's own split: the projection viewed per head, then chunked into q, k, v.
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    fused = x @ tensors["gpt_neox.layers.0.attention.query_key_value.weight"].T  # (5, 48)
    q, k, v = fused.view(5, 4, 12).chunk(3, dim=-1)  # (5, heads, head_size) each
    for matrix, expected in zip(groups.matrices[:3], (q, k, v), strict=True):
        torch.testing.assert_close(x @ matrix.T, expected.reshape(5, 16))
    names = ["gpt_neox.layers.0.mlp.dense_h_to_4h.bias", "gpt_neox.layers.0.mlp.dense_4h_to_h.bias"]
    assert [b.data_ptr() for b in groups.biases[:2]] == [tensors[n].data_ptr() for n in names]
    with pytest.raises(ValueError, match="num_attention_heads"):
        family_rule("gpt_neox")(tensors, {})


def write_evals(path, steps=STEPS) -> None:
    """mlm_accuracy crosses 0.5 at step 10 (seed 0), step 20 (seed 1), never (seed 2)."""
    first = {0: 10, 1: 20, 2: 10**6}
    rows = [
        {"seed": s, "step": t, "eval_loss": 3.0 - t / 20, "mlm_accuracy": 0.2 + 0.5 * (t >= f)}
        for s, f in first.items()
        for t in steps
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.slow
def test_checkpoint_series_run_through_the_whole_workflow(tmp_path):
    """Relative paths resolve against the working directory; both families and both
    paths (regression with evals, none without) reach a map."""
    from conftest import run_workflow

    expected = {"bert": write_bert_series(tmp_path / "ckpts", DAG_STEPS)}
    expected["parity"] = write_parity_series(tmp_path / "parity", DAG_STEPS)
    write_evals(tmp_path / "evals.csv", DAG_STEPS)
    features = ["l1", "l2", "spectral", "var_w"]
    config = {
        "settings": {
            "bert": {
                "source": "checkpoints",
                "checkpoints": "ckpts/seed{seed}/step{step}",
                "seeds": 3,
                "evals": "evals.csv",
                "features": features,
                "convergence": {"column": "mlm_accuracy", "threshold": 0.5},
                "device": "cpu",
            },
            "parity": {
                "source": "checkpoints",
                "checkpoints": "parity/s{seed}_t{step}.safetensors",
                "seeds": SEEDS,
                "steps": DAG_STEPS,
                "model": "sparse_parity",
                **PARITY,
                "features": features,
                "device": "cpu",
            },
        },
        "hmm": {"states": [1, 2], "restarts": 1, "n_iter": 5, "covariance": "diag"},
    }
    config["hmm"]["val_fraction"] = 0.34
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_workflow(tmp_path, configfile)
    results = tmp_path / "results"
    for name in ("bert", "parity"):
        trajectories = pd.read_parquet(results / name / "trajectories.parquet")
        assert list(trajectories.columns[:23]) == CONTRACT_COLUMNS
        for seed in SEEDS:  # the job computes them by the fast exact path (issue 19)
            runs = trajectories[trajectories["seed"] == seed].set_index("step")
            for step in DAG_STEPS:
                got = runs.loc[step, METRIC_COLUMNS].to_dict()
                assert not out_of_tolerance(got, expected[name][seed, step])
        training_map = json.loads((results / name / "map.json").read_text())
        assert training_map["n_runs"] == 3 and training_map["states"]
        assert (results / name / "map.png").stat().st_size > 0
        assert (results / name / "convergence.png").stat().st_size > 0
        assert pd.read_parquet(results / name / "states.parquet")["seed"].nunique() == 3
    bert = json.loads((results / "bert" / "regression.json").read_text())
    assert bert["convergence"]["column"] == "mlm_accuracy" and bert["n_censored"] == 1
    trajectories = pd.read_parquet(results / "bert" / "trajectories.parquet")
    assert trajectories["mlm_accuracy"].notna().all()
    parity = json.loads((results / "parity" / "regression.json").read_text())
    assert parity["r2"] is None and parity["reason"].startswith("no convergence column")
    detours = pd.read_csv(results / "parity" / "detours.csv")
    assert detours["runs_visiting"].max() >= 1 and not detours["is_detour"].any()
    assert "parity" in (results / "summary.md").read_text()
