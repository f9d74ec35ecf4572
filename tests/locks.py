"""Reading requirements/lock.txt, requirements/lowest.txt and pyproject.toml's ranges."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
LOWEST = REPO / "requirements" / "lowest.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([0-9][A-Za-z0-9_.+!]*)$")


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file (comments skipped): canonical name ->
    version. Any other requirement line is an error: a lock pins exactly."""
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path.name}:{number}: {line!r} is not name==version"
        name = canonicalize_name(match.group(1))
        assert name not in found, f"{path.name}:{number}: {name} pinned twice"
        found[name] = match.group(2)
    return found


def project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def requirements(*extras: str) -> list[Requirement]:
    """The core requirements and those of the given extras, as declared."""
    declared = project()
    texts = list(declared["dependencies"])
    for extra in extras:
        texts += declared["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]
