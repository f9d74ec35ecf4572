"""``trainmap watch RUNS_DIR --map results/<setting>``: every seed being recorded, live.

A table refreshed in the terminal (rich): per seed its last step, most likely state and
kind, P(detour or dead end), P(dead end), the predicted convergence step with its 80%
interval, and how long ago its file last changed. Each refresh reads only the files that
changed and feeds their new rows to that seed's ``LiveRun``; a file whose rows were
replaced (a resumed run redoing steps) is read again from its start. The map, and the
directory, are checked before the first refresh. ``--once`` prints the table once.
"""

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from trainmap.errors import CorruptFileError, LiveMapError
from trainmap.io.files import read_parquet
from trainmap.io.tables import RUN_FILE, TableError, find_recorded_runs
from trainmap.live.livemap import LiveMap, LiveRun, Prediction


class Watched:
    """One seed's file and its run on the map."""

    def __init__(self, live: LiveMap, seed: int, path: Path):
        self.live, self.seed, self.path = live, seed, path
        self.run: LiveRun = live.run(seed)
        self.mtime = 0.0
        self.error: str | None = None

    def refresh(self) -> None:
        mtime = self.path.stat().st_mtime
        if mtime == self.mtime:
            return
        self.mtime = mtime
        try:
            rows = read_parquet(self.path)
        except CorruptFileError as error:
            self.error = str(error)
            return
        last = self.run.last
        if last is not None and not (rows["step"] == last.step).any():
            self.run = self.live.run(self.seed)  # rows replaced: start over
            last = None
        new = rows if last is None else rows[rows["step"] > last.step]
        try:
            if last is None:
                self.live.check_columns(rows.columns, f"seed {self.seed} ({self.path})")
            for record in new.to_dict("records"):
                self.run.update(int(record["step"]), record)
            self.error = None
        except LiveMapError as error:
            self.error = str(error)


def table(live: LiveMap, watched: dict[int, Watched], now: float) -> Table:
    grid = Table(title=f"trainmap watch: {live.source}", caption="interval: 80% of the fit "
                 "runs' convergence steps; ? = later than any fit run was seen")  # fmt: skip
    for name in ("seed", "step", "state", "P(detour|dead end)", "P(dead end)",
                 "converges at", "interval", "updated"):  # fmt: skip
        grid.add_column(name, justify="right" if name != "state" else "left")
    for seed in sorted(watched):
        item = watched[seed]
        age = f"{now - item.mtime:.0f} s ago"
        if item.error:
            grid.add_row(str(seed), "", f"[red]{item.error}[/red]", "", "", "", "", age)
            continue
        p = item.run.last
        if p is None:
            grid.add_row(str(seed), "", "no rows yet", "", "", "", "", age)
            continue
        grid.add_row(str(seed), str(p.step), _state(p, live.kinds), _share(p.p_detour),
                     _share(p.p_dead_end), *_outlook(p), age)  # fmt: skip
    return grid


def _state(p: Prediction, kinds: list[str]) -> str:
    kind = kinds[p.state]
    colour = {"detour": "red", "dead_end": "magenta"}.get(kind)
    text = f"S{p.state} {kind}".strip()
    return f"[{colour}]{text}[/{colour}]" if colour else text


def _share(value: float) -> str:
    return f"[bold red]{value:.2f}[/bold red]" if value >= 0.5 else f"{value:.2f}"


def _outlook(p: Prediction) -> tuple[str, str]:
    if p.converged_at is not None:
        return (f"converged {p.converged_at}", "")

    def show(value):
        return "?" if value is None else f"{value:.0f}"

    return (show(p.predicted_convergence_step), f"[{show(p.low)}, {show(p.high)}]")


def scan(live: LiveMap, directory: str, watched: dict[int, Watched]) -> None:
    """Add the seeds that appeared, refresh every file."""
    for path in Path(directory).glob(f"seed*/{RUN_FILE}"):
        seed = path.parent.name.removeprefix("seed")
        if seed.isdigit() and int(seed) not in watched:
            watched[int(seed)] = Watched(live, int(seed), path)
    for item in watched.values():
        item.refresh()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trainmap watch", description=__doc__.split("\n")[0])
    parser.add_argument("runs", metavar="RUNS_DIR", help="the Recorder's directory")
    parser.add_argument("--map", required=True, help="results/<setting> (with its live.json)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between refreshes")
    parser.add_argument("--once", action="store_true", help="print the table once and exit")
    args = parser.parse_args(argv)
    try:
        live = LiveMap.load(args.map)
        if not Path(args.runs).is_dir():
            raise TableError(f"RUNS_DIR: {args.runs}: no such directory")
        if args.once:
            find_recorded_runs(args.runs, "RUNS_DIR")  # nothing recorded yet: say so
    except (LiveMapError, TableError) as error:
        print(f"trainmap watch: {error}", file=sys.stderr)
        return 1
    watched: dict[int, Watched] = {}
    console = Console()
    scan(live, args.runs, watched)
    if args.once:
        console.print(table(live, watched, time.time()))
        return 0
    try:
        with Live(table(live, watched, time.time()), console=console, auto_refresh=False) as view:
            while True:
                time.sleep(args.every)
                scan(live, args.runs, watched)
                view.update(table(live, watched, time.time()), refresh=True)
    except KeyboardInterrupt:
        return 0
