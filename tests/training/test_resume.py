"""Resumable training: a killed run continues from its saved state, byte for byte."""

import dataclasses
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import RUNS, kill_config, parse_jobs, run_workflow, snakemake_command

from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training.bundle import BundleError, unpack_seed, write_manifest
from trainmap.training.choose import train_group
from trainmap.training.common import generator
from trainmap.training.loop import RunState, init_run, train
from trainmap.training.resume import (
    GroupResume,
    ResumeStore,
    SeedResume,
    state_from_file,
    state_to_file,
    tree_from_file,
    tree_to_file,
)
from trainmap.training.vectorized import train_vectorized

TINY = {
    "sparse_parity": {"n_bits": 8, "n_train": 64, "n_eval": 32, "hidden": 16, "epochs": 6,
                      "batch_size": 24, "eval_every": 5, "eval_unit": "step"},
    "modular_addition": {"p": 7, "train_fraction": 0.5, "d_model": 16, "n_heads": 2,
                         "d_head": 8, "d_mlp": 32, "batch_size": 8, "epochs": 5, "eval_every": 1},
}  # fmt: skip


class Killed(Exception):
    """Stands in for SIGKILL in the in-process tests (the subprocess test sends one)."""


class DiesAfterSaves:
    """Mixed into a resumer: its run dies right after the resumer's n-th save."""

    def __init__(self, *args, n: int):
        super().__init__(*args)
        self.n = n

    def at_checkpoint(self, state) -> None:
        super().at_checkpoint(state)
        if self.saves >= self.n:
            raise Killed


class KillAfterSaves(DiesAfterSaves, SeedResume):
    """A seed's resumer whose run dies right after its n-th save."""


def params(task_name: str):
    task = get_task(task_name)
    return task, parse_params(task.params, TINY[task_name], "t")


@pytest.mark.parametrize("task_name", ["sparse_parity", "modular_addition"])
def test_killed_run_resumes_to_identical_results(task_name, tmp_path, caplog):
    """sparse_parity: SGD, checkpoints mid-epoch (eval_unit step, 3 batches an epoch);
    modular_addition: fused AdamW, checkpoints at epoch ends."""
    task, p = params(task_name)
    expected, expected_weights = train(task, p, seed=5)
    with pytest.raises(Killed):
        train(task, p, 5, KillAfterSaves(tmp_path, 5, "fp", 0.0, n=2))
    caplog.set_level("INFO", logger="trainmap.training.resume")
    table, weights = train(task, p, 5, SeedResume(tmp_path, 5, "fp", 0.0))
    steps = re.findall(r"resumed seed 5 from step (\d+)", caplog.text)
    assert len(steps) == 1 and 0 < int(steps[0]) < expected["step"].iloc[-1]
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    assert weights.keys() == expected_weights.keys()
    assert all(torch.equal(weights[k], expected_weights[k]) for k in weights)


def test_a_state_of_another_config_is_not_resumed(tmp_path, caplog):
    task, p = params("sparse_parity")
    with pytest.raises(Killed):
        train(task, p, 1, KillAfterSaves(tmp_path, 1, "old", 0.0, n=1))
    caplog.set_level("INFO", logger="trainmap.training.resume")
    table, _ = train(task, p, 1, SeedResume(tmp_path, 1, "new", 0.0))
    assert "is from another config or code: seed 1 starts afresh" in caplog.text
    pd.testing.assert_frame_equal(table, train(task, p, 1)[0], check_exact=True)


def test_a_damaged_state_is_not_resumed(tmp_path, caplog):
    task, p = params("sparse_parity")
    with pytest.raises(Killed):
        train(task, p, 1, KillAfterSaves(tmp_path, 1, "fp", 0.0, n=1))
    state_file = tmp_path / "state.safetensors"
    state_file.write_bytes(state_file.read_bytes()[:200])
    caplog.set_level("INFO", logger="trainmap.training.resume")
    table, _ = train(task, p, 1, SeedResume(tmp_path, 1, "fp", 0.0))
    assert "unreadable resumable state" in caplog.text
    pd.testing.assert_frame_equal(table, train(task, p, 1)[0], check_exact=True)


