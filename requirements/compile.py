"""Write requirements/lock.txt: every package of trainmap's resolved set, pinned.

    python requirements/compile.py            # (make lock) keep the locked versions,
                                              # resolve only what is new or changed
    python requirements/compile.py --upgrade  # the newest versions the ranges allow

pip's own resolver does the work (``pip install --dry-run --report``, pip >= 22.2, with
this Python and pip's configuration, so pip's local torch builds count), for
``trainmap[workflow,test,hf,lightning]``; the lock lists every package it would install,
as pip-tools writes them (``name==version`` and ``# via`` the packages that need it).
The result holds for the Python and platform it was made on (the header says which).
"""

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
EXTRAS = ("workflow", "test", "hf", "lightning")
HEADER = """\
# trainmap's lock: every package that pip resolves for trainmap[{extras}], pinned
# (CPython {python}, {system} {machine}). The workflow's results are reproduced with exactly
# these versions: make run installs the workflow's share of it, make test the workflow's
# and the tests', .ci/run both, each as `pip install -c requirements/lock.txt -e '.[...]'`;
# envs/*.yaml repeat its versions for conda. pyproject.toml holds the ranges
# trainmap works with; tests/test_lock.py checks that this file satisfies them, is complete
# and is what the tests run with. Regenerate with `make lock` (requirements/compile.py).
"""


def resolve(upgrade: bool) -> list[dict]:
    """pip's resolution of trainmap with every extra: the report's ``install`` entries."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--quiet", "--report", str(report)]
        if not upgrade and LOCK.exists():
            command += ["--constraint", str(LOCK)]
        command.append(f"{ROOT}[{','.join(EXTRAS)}]")
        subprocess.run(command, check=True)
        return json.loads(report.read_text())["install"]


def needed_by(installs: list[dict]) -> dict[str, set[str]]:
    """For each package, the packages (or ``trainmap[extra]``) whose requirements, with
    the extras asked of them, name it."""
    metadata = {canonicalize_name(i["metadata"]["name"]): i["metadata"] for i in installs}
    parents: dict[str, set[str]] = defaultdict(set)
    queue = [("trainmap", frozenset(EXTRAS))]
    seen = set()
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in metadata[name].get("requires_dist") or []:
            requirement = Requirement(text)
            marker = requirement.marker
            asked = [e for e in ("", *extras) if marker is None or marker.evaluate({"extra": e})]
            if not asked:
                continue
            child = canonicalize_name(requirement.name)
            if name == "trainmap" and "" not in asked:  # a requirement of an extra
                parents[child] |= {f"trainmap[{extra}]" for extra in asked}
            else:
                parents[child].add(name)
            queue.append((child, frozenset(requirement.extras)))
    return parents


def lock_text(installs: list[dict]) -> str:
    parents = needed_by(installs)
    header = HEADER.format(
        extras=",".join(EXTRAS),
        python=platform.python_version(),
        system=platform.system(),
        machine=platform.machine(),
    )
    lines = [header]
    for install in sorted(installs, key=lambda i: canonicalize_name(i["metadata"]["name"])):
        name = canonicalize_name(install["metadata"]["name"])
        if name == "trainmap":
            continue
        lines.append(f"{name}=={install['metadata']['version']}")
        lines += [f"    # via {parent}" for parent in sorted(parents[name])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upgrade", action="store_true", help="ignore the current lock")
    args = parser.parse_args()
    text = lock_text(resolve(args.upgrade))
    LOCK.write_text(re.sub(r"\n{3,}", "\n\n", text))
    print(f"wrote {LOCK.relative_to(ROOT)}: {text.count('==')} packages")


if __name__ == "__main__":
    main()
