"""Code digests: a rule's digest covers exactly the package modules its script reaches."""

import shutil
from pathlib import Path

from trainmap import provenance

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


def names(script: str) -> set[str]:
    return {str(p.relative_to(provenance.PACKAGE_DIR)) for p in provenance.local_imports(script)}


def test_training_reaches_metrics_and_tasks_but_not_the_hmm():
    reached = names(SCRIPTS / "train_run.py")
    assert {"metrics.py", "train.py", "models.py", "tasks/sparse_parity.py"} <= reached
    assert {"io.py", "hyperparameters.py", "__init__.py", "tasks/__init__.py"} <= reached
    assert not {"hmm.py", "maps.py", "plots.py"} & reached


def test_imports_are_followed_transitively():
    # collect_trajectories imports trajectories, which imports tables.
    assert "tables.py" in names(SCRIPTS / "collect_trajectories.py")


def test_digest_changes_with_an_imported_module_only(tmp_path, monkeypatch):
    package = tmp_path / "trainmap"
    shutil.copytree(provenance.PACKAGE_DIR, package)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", package)
    script = SCRIPTS / "train_run.py"
    before = provenance.code_digest(script)
    (package / "hmm.py").write_text("# not imported by training\n")
    assert provenance.code_digest(script) == before
    metrics = package / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n# an edit\n")
    assert provenance.code_digest(script) != before
