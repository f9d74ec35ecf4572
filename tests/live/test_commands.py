"""trainmap predict and trainmap watch on planted runs: the same numbers as LiveRun, bad
input refused when the command starts."""

import pandas as pd
import pytest
from live_maps import write_planted_live
from planted import FEATURES, planted_runs

from trainmap.cli import main
from trainmap.live.livemap import LiveMap
from trainmap.live.watch import Watched


@pytest.fixture
def recorded(tmp_path):
    """A runs directory as a Recorder writes it (3 seeds, one still training) and a map."""
    planted = planted_runs()
    runs = tmp_path / "runs"
    for seed in (0, 1, 13):
        rows = planted.trajectories[planted.trajectories["seed"] == seed]
        if seed == 13:
            rows = rows.head(12)  # a run still training
        (runs / f"seed{seed}").mkdir(parents=True)
        rows.to_parquet(runs / f"seed{seed}" / "metrics.parquet", index=False)
    return planted, runs, write_planted_live(tmp_path / "map")


def test_predict_writes_one_row_per_checkpoint_as_live_run_gives_them(recorded, tmp_path):
    planted, runs, live = recorded
    out = tmp_path / "out" / "predictions.csv"
    assert main(["predict", "--map", str(live), "--runs", str(runs), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == [
        "seed",
        "step",
        "state",
        "p_detour",
        "p_dead_end",
        "predicted_convergence_step",
        "low",
        "high",
        "converged_at",
    ]
    assert table.groupby("seed").size().to_dict() == {0: 40, 1: 40, 13: 12}
    run = LiveMap.load(live).run(13)
    rows = planted.trajectories[planted.trajectories["seed"] == 13].head(12)
    expected = [run.update(r["step"], r) for r in rows.to_dict("records")]
    got = table[table["seed"] == 13]
    assert got["state"].tolist() == [p.state for p in expected]
    assert got["p_detour"].to_numpy() == pytest.approx([p.p_detour for p in expected])
    assert got["predicted_convergence_step"].to_numpy() == pytest.approx(
        [p.predicted_convergence_step for p in expected], nan_ok=True
    )


def test_predict_from_a_table(recorded, tmp_path):
    planted, _, live = recorded
    table = tmp_path / "runs.csv"
    planted.trajectories.to_csv(table, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", "--map", str(live), "--table", str(table), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(planted.trajectories)


def test_predict_refuses_bad_input_before_computing(recorded, tmp_path, capsys):
    planted, runs, live = recorded
    backwards = planted.trajectories.iloc[::-1]
    table = tmp_path / "back.csv"
    backwards.to_csv(table, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", "--map", str(live), "--table", str(table), "--out", str(out)]) == 1
    assert "steps must increase" in capsys.readouterr().err
    planted.trajectories.drop(columns=["var_w"]).to_csv(table, index=False)
    assert main(["predict", "--map", str(live), "--table", str(table), "--out", str(out)]) == 1
    assert "seed 0 has no var_w, feature(s) of the map" in capsys.readouterr().err
    assert main(["predict", "--map", str(tmp_path), "--runs", str(runs), "--out", str(out)]) == 1
    assert "no live map" in capsys.readouterr().err
    assert not out.exists()


def test_watch_once_shows_every_seed(recorded, capsys):
    _, runs, live = recorded
    assert main(["watch", str(runs), "--map", str(live), "--once"]) == 0
    text = capsys.readouterr().out
    for seed in ("0", "1", "13"):
        assert f"│ {seed:>4} │" in text or f" {seed} " in text
    assert "converged" in text and "S2" in text


def test_watch_refuses_a_missing_map_or_directory(recorded, tmp_path, capsys):
    _, runs, live = recorded
    assert main(["watch", str(runs), "--map", str(tmp_path / "none")]) == 1
    assert "no live map" in capsys.readouterr().err
    assert main(["watch", str(tmp_path / "nothing"), "--map", str(live)]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_watch_reads_only_new_rows_and_starts_over_when_rows_are_replaced(recorded):
    planted, runs, live = recorded
    path = runs / "seed13" / "metrics.parquet"
    item = Watched(LiveMap.load(live), 13, path)
    item.refresh()
    assert item.run.last.step == 120
    rows = planted.trajectories[planted.trajectories["seed"] == 13]
    rows.head(20).to_parquet(path, index=False)
    item.mtime = 0  # as if the file changed (mtime resolution)
    item.refresh()
    assert item.run.last.step == 200
    rows.head(20).assign(step=rows.head(20)["step"] + 5).to_parquet(path, index=False)
    item.mtime = 0
    item.refresh()
    assert item.run.last.step == 205 and item.error is None
    assert set(FEATURES) <= set(rows.columns)