def test_saves_wait_for_the_interval(tmp_path):
    task, p = params("sparse_parity")
    every_checkpoint = SeedResume(tmp_path / "a", 1, "fp", 0.0)
    train(task, p, 1, every_checkpoint)
    rarely = SeedResume(tmp_path / "b", 1, "fp", 3600.0)
    train(task, p, 1, rarely)
    assert every_checkpoint.saves == 3  # checkpoints at steps 5, 10, 15; none at the last
    assert rarely.saves == 0 and not (tmp_path / "b").exists()


@dataclasses.dataclass
class WiderState(RunState):
    """A RunState with one more generator and counter, as a new training feature adds."""

    noise_gen: torch.Generator = dataclasses.field(default_factory=torch.Generator)
    noise_draws: int = 0
    on_batch: object = print  # a hook: code, not state


def test_every_field_of_the_state_is_saved_generically(tmp_path):
    task, p = params("modular_addition")
    _, fresh = init_run(task, p, 0, torch.device("cpu"))
    state = WiderState(**{f.name: getattr(fresh, f.name) for f in dataclasses.fields(fresh)})
    state.noise_gen = generator("noise", 0)
    torch.rand(5, generator=state.noise_gen)
    state.order_gen.manual_seed(11)
    state.noise_draws, state.step, state.order = 5, 7, torch.arange(4)
    state.rows.append({"step": 0, "l2": float("nan"), "eval_loss": float("inf")})
    state_to_file(state, tmp_path / "s.safetensors", "fp")

    _, other = init_run(task, p, 1, torch.device("cpu"))
    restored = WiderState(**{f.name: getattr(other, f.name) for f in dataclasses.fields(other)})
    assert state_from_file(restored, tmp_path / "s.safetensors", "fp")
    assert torch.equal(torch.rand(3, generator=restored.noise_gen),
                       torch.rand(3, generator=state.noise_gen))  # fmt: skip
    assert torch.equal(torch.rand(3, generator=restored.order_gen),
                       torch.rand(3, generator=state.order_gen))  # fmt: skip
    assert (restored.noise_draws, restored.step) == (5, 7)
    assert torch.equal(restored.order, torch.arange(4))
    assert repr(restored.rows) == repr(state.rows)  # NaN and inf survive
    for key, value in state.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[key], value)


def test_a_field_that_cannot_be_saved_is_named(tmp_path):
    @dataclasses.dataclass
    class Odd(RunState):
        handle: object = dataclasses.field(default_factory=object)

    task, p = params("sparse_parity")
    _, fresh = init_run(task, p, 0, torch.device("cpu"))
    odd = Odd(**{f.name: getattr(fresh, f.name) for f in dataclasses.fields(fresh)})
    with pytest.raises(TypeError, match="RunState.handle: cannot save a object"):
        state_to_file(odd, tmp_path / "s.safetensors", "fp")


def test_store_keeps_finished_seeds_and_clears(tmp_path):
    store = ResumeStore(tmp_path, "run", 0.0)
    task, p = params("sparse_parity")
    table, weights = train(task, p, 2)
    assert not store.is_finished(2)
    store.save_finished(2, table, weights)
    assert store.is_finished(2)
    assert not ResumeStore(tmp_path, "other run", 0.0).is_finished(2)
    store.export(2, tmp_path / "bundle" / "seed2")
    assert sorted(p.name for p in (tmp_path / "bundle" / "seed2").iterdir()) == [
        "metrics.parquet",
        "model.safetensors",
    ]
    store.clear([2])
    assert not store.folder(2).exists() and not store.is_finished(2)


def write_bundle(bundle: Path, seeds: list[int]) -> None:
    for seed in seeds:
        (bundle / f"seed{seed}").mkdir(parents=True)
        (bundle / f"seed{seed}" / "metrics.parquet").write_bytes(b"m%d" % seed)
        (bundle / f"seed{seed}" / "model.safetensors").write_bytes(b"w%d" % seed)


