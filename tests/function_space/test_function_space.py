"""Function space, analysis side (trainmap.function_space.pca, the figures, the rule)."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from trainmap.config.settings import load_yaml, validate_config
from trainmap.errors import ConfigError
from trainmap.figures.function_space import function_space_page, plot_function_space
from trainmap.figures.summary import function_space_paths, probed_settings, summary_markdown
from trainmap.function_space.pca import (
    fit_function_space,
    function_space_table,
    loss_matrix,
    summary,
)
from trainmap.io.columns import probe_columns

PROBE_CONFIG = REPO / "tests" / "configs" / "tiny_probe.yaml"
N_EXAMPLES, N_STEPS = 24, 30


def planted_losses(n_runs: int = 10, seed: int = 0) -> list[pd.DataFrame]:
    """Two groups of runs: both start from the same losses; runs 0..n/2-1 learn the first
    half of the probe examples (their losses fall), the others the second half."""
    rng = np.random.default_rng(seed)
    tables = []
    for run in range(n_runs):
        progress = np.linspace(0, 1, N_STEPS)[:, None]
        learned = np.zeros(N_EXAMPLES)
        half = slice(0, N_EXAMPLES // 2) if run < n_runs // 2 else slice(N_EXAMPLES // 2, None)
        learned[half] = 1.0
        losses = 1.0 - 0.9 * progress * learned + rng.normal(0, 0.02, (N_STEPS, N_EXAMPLES))
        table = pd.DataFrame(losses.astype(np.float32), columns=probe_columns(N_EXAMPLES))
        table.insert(0, "setting", "planted")
        table.insert(1, "seed", run)
        table.insert(2, "step", 10 * np.arange(N_STEPS))
        tables.append(table)
    return tables


def planted_states(tables) -> pd.DataFrame:
    rows = [t[["seed", "step"]].assign(state=(t["step"] >= 150).astype(int)) for t in tables]
    return pd.concat(rows, ignore_index=True)


def test_pca_separates_two_groups_of_runs_with_different_loss_profiles():
    tables = planted_losses()
    ids, losses, columns = loss_matrix(tables[::-1])  # any order in: sorted out
    assert ids["seed"].is_monotonic_increasing and columns == probe_columns(N_EXAMPLES)
    fit = fit_function_space(losses, 3)
    table = function_space_table(ids, fit["coords"], planted_states(tables))
    ends = table[table["step"] == table["step"].max()].set_index("seed")
    group = ends.index < 5
    # the two groups end on opposite sides along one component, far apart vs their spread
    separations = [
        abs(ends.loc[group, pc].mean() - ends.loc[~group, pc].mean())
        / (ends.loc[group, pc].std() + ends.loc[~group, pc].std())
        for pc in ("pc1", "pc2")
    ]
    assert max(separations) > 20
    pc = ("pc1", "pc2")[int(np.argmax(separations))]
    assert (np.sign(ends.loc[group, pc]) != np.sign(ends.loc[~group, pc].iloc[0])).all()
    # every run starts in the same place
    starts = table[table["step"] == 0]
    assert starts[pc].std() < 0.1 * abs(ends.loc[group, pc].mean())
    assert fit["explained_variance_ratio"][:2].sum() > 0.9
    assert list(table.columns) == ["seed", "step", "pc1", "pc2", "pc3", "state"]
    assert table["state"].tolist() == planted_states(tables)["state"].tolist()


def test_same_losses_same_components_and_signs():
    tables = planted_losses()
    _, losses, _ = loss_matrix(tables)
    a, b = fit_function_space(losses, 4), fit_function_space(losses.copy(), 4)
    assert np.array_equal(a["coords"], b["coords"])
    for component in a["components"]:
        assert component[np.argmax(np.abs(component))] > 0
    # flipping the data flips no sign convention: the loadings' largest entry stays positive
    c = fit_function_space(-losses, 4)
    for component in c["components"]:
        assert component[np.argmax(np.abs(component))] > 0
    np.testing.assert_allclose(np.abs(c["coords"]), np.abs(a["coords"]), atol=1e-9)


def test_non_finite_losses_are_left_out_and_counted():
    tables = planted_losses(4)
    tables[1].loc[tables[1].index[-2:], "probe_03"] = np.inf  # a diverged run's last rows
    for table in tables:
        table["probe_07"] = np.nan  # an example never scored
    ids, losses, columns = loss_matrix(tables)
    fit = fit_function_space(losses, 2)
    info = summary(fit, ids, columns)
    assert info["left_out_checkpoints"] == 2 and info["left_out_examples"] == ["probe_07"]
    assert info["n_examples"] == N_EXAMPLES - 1
    table = function_space_table(ids, fit["coords"], planted_states(tables))
    assert len(table) == 4 * N_STEPS - 2
    json.dumps(info)  # plain JSON


def test_runs_with_different_probe_sets_are_refused():
    tables = planted_losses(2)
    tables[1] = tables[1].drop(columns=["probe_00"])
    with pytest.raises(ValueError, match="seed 1's probe columns differ"):
        loss_matrix(tables)


def test_figures_draw_every_run_with_start_and_end(tmp_path):
    tables = planted_losses()
    ids, losses, columns = loss_matrix(tables)
    fit = fit_function_space(losses, 2)
    table = function_space_table(ids, fit["coords"], planted_states(tables))
    ratios = list(fit["explained_variance_ratio"])
    fig = plot_function_space(table, ratios, 2, {1}, "planted")
    ax = fig.axes[0]
    assert "PC1 (" in ax.get_xlabel() and "PC2 (" in ax.get_ylabel()
    (lines,) = ax.collections[:1]
    assert len(lines.get_segments()) == 10 * (N_STEPS - 1)
    text = function_space_page(table, ratios, 2, {1}, "planted")
    assert "S1 (detour)" in text and "start of seed 9" in text


def test_probe_key_is_validated():
    config = load_yaml(REPO / "tests" / "configs" / "tiny.yaml")
    config["settings"]["parity"]["probe"] = {"n": 64}
    settings = validate_config(config)
    assert settings["parity"].probe == {"n": 64, "split": "eval", "seed": 0, "components": 10}
    assert settings["modular"].probe == {}
    config["settings"]["parity"]["probe"] = {"n": 64, "split": "test"}
    with pytest.raises(ConfigError, match=r"settings.parity.probe.split"):
        validate_config(config)
    config["settings"]["parity"]["probe"] = {"size": 64}
    with pytest.raises(ConfigError, match=r"settings.parity.probe"):
        validate_config(config)


@pytest.mark.slow
def test_a_setting_with_a_probe_maps_its_runs_in_function_space(probe_run):
    """tests/configs/tiny_probe.yaml end to end (the shared run, features with PCs: the
    map of function space is drawn the same either way): a vectorised group and a lone
    seed."""
    results = probe_run / "results" / "parity"
    runs = results / "runs"
    losses = [pd.read_parquet(runs / f"seed{s}" / "probe_losses.parquet") for s in range(3)]
    metrics = pd.read_parquet(runs / "seed0" / "metrics.parquet")
    assert losses[0]["step"].tolist() == metrics["step"].tolist()
    assert list(losses[0].columns) == ["setting", "seed", "step", *probe_columns(32)]
    table = pd.read_parquet(results / "function_space.parquet")
    assert list(table.columns) == ["seed", "step", "pc1", "pc2", "pc3", "state"]
    states = pd.read_parquet(results / "states.parquet")
    merged = table.merge(states, on=["seed", "step"], suffixes=("", "_hmm"))
    assert (merged["state"] == merged["state_hmm"]).all() and len(merged) == len(states)
    info = json.loads((results / "function_space.json").read_text())
    assert len(info["explained_variance_ratio"]) == 3
    assert (results / "function_space.png").stat().st_size > 10_000
    assert "<script" in (results / "function_space.html").read_text()


def test_summary_links_the_pages_and_the_function_space_of_probed_settings():
    config = load_yaml(REPO / "tests" / "configs" / "tiny.yaml")
    config["settings"]["parity"]["probe"] = {"n": 64}
    settings = validate_config(config)
    assert probed_settings(settings) == ["parity"]
    assert function_space_paths(settings) == [
        "results/parity/function_space.png",
        "results/parity/function_space.html",
    ]
    row = {"K": "2"}
    text = summary_markdown({"parity": row, "modular": row}, [], {}, frozenset({"parity"}))
    assert "[map.html](parity/map.html) · [curves.html](parity/curves.html)" in text
    assert "[map.html](modular/map.html)" in text
    assert "[png](parity/function_space.png)" in text
    assert "modular/function_space" not in text
