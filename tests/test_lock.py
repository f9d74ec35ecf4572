"""The lock, the ranges and the lowest versions stay consistent (README "Install").

requirements/lock.txt pins every package of the resolved set once; it satisfies every
range pyproject.toml declares; it is complete (every package the core and the extras
need, following each installed package's own requirements, is in it, and nothing else);
and it is what these tests run with. requirements/lowest.txt pins the lower bounds of
what trainmap.record uses, which .ci/run installs. envs/*.yaml: tests/test_envs.py.
"""

import importlib.metadata
import subprocess

from locks import LOCK, LOWEST, REPO, pins, project, requirements
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

EXTRAS = ("workflow", "test", "hf", "lightning")
# Upper bounds are declared only where a release is known to break: none is, so far.
KNOWN_TO_BREAK: dict[str, str] = {}


def closure(roots: list[Requirement], extras: tuple[str, ...] = ()) -> set[str]:
    """Canonical names of every distribution ``roots`` need, through the installed
    packages' own requirements (markers evaluated here, with the extras asked of each)."""
    needed: set[tuple[str, frozenset]] = set()
    queue = [(r, frozenset(r.extras)) for r in roots if r.marker is None or r.marker.evaluate()]
    while queue:
        requirement, asked = queue.pop()
        name = canonicalize_name(requirement.name)
        if (name, asked) in needed:
            continue
        needed.add((name, asked))
        for text in importlib.metadata.requires(name) or []:
            child = Requirement(text)
            marker = child.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *asked)):
                queue.append((child, frozenset(child.extras)))
    return {name for name, _ in needed}


def test_the_lock_satisfies_every_declared_range():
    locked = pins(LOCK)
    for requirement in requirements(*project()["optional-dependencies"]):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is declared but {name} is not in {LOCK.name}"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{LOCK.name} has {name}=={locked[name]}, outside pyproject.toml's {requirement}"
        )


def test_the_lock_is_the_whole_resolved_set():
    """Every package the core and all extras need is locked, and no other: pip installs
    nothing unpinned from `-c requirements/lock.txt`."""
    assert set(project()["optional-dependencies"]) == set(EXTRAS)
    needed = closure(requirements(*EXTRAS))
    locked = set(pins(LOCK))
    assert not needed - locked, f"needed but not locked: {sorted(needed - locked)}"
    assert not locked - needed, f"locked but not needed: {sorted(locked - needed)}"


def test_the_tests_run_with_the_locked_versions():
    for name, version in pins(LOCK).items():
        installed = importlib.metadata.version(name)
        # A local label (torch's "+cpu") names the build, not the version.
        assert installed.split("+")[0] == version, f"{name}: {installed}, locked {version}"


def test_make_run_installs_the_workflow_and_no_test_tools():
    workflow = closure(requirements("workflow"))
    tools = {canonicalize_name(r.name) for r in requirements("test")} - workflow
    assert {"pytest", "ruff", "playwright", "lightning", "hypothesis"} <= tools
    plan = subprocess.run(
        ["make", "-n", "-B", ".venv/.workflow", ".venv/.test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "pip install --quiet -c requirements/lock.txt -e '.[workflow]'" in plan
    assert "pip install --quiet -c requirements/lock.txt -e '.[workflow,test]'" in plan


def test_lowest_pins_the_lower_bounds_of_what_the_recorder_uses():
    declared = requirements("hf", "lightning")
    lowest = pins(LOWEST)
    assert set(lowest) == {canonicalize_name(r.name) for r in declared}
    for requirement in declared:
        bounds = [s.version for s in requirement.specifier if s.operator == ">="]
        assert bounds, f"{requirement}: no lower bound"
        name = canonicalize_name(requirement.name)
        assert lowest[name] == bounds[0], f"{LOWEST.name}: {name}=={lowest[name]}, {requirement}"


def test_ranges_have_upper_bounds_only_where_a_release_breaks():
    for requirement in requirements(*EXTRAS):
        name = canonicalize_name(requirement.name)
        capped = [s for s in requirement.specifier if s.operator not in (">=", ">", "!=")]
        assert not capped or name in KNOWN_TO_BREAK, f"{requirement}: an upper bound or pin"