def test_unpack_refuses_a_bundle_without_manifest(tmp_path):
    """After Ctrl-C and --cleanup-metadata Snakemake takes a half-written bundle for
    complete; the manifest, written last, is what says the job finished."""
    bundle = tmp_path / "group0"
    write_bundle(bundle, [0, 1])
    outputs = [tmp_path / "out" / "metrics.parquet", tmp_path / "model.safetensors"]
    log = tmp_path / "unpack.log"
    with pytest.raises(BundleError, match=r"group0: no complete\.json; it was left by a"):
        unpack_seed(bundle, 0, outputs, log)
    assert log.read_text().startswith(f"failed: {bundle}: no complete.json")
    write_manifest(bundle, [0, 1])
    unpack_seed(bundle, 1, outputs, log)
    assert (tmp_path / "out" / "metrics.parquet").read_bytes() == b"m1"
    assert (tmp_path / "model.safetensors").read_bytes() == b"w1"
    assert len(log.read_text().splitlines()) == 2  # a line per file copied
    (bundle / "seed0" / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(BundleError, match=r"seed0/model\.safetensors is missing or differs"):
        unpack_seed(bundle, 0, outputs)
    with pytest.raises(BundleError, match=r"seed 3 is not among its seeds \[0, 1\]"):
        unpack_seed(bundle, 3, outputs)


@pytest.mark.slow
@pytest.mark.parametrize("vectorize", [False, True])
def test_sigkilled_training_job_resumes_and_matches_an_uninterrupted_run(
    vectorize, uninterrupted, tmp_path
):
    """One after another: seed 0 finishes, seed 1 is killed mid-run and resumed.
    Vectorised: the group is killed after a save of its state and resumed whole. Both
    end byte-identical to the shared uninterrupted run."""
    configfile = kill_config(tmp_path / "config.yaml", vectorize)
    killed = tmp_path / "killed"
    killed.mkdir()
    command = snakemake_command(killed, configfile, targets=RUNS, cores=1)
    job = subprocess.Popen(command, cwd=killed, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    runs = killed / "results/parity/runs"
    state = runs / (".resume-seed0/group.safetensors" if vectorize else
                    ".resume-seed1/state.safetensors")  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while not state.exists():  # loop: seed 0 is done, seed 1 has saved a state
            assert job.poll() is None, f"the job ended before it saved {state}"
            assert time.monotonic() < deadline, f"no {state} within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # Snakemake and the training job with it
        job.wait()
    assert not (killed / RUNS[2]).exists()
    run_workflow(killed, configfile, extra_args=["--unlock"], cores=1)
    run_workflow(killed, configfile, targets=RUNS, extra_args=["--rerun-incomplete"], cores=1)

    log = (killed / "logs/parity/train_run/group0.log").read_text()
    resumed = [1, 0] if vectorize else [1]
    if not vectorize:
        assert "seed 0 finished in an earlier attempt of this job: not retrained" in log
        assert "seed 0 epoch" not in log  # not retrained
    for seed in resumed:
        step = int(re.search(rf"resumed seed {seed} from step (\d+)", log).group(1))
        assert step > 0
        assert f"seed {seed} epoch 0/60 step 0/" not in log  # resumed, not restarted
    for path in RUNS:
        assert (killed / path).read_bytes() == (uninterrupted / path).read_bytes(), path
    # The states are gone once the outputs are complete; the bundle once unpacked.
    assert sorted(p.name for p in runs.iterdir()) == ["seed0", "seed1"]


@pytest.mark.slow
def test_a_half_written_bundle_is_never_unpacked(tmp_path):
    """What Ctrl-C then --cleanup-metadata leave: a bundle Snakemake takes for complete,
    without the manifest its training job writes last. unpack_run stops and says why."""
    configfile = kill_config(tmp_path / "config.yaml", vectorize="auto")
    work = tmp_path / "work"
    write_bundle(work / "results/parity/runs/group0", [0])
    result = run_workflow(work, configfile, targets=RUNS[:2], check=False)
    assert result.returncode != 0
    assert "train_run" not in {job.rule for job in parse_jobs(result.stdout)}
    log = (work / "logs/parity/unpack_run/seed0.log").read_text()
    assert "group0: no complete.json; it was left by a training job that did not finish" in log
    assert "Remove it (rm -r" in log
    assert not (work / RUNS[0]).exists()


class KillGroupAfterSaves(DiesAfterSaves, GroupResume):
    """A vectorised group's resumer whose job dies right after its n-th save."""


@pytest.mark.parametrize("task_name", ["sparse_parity", "modular_addition"])
def test_killed_vectorised_group_resumes_to_identical_results(task_name, tmp_path, caplog):
    """A group killed after its 2nd save (parity: mid-epoch, SGD; modular addition: fused
    AdamW, per-seed optimizer views) and trained again from its file gives the files of an
    uninterrupted group, which are the loop's."""
    task, p = params(task_name)
    seeds = [4, 1, 6]
    straight = {seed: (t, w) for seed, t, w in train_vectorized(task, p, seeds)}
    killer = KillGroupAfterSaves(tmp_path, seeds, "fp", 0.0, n=2)
    with pytest.raises(Killed):
        list(train_vectorized(task, p, seeds, resume=killer))
    assert (tmp_path / "group.safetensors").exists()
    caplog.set_level(logging.INFO, logger="trainmap.training.vectorized")
    resumed = GroupResume(tmp_path, seeds, "fp", 0.0)
    runs = list(train_vectorized(task, p, seeds, resume=resumed))
    step = int(re.search(r"resumed seed 4 from step (\d+)", caplog.text).group(1))
    assert step > 0 and "resumed seed 6 from step" in caplog.text
    for seed, table, weights in runs:
        expected, expected_weights = straight[seed]
        pd.testing.assert_frame_equal(table, expected)
        assert weights.keys() == expected_weights.keys()
        assert all(torch.equal(weights[k], expected_weights[k]) for k in weights)
        assert table["step"].iloc[0] == 0  # the rows before the kill are kept
    assert resumed.saves > 0


def test_a_group_state_of_another_group_is_not_resumed(tmp_path, caplog):
    task, p = params("sparse_parity")
    killer = KillGroupAfterSaves(tmp_path, [0, 1], "fp", 0.0, n=1)
    with pytest.raises(Killed):
        list(train_vectorized(task, p, [0, 1], resume=killer))
    caplog.set_level(logging.INFO)
    runs = list(train_vectorized(task, p, [0, 1], resume=GroupResume(tmp_path, [0, 1], "new", 0)))
    assert "is from another config, code or group" in caplog.text
    assert "resumed seed" not in caplog.text
    assert runs[0][1].equals(train(task, p, 0)[0])


def test_group_state_file_round_trips_nested_values(tmp_path):
    tree = {3: [1.5, float("nan"), (True, None)], "w": {"a": torch.arange(4.0)}, "e": {}}
    tree_to_file(tree, tmp_path / "g.safetensors", "fp")
    back = tree_from_file(tmp_path / "g.safetensors", "fp")
    assert back[3][0] == 1.5 and back[3][1] != back[3][1] and back[3][2] == (True, None)
    assert torch.equal(back["w"]["a"], torch.arange(4.0)) and back["e"] == {}
    assert tree_from_file(tmp_path / "g.safetensors", "other") is None


def test_train_group_resumes_per_seed_states_rather_than_vectorise(tmp_path, caplog):
    """Per-seed states left by an attempt that trained one after another are resumed by
    the loop even where the group would be vectorised now: never lost."""
    task, p = params("sparse_parity")
    store = ResumeStore(tmp_path, "run", 0.0)
    killer = KillAfterSaves(store.folder(1), 1, store.seed_fingerprint(1), 0.0, n=1)
    with pytest.raises(Killed):
        train(task, p, 1, killer)
    caplog.set_level(logging.INFO)
    runs = {seed: t for seed, t, _ in train_group(task, p, [0, 1], "true", store)}
    assert "per-seed resumable states: resumed one after another" in caplog.text
    assert "resumed seed 1 from step" in caplog.text
    assert runs[1].equals(train(task, p, 1)[0])
