"""The Snakemake workflow itself: dry runs of the paper config, a real tiny run."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO as ROOT
from conftest import TINY_CONFIG, repo_writes, run_workflow
from safetensors.torch import load_file

from trainmap.config.settings import load_yaml, validate_config
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.weights import compute_metrics
from trainmap.tasks.registry import get_task
from trainmap.training.loop import train

RUN_COLUMNS = ["setting", "seed", "step", "epoch", "train_loss", "eval_loss"]
RUN_COLUMNS += ["train_accuracy", "eval_accuracy", *METRIC_COLUMNS, "diverged"]
DETOUR_COLUMNS = ["state", "coefficient", "std_error", "p_value", "runs_visiting", "is_detour"]
DETOUR_COLUMNS += ["converged_runs_visiting", "kind", "coefficient_sd"]
CONTRACT_FILES = [
    "trajectories.parquet",
    "hmm/selection.json",
    "states.parquet",
    "map.json",
    "detours.csv",
    "regression.json",
    "map.png",
    "selection.png",
    "trajectories.png",
    "coefficients.png",
    "convergence.png",
    "map.html",
    "curves.html",
]


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'job  count' table Snakemake prints for a dry run."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", dry_run_output, re.M)}


def test_paper_config_dry_run_counts_jobs(tmp_path):
    offline = {"HF_HUB_OFFLINE": "1"}  # the multiberts setting needs no network to plan
    result = run_workflow(
        tmp_path, ROOT / "config" / "paper.yaml", extra_args=["--dry-run"], env=offline
    )
    counts = job_counts(result.stdout)
    settings = validate_config(load_yaml(ROOT / "config" / "paper.yaml"))
    trained = [s for s in settings.values() if s.source == "train"]
    # One training job per seed (seeds_per_job defaults to 1), one unpack job per seed:
    # modular, modular_ln, parity, mnist, cifar100, cifar100_destabilized.
    assert counts["train_run"] == sum(len(s.seeds) for s in trained) == 6 * 40
    assert counts["unpack_run"] == 6 * 40
    # MultiBERTs: one metrics job per seed; a dry run downloads nothing.
    assert counts["compute_checkpoint_metrics"] == 5
    n_states = sum(len(s.hmm["states"]) for s in settings.values())
    assert counts["fit_hmm"] == n_states == 7 * 8
    for rule in ("collect_trajectories", "prepare_sequences", "select_state_count"):
        assert counts[rule] == 7
    for rule in ("decode_states", "draw_training_map", "fit_detour_regression"):
        assert counts[rule] == 7
    for rule in ("draw_interactive_map", "plot_interactive_curves"):
        assert counts[rule] == 7
    assert "map_function_space" not in counts  # no setting of the paper's has a probe
    assert "fit_function_space" not in counts
    assert not (tmp_path / "results").exists()


def test_bad_config_stops_before_any_job(tmp_path):
    config = load_yaml(TINY_CONFIG)
    config["settings"]["parity"]["seeds"] = [0, 3, 3]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = run_workflow(tmp_path, bad, check=False)
    assert result.returncode != 0
    assert "settings.parity.seeds: [0, 3, 3]" in result.stdout
    assert not (tmp_path / "results").exists()


def test_asking_for_a_seed_the_config_lacks_names_it(tmp_path):
    target = "results/parity/runs/seed7/metrics.parquet"
    result = run_workflow(tmp_path, targets=[target], extra_args=["--dry-run"], check=False)
    assert result.returncode != 0
    assert "settings.parity.seeds: 7 is not one of the seeds" in result.stdout


@pytest.mark.slow
def test_masked_lm_trains_on_its_settings_tokenizer(tmp_path):
    """train_tokenizer builds results/<setting>/tokenizer.json once; the training job gets
    it as its tokenizer and equals a run in-process with that file."""
    corpus = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
    hyper = {
        "corpus": str(corpus), "vocab_size": 150, "max_length": 16, "layers": 1, "hidden": 16,
        "heads": 2, "intermediate": 32, "n_train": 32, "n_eval": 8, "n_train_eval": 8,
        "batch_size": 16, "epochs": 1, "eval_every": 1, "device": "cpu",
    }  # fmt: skip
    config = {
        "settings": {
            "lm": {
                "source": "train", "task": "masked_lm", "seeds": 2, **hyper,
                "convergence": {"column": "eval_accuracy", "threshold": 0.5},
            }
        }
    }  # fmt: skip
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(config))
    run = "results/lm/runs/seed1"
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = run_workflow(
        tmp_path, tmp_path / "lm.yaml", targets=[f"{run}/metrics.parquet"], env=env
    )
    assert job_counts(result.stdout)["train_tokenizer"] == 1
    task = get_task("masked_lm")
    tokenizer = tmp_path / "results/lm/tokenizer.json"
    expected, _ = train(task, task.params(**hyper, tokenizer=str(tokenizer)), 1)
    metrics = pd.read_parquet(tmp_path / run / "metrics.parquet")
    pd.testing.assert_frame_equal(metrics.drop(columns=["setting", "seed"]), expected)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["parity", "modular"])
def test_tiny_run_writes_contract_files(tiny_run, setting):
    for name in CONTRACT_FILES:
        assert (tiny_run / f"results/{setting}/{name}").stat().st_size > 0, name
    detours = pd.read_csv(tiny_run / f"results/{setting}/detours.csv")
    assert list(detours.columns[: len(DETOUR_COLUMNS)]) == DETOUR_COLUMNS
    training_map = json.loads((tiny_run / f"results/{setting}/map.json").read_text())
    for state in training_map["states"]:
        assert {"id", "top_features", "runs_visiting", "kind"} <= set(state)
        assert state["kind"] in ("", "detour", "dead_end")
    selected = json.loads((tiny_run / f"results/{setting}/hmm/selected.json").read_text())
    assert selected["n_states"] == training_map["n_states"]
    assert selected["fitted_on"] == "all runs"
    assert len(selected["restarts"]) == 20  # hmm.map_restarts, not the fits' 2
    resampled = setting == "parity"  # tiny.yaml: stability: {resamples: 2} for parity only
    assert (tiny_run / f"results/{setting}/support.json").exists() == resampled
    if resampled:
        assert training_map["support"]["resamples"] == 2
        assert all(0 <= s["support"] <= 1 for s in training_map["states"])
        assert all(0 <= e["support"] <= 1 for e in training_map["edges"])
        selection = json.loads((tiny_run / f"results/{setting}/hmm/selection.json").read_text())
        assert len(selection["resamples"]["picks"]) == 2
    else:
        assert "support" not in training_map
    assert (tiny_run / "results/summary.md").read_text().count(setting) >= 1
    trajectories = pd.read_parquet(tiny_run / f"results/{setting}/trajectories.parquet")
    assert list(trajectories.columns) == RUN_COLUMNS
    assert sorted(trajectories["seed"].unique()) == [0, 1]
    assert (trajectories["setting"] == setting).all()
    values = trajectories[RUN_COLUMNS[4:-1]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    for seed in (0, 1):
        run_dir = tiny_run / f"results/{setting}/runs/seed{seed}"
        metrics = pd.read_parquet(run_dir / "metrics.parquet")
        expected = trajectories[trajectories["seed"] == seed].reset_index(drop=True)
        pd.testing.assert_frame_equal(metrics, expected)
        # The seed's progress lines are in its training job's log (parity: one job for
        # both seeds, modular: a job per seed).
        group = 0 if setting == "parity" else seed
        log = (tiny_run / f"logs/{setting}/train_run/group{group}.log").read_text()
        assert len(re.findall(rf"seed {seed} epoch .* elapsed", log)) == len(metrics)
    # The training jobs' temporary bundles are gone once every seed is unpacked.
    assert sorted(p.name for p in (tiny_run / f"results/{setting}/runs").iterdir()) == [
        "seed0",
        "seed1",
    ]


@pytest.mark.slow
def test_saved_weights_are_the_last_checkpoint(tiny_run):
    setting = validate_config(load_yaml(TINY_CONFIG))["modular"]
    task = get_task(setting.task)
    model = task.make_model(task.params(**setting.params))
    state = load_file(tiny_run / "results/modular/runs/seed1/model.safetensors")
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state)
    last = pd.read_parquet(tiny_run / "results/modular/runs/seed1/metrics.parquet").iloc[-1]
    recomputed = compute_metrics(model.weight_groups())
    for column in METRIC_COLUMNS[:-3]:
        assert recomputed[column] == pytest.approx(last[column], rel=1e-9)


@pytest.mark.slow
def test_nothing_is_written_into_the_repository(tiny_run):
    """The run (and its report) writes only under its --directory. Compared with the
    checkout as it was before the run, so a user's own results/ and logs/ (make run) are
    no failure."""
    assert json.loads(repo_writes(tiny_run).read_text()) == []
    assert (tiny_run / "logs").is_dir() and (tiny_run / ".snakemake").is_dir()


@pytest.mark.slow
def test_a_second_run_with_each_seed_alone_is_byte_identical(tiny_run, tmp_path):
    """The whole chain is deterministic (training, HMM fits, decoding, map, detours), and
    parity's seeds trained in jobs of their own (the loop) equal the tiny run's two-seed
    job (vectorised, `vectorize: auto`): one run of parity from scratch checks both.
    (modular, one job per seed in both, would only repeat the tiny run's config.)"""
    config = load_yaml(TINY_CONFIG)
    config["settings"]["parity"]["seeds_per_job"] = 1
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump(config))
    setting = validate_config(config)["parity"]
    result = run_workflow(tmp_path / "run", alone, targets=["results/parity/map.json"])
    assert job_counts(result.stdout)["train_run"] == 2  # one job per seed
    files = ["trajectories.parquet", "states.parquet", "map.json", "detours.csv"]
    files += [f"hmm/k{k}.json" for k in setting.hmm["states"]]
    files += [f"runs/seed{s}/{f}" for s in setting.seeds
              for f in ("metrics.parquet", "model.safetensors")]  # fmt: skip
    for file in files:
        path = f"results/parity/{file}"
        assert (tmp_path / "run" / path).read_bytes() == (tiny_run / path).read_bytes(), path
    assert len(files) == 4 + 2 + 4
