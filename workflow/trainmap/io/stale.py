"""Results of a setting whose runs are being redone are removed first.

Snakemake reruns a setting's first job when its inputs change (a replaced table, a new
seed, edited code). If that rerun fails, the jobs after it never run, and the setting's
old map.json, regression.json, figures and results/summary.md used to stay in place,
looking current although they describe the old inputs. So the first job of a setting
(train_run, compute_checkpoint_metrics, collect_trajectories) removes everything derived
from the setting's runs before it starts: after a failed rerun the setting has no results
rather than stale ones. The runs themselves (``runs/``, with the resumable states) and the
tokenizer are inputs, not results, and stay, as does the function-space PCA (``pca/``, rule
fit_function_space, which runs beside or before collect_trajectories and is redone with
the runs' probe losses); a successful rerun rebuilds the rest.
"""

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

# Under results/<setting>/: made before the runs (tokenizer.json), the runs themselves, or
# the function-space PCA (pca/, rule fit_function_space: collect_trajectories may read it,
# and removing it while it is written beside collect_trajectories would race).
NOT_DERIVED = ("runs", "tokenizer.json", "pca")
SUMMARY = "summary.md"  # results/summary.md: every setting's headline


def remove_stale_results(setting_dir: str | Path) -> list[Path]:
    """Remove what ``setting_dir`` (``results/<setting>``) holds beyond its runs, and the
    summary across settings beside it; return what was removed (also logged)."""
    setting_dir = Path(setting_dir)
    removed = []
    if setting_dir.is_dir():
        for path in sorted(setting_dir.iterdir()):
            if path.name in NOT_DERIVED:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    summary = setting_dir.parent / SUMMARY
    if summary.is_file():
        summary.unlink()
        removed.append(summary)
    if removed:
        log.info(
            "removed results of the previous inputs (rebuilt when this run succeeds): %s",
            ", ".join(str(p) for p in removed),
        )
    return removed


def orphan_resume_states(results: str | Path, seeds: dict[str, list[int]]) -> list[Path]:
    """``results/<setting>/runs/.resume-seed<seed>/`` folders no configured seed will use:
    the seed left its setting's ``seeds``, or the setting left the config. A job removes
    its seeds' states once its outputs are complete; these are left by jobs that never
    completed. seeds: setting name -> its seeds (trainmap.config.settings)."""
    orphans = []
    for folder in sorted(Path(results).glob("*/runs/.resume-seed*")):
        setting = folder.parents[1].name
        seed = folder.name.removeprefix(".resume-seed")
        if not seed.isdigit() or int(seed) not in seeds.get(setting, []):
            orphans.append(folder)
    return orphans
