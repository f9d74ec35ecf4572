#!/usr/bin/env bash
# Install what tests/slurm/start.sh needs: Debian's slurmctld, slurmd, slurm-client, munge.
# Idempotent, quiet, never fails the caller (tests/apt_install.sh): without them
# tests/test_slurm.py skips with the reason.
set -uo pipefail
"$(dirname "$0")/../apt_install.sh" tests/slurm/install.sh slurmctld slurmd slurm-client munge ||
    exit 0
# The packages enable their services; the tests start their own daemons, so stop any the
# package scripts started (no-ops in containers without systemd).
sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo -n)
for service in slurmctld slurmd munge; do
    "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
done
exit 0
