"""A training job's bundle: each seed's files, and a manifest that marks the bundle complete.

A training job writes ``<bundle>/seed<seed>/{metrics.parquet, model.safetensors}`` for
its seeds and then, last, ``<bundle>/complete.json`` with every file's SHA-256. Only a
bundle with a matching manifest is unpacked: after Ctrl-C and Snakemake's
``--cleanup-metadata`` hint, Snakemake takes a half-written bundle for complete, and
without the manifest a rerun would copy seeds out of it (or fail on a missing file).

Standard library only: ``unpack_run`` and ``unpack_probe_losses`` run ``unpack_seed`` as a
shell command (``python -m trainmap.training.unpack``), ~0.05 s a seed. A
``script:`` would import Snakemake and the package (~1 s), and a ``run:`` block is worse:
the local executor starts a whole Snakemake process for it (~3.5 s a seed, 50 of the
default run's jobs).
"""

import json
import shutil
from pathlib import Path

from trainmap.io.atomic import atomic_path
from trainmap.io.columns import PROBE_FILE
from trainmap.io.provenance import file_sha256

MANIFEST = "complete.json"
RUN_FILES = ("metrics.parquet", "model.safetensors")


class BundleError(RuntimeError):
    """A bundle that is not a finished training job's; the message says what to do."""


def write_manifest(bundle: str | Path, seeds: list[int]) -> None:
    """Mark ``bundle`` complete: the digest of every seed's files, written atomically."""
    bundle = Path(bundle)
    files = {
        f"seed{seed}/{name}": file_sha256(bundle / f"seed{seed}" / name)
        for seed in seeds
        for name in RUN_FILES + (PROBE_FILE,)
        if name != PROBE_FILE or (bundle / f"seed{seed}" / name).is_file()
    }
    with atomic_path(bundle / MANIFEST) as tmp:
        tmp.write_text(json.dumps({"seeds": seeds, "files": files}, indent=2) + "\n")


def _unfinished(bundle: Path, why: str) -> BundleError:
    return BundleError(
        f"{bundle}: {why}; it was left by a training job that did not finish (killed, or "
        f"Ctrl-C followed by --cleanup-metadata). Remove it (rm -r {bundle}) and run "
        "Snakemake again: the job resumes from its saved state and does not retrain "
        "finished seeds"
    )


def unpack_seed(
    bundle: str | Path, seed: int, outputs: list[str | Path], log: str | Path | None = None
) -> None:
    """Copy ``seed``'s files out of a complete bundle, each checked against the manifest.

    outputs: the seed's result files; each is ``seed<seed>/<its name>`` in the bundle
    (``metrics.parquet``, ``model.safetensors``, ``probe_losses.parquet``). log: the
    rule's log, which gets a line per file or the error (this runs inside Snakemake's
    process, whose logging is not the job's).
    """
    bundle = Path(bundle)
    lines = []
    try:
        digests = _manifest_files(bundle, seed)
        for destination in map(Path, outputs):
            source = bundle / f"seed{seed}" / destination.name
            if not source.is_file() or file_sha256(source) != digests.get(destination.name):
                raise _unfinished(bundle, f"{source} is missing or differs from {MANIFEST}")
            with atomic_path(destination) as tmp:
                shutil.copyfile(source, tmp)
            lines.append(f"{destination}: {source}, sha256 {digests[destination.name]}")
    except BundleError as error:
        lines.append(f"failed: {error}")
        raise
    finally:
        if log is not None:
            with atomic_path(log) as tmp:
                tmp.write_text("".join(f"{line}\n" for line in lines))


def _manifest_files(bundle: Path, seed: int) -> dict[str, str]:
    """File name -> SHA-256 of ``seed``'s files, as the bundle's manifest lists them."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except FileNotFoundError:
        raise _unfinished(bundle, f"no {MANIFEST}") from None
    except ValueError as error:
        raise _unfinished(bundle, f"unreadable {MANIFEST} ({error})") from None
    if seed not in manifest["seeds"]:
        raise _unfinished(bundle, f"seed {seed} is not among its seeds {manifest['seeds']}")
    prefix = f"seed{seed}/"
    return {
        path.removeprefix(prefix): digest
        for path, digest in manifest["files"].items()
        if path.startswith(prefix)
    }
