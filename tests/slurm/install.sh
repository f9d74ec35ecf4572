#!/usr/bin/env bash
# Install the single-node SLURM cluster that tests/test_slurm.py starts (Debian/Ubuntu).
# Idempotent and quiet: does nothing when the daemons are already installed. Needs root
# (or passwordless sudo); without it, it says so and exits 0, and the test skips itself.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "tests/slurm/install.sh: no apt-get; the SLURM test will be skipped" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "tests/slurm/install.sh: not root; the SLURM test will be skipped" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages enable their services; the test starts its own daemons, so stop any
# that the package scripts started (no-ops in containers without systemd).
for service in slurmctld slurmd munge; do
    "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
done
