"""Code digests: a rule's digest covers the substance of the package code its script reaches."""

import shutil
from pathlib import Path

from trainmap.io import provenance

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "workflow" / "scripts"


def names(script: str) -> set[str]:
    return {str(p.relative_to(provenance.PACKAGE_DIR)) for p in provenance.local_imports(script)}


def test_training_reaches_metrics_and_tasks_but_not_the_hmm():
    reached = names(SCRIPTS / "train_run.py")
    assert {"metrics/weights.py", "training/loop.py", "training/vectorized.py"} <= reached
    assert {"tasks/sparse_parity/task.py", "tasks/modular_addition/model.py"} <= reached
    assert {"io/files.py", "tasks/params.py", "__init__.py", "tasks/__init__.py"} <= reached
    assert not {"hmm/fit.py", "maps/graph.py", "figures/plots.py"} & reached


def test_imports_are_followed_transitively():
    # fit_hmm imports hmm.fit, which imports trainmap.seeding.
    assert "seeding.py" in names(SCRIPTS / "fit_hmm.py")


def copy_package(tmp_path, monkeypatch) -> Path:
    package = tmp_path / "trainmap"
    shutil.copytree(provenance.PACKAGE_DIR, package)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", package)
    return package


def test_digest_changes_with_an_imported_module_only(tmp_path, monkeypatch):
    package = copy_package(tmp_path, monkeypatch)
    script = SCRIPTS / "train_run.py"
    before = provenance.code_digest(script)
    (package / "hmm" / "fit.py").write_text("X = 1  # not imported by training\n")
    assert provenance.code_digest(script) == before
    metrics = package / "metrics" / "weights.py"
    metrics.write_text(metrics.read_text() + "\nEPSILON = 1e-12\n")
    assert provenance.code_digest(script) != before


def test_comments_docstrings_and_moves_keep_the_digest(tmp_path, monkeypatch):
    """Re-laying out the package reruns nothing: only a change of substance does."""
    package = copy_package(tmp_path, monkeypatch)
    script = SCRIPTS / "fit_hmm.py"
    before = provenance.code_digest(script)
    fit = package / "hmm" / "fit.py"
    source = fit.read_text()
    fit.write_text('"""Another docstring."""\n# a comment\n' + source.split('"""', 2)[2])
    assert provenance.code_digest(script) == before
    # move derive_seed out of seeding.py into a new module that seeding.py imports
    seeding = package / "seeding.py"
    text = seeding.read_text()
    head, _, body = text.partition("def derive_seed")
    (package / "derived.py").write_text("import hashlib\n\n\ndef derive_seed" + body)
    seeding.write_text(head + "from trainmap.derived import derive_seed  # noqa: F401\n")
    assert provenance.code_digest(script) == before
    fit.write_text(fit.read_text().replace("restarts", "restarts ", 1) + "\nY = 2\n")
    assert provenance.code_digest(script) != before


def clear_memory() -> None:
    """Forget what this process parsed, as a new process would."""
    provenance._source_parts.cache_clear()
    provenance._read_parts.cache_clear()


def test_digests_are_cached_by_file_content(tmp_path, monkeypatch):
    """A start after the first reads each file's parts from the cache folder; an edited
    file has new text, hence a new entry, and a broken entry is parsed again."""
    monkeypatch.setenv("TRAINMAP_CACHE_DIR", str(tmp_path / "cache"))
    package = copy_package(tmp_path, monkeypatch)
    script = SCRIPTS / "fit_hmm.py"
    clear_memory()  # as in a new process
    cold = provenance.code_digest(script)
    entries = sorted(provenance.code_cache_dir().glob("*.json"))
    files = [script, *provenance.local_imports(script)]
    assert len(entries) == len({file.read_text() for file in files})  # one per text
    clear_memory()
    assert provenance.code_digest(script) == cold  # from the folder
    for entry in entries:
        entry.write_text('{"imports": ')  # cut short: parsed again, not trusted
    clear_memory()
    assert provenance.code_digest(script) == cold
    fit = package / "hmm" / "fit.py"
    fit.write_text(fit.read_text() + "\nY = 2\n")
    clear_memory()
    assert provenance.code_digest(script) != cold
    assert len(list(provenance.code_cache_dir().glob("*.json"))) == len(entries) + 1


def test_an_unwritable_cache_folder_only_costs_a_parse(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("TRAINMAP_CACHE_DIR", str(tmp_path / "cache"))
    clear_memory()
    expected = provenance.code_digest(SCRIPTS / "decode_states.py")
    monkeypatch.setenv("TRAINMAP_CACHE_DIR", str(blocked))
    clear_memory()
    assert provenance.code_digest(SCRIPTS / "decode_states.py") == expected
