"""HFCallback and LightningCallback record what a Recorder would, at the right steps, and
the examples/ scripts' runs go through the workflow (`source: runs`) to a map."""

import json
import sys

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO

from trainmap.errors import RecordError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.families import bert_encoder_groups
from trainmap.metrics.weights import compute_metrics
from trainmap.record.selection import select_weights

EXAMPLES = REPO / "examples"


def tiny_bert_trainer(tmp_path, callback, seed=7, **arguments):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=8)  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 30, (64, 8), generator=gen)
    rows = [{"input_ids": ids[i], "labels": ids[i]} for i in range(64)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        seed=seed,
        max_steps=12,
        per_device_train_batch_size=16,
        eval_strategy="steps",
        eval_steps=6,
        logging_steps=3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        **arguments,
    )
    model = transformers.BertForMaskedLM(config)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=rows, eval_dataset=rows[:16], callbacks=[callback]
    )
    return trainer, model


def test_hf_callback_records_at_start_evaluations_and_every_n_steps(tmp_path):
    from trainmap.record import HFCallback

    trainer, model = tiny_bert_trainer(tmp_path, HFCallback(tmp_path / "runs", every=4))
    trainer.train()
    path = tmp_path / "runs" / "seed7" / "metrics.parquet"  # the Trainer's seed
    table = pd.read_parquet(path)
    assert list(table["step"]) == [0, 4, 6, 8, 12]  # start, every 4, evaluations at 6, 12
    evaluated = table.set_index("step")["eval_loss"].notna()
    assert list(evaluated[evaluated].index) == [6, 12]
    assert table.set_index("step")["train_loss"].notna().to_dict() == {
        0: False, 4: False, 6: True, 8: False, 12: True}  # fmt: skip
    # The last row holds the final weights' metrics, by the BERT rule of trainmap.metrics.families.
    final = compute_metrics(bert_encoder_groups(dict(model.named_parameters())))
    assert table.iloc[-1][METRIC_COLUMNS].to_dict() == pytest.approx(final, rel=1e-12)
    assert json.loads((path.parent / "weights.json").read_text())["family"] == "bert"
    # An evaluation after train() adds its values to the last row, which stays one row.
    trainer.evaluate(metric_key_prefix="test")
    after = pd.read_parquet(path)
    assert list(after["step"]) == [0, 4, 6, 8, 12] and after["test_loss"].iloc[-1] > 0
    pd.testing.assert_frame_equal(after[table.columns], table)


def test_hf_callback_bad_options_and_other_processes(tmp_path):
    from transformers import TrainerControl, TrainerState

    from trainmap.record import HFCallback

    with pytest.raises(RecordError, match="every must be an integer >= 1, got 0"):
        HFCallback(tmp_path, every=0)
    callback = HFCallback(tmp_path)
    state = TrainerState(is_world_process_zero=False)
    callback.on_train_begin(None, state, TrainerControl(), model=torch.nn.Linear(2, 2))
    callback.on_train_end(None, state, TrainerControl())
    assert callback.recorder is None and not list(tmp_path.iterdir())
    # A bad selection fails when training starts, before the first step.
    trainer, _ = tiny_bert_trainer(tmp_path, HFCallback(tmp_path, matrices=["decoder.*"]))
    with pytest.raises(RecordError, match="'decoder.\\*' matches no parameter.*bert.embeddings"):
        trainer.train()


def test_lightning_callback_records_validations_and_every_n_steps(tmp_path):
    L = pytest.importorskip("lightning")
    from trainmap.record import LightningCallback

    sys.path.insert(0, str(EXAMPLES))
    try:
        from lightning_module import Classifier, data
    finally:
        sys.path.remove(str(EXAMPLES))
    from torch.utils.data import DataLoader

    L.seed_everything(5)
    model = Classifier()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        callbacks=[LightningCallback(tmp_path, every_n_steps=3)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(data(128, 1), batch_size=32), DataLoader(data(64, 0), 64))
    table = pd.read_parquet(tmp_path / "seed5" / "metrics.parquet")
    assert list(table["step"]) == [0, 3, 4, 6, 8]  # every 3 steps; validations after 4, 8
    assert list(table["epoch"]) == [0, 0, 0, 1, 1]
    validated = table.set_index("step")["val_accuracy"].notna()
    assert list(validated[validated].index) == [4, 8]
    final = compute_metrics(select_weights(model).groups(model))
    assert table.iloc[-1][METRIC_COLUMNS].to_dict() == pytest.approx(final, rel=1e-12)


def test_lightning_callback_needs_a_seed(tmp_path, monkeypatch):
    L = pytest.importorskip("lightning")
    from trainmap.record import LightningCallback

    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    callback = LightningCallback(tmp_path)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(RecordError, match="no seed; pass seed= or call lightning.seed_everything"):
        callback.on_train_start(trainer, torch.nn.Linear(2, 2))
    with pytest.raises(RecordError, match="every_n_steps must be an integer >= 1"):
        LightningCallback(tmp_path, every_n_steps=2.5)


@pytest.mark.slow
def test_examples_record_runs_that_the_workflow_maps(recorded_examples):
    """As a user would: the three examples record 4 seeds each, then one config maps them
    (the shared run, which also maps plain_loop's runs with PC features)."""
    pytest.importorskip("lightning")
    pytest.importorskip("accelerate")
    work = recorded_examples
    config = yaml.safe_load((work / "config.yaml").read_text())
    assert set(config["settings"]) == {"plain_loop", "hf_trainer", "lightning_module", "plain"}
    for name in ("plain_loop", "hf_trainer", "lightning_module"):
        trajectories = pd.read_parquet(work / "results" / name / "trajectories.parquet")
        assert sorted(trajectories["seed"].unique()) == [0, 1, 2, 3]
        recorded = pd.read_parquet(work / "runs" / name / "seed2" / "metrics.parquet")
        mine = trajectories[trajectories["seed"] == 2].reset_index(drop=True)
        pd.testing.assert_series_equal(mine["l2"], recorded["l2"])
        chart = json.loads((work / "results" / name / "map.json").read_text())
        assert chart["n_states"] in (1, 2) and chart["states"]
        assert sum(s["runs_visiting"] for s in chart["states"]) >= 4
        assert (work / "results" / name / "detours.csv").exists()
    # plain_loop logged its loss on 64 fixed examples: the runs in function space.
    space = pd.read_parquet(work / "results" / "plain_loop" / "function_space.parquet")
    assert list(space.columns) == ["seed", "step", "pc1", "pc2", "pc3", "state"]
    assert sorted(space["seed"].unique()) == [0, 1, 2, 3] and len(space) == 4 * 21
    assert (work / "results" / "plain_loop" / "function_space.png").stat().st_size > 0
    # Recorded files unchanged, nothing reruns; one changed, it does: test_pc_features.
