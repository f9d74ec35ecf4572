"""The SLURM test cluster, one per session, used by tests/test_slurm.py (a session
fixture registered by conftest.py; every SLURM test is in that module, which
pytest-xdist's --dist loadfile keeps on one worker, so one worker starts it once).

``slurm_cluster`` starts a single-node cluster on localhost (tests/slurm/start.sh: munged,
slurmctld, slurmd from Debian's packages, one fake GPU) and stops it by PID at the end of
the session. Skipped, with the reason, where the cluster cannot start: not root, or the
packages are missing (`tests/slurm/install.sh` installs them; .ci/run calls it).
"""

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = REPO / "tests" / "slurm"
MARKER = "# written by trainmap tests/slurm/start.sh"
DAEMONS = ["munged", "slurmctld", "slurmd"]
TOOLS = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol"]
# One test cluster per machine at a time: /etc/slurm/slurm.conf and the ports are global.
LOCK = Path("/tmp/trainmap-slurm-test.lock")
LOCK_WAIT_S = 900


def cannot_start_reason() -> str | None:
    """Why this machine cannot run the test cluster, or None if it can."""
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (slurmd runs jobs as their user)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"SLURM packages missing ({', '.join(missing)}): run tests/slurm/install.sh"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and MARKER not in conf.read_text():
        return f"{conf} belongs to a real SLURM installation; not replacing it"
    return None


def hold_lock():
    """Wait for other test clusters on this machine to finish (another checkout's run)."""
    handle = LOCK.open("w")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                pytest.skip(f"another SLURM test cluster held {LOCK} for {LOCK_WAIT_S} s")
            time.sleep(2)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running single-node cluster; yields its state directory (logs under log/)."""
    reason = cannot_start_reason()
    if reason:
        pytest.skip(reason)
    lock = hold_lock()
    state = tmp_path_factory.mktemp("slurm_state")
    try:
        started = subprocess.run(
            [SLURM_DIR / "start.sh", state], capture_output=True, text=True, timeout=120
        )
        if started.returncode != 0:
            pytest.skip(f"the SLURM test cluster did not start: {started.stderr.strip()}")
        daemons = [int((state / f"{name}.pid").read_text()) for name in DAEMONS]
        yield state
    finally:
        subprocess.run([SLURM_DIR / "stop.sh", state], capture_output=True, timeout=120)
        lock.close()
    # Nothing left behind: the daemons are gone and so is the cluster's config.
    assert not [pid for pid in daemons if Path(f"/proc/{pid}").exists()]
    assert not [f for f in ("slurm.conf", "gres.conf") if (Path("/etc/slurm") / f).exists()]


def slurm_job(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as key=value pairs (the cluster keeps jobs for MinJobAge)."""
    text = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", text))
