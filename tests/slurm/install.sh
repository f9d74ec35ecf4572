#!/usr/bin/env bash
# Install what tests/slurm/start.sh needs: Debian's slurmctld, slurmd, slurm-client, munge.
# Idempotent and quiet: does nothing when they are installed. Never fails the caller: where
# it cannot install (not root, no apt-get, no archive), it says why on stderr and exits 0,
# and tests/test_slurm.py then skips with the reason.
set -uo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "tests/slurm/install.sh: $*; the SLURM tests will be skipped" >&2; }

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null || { say "no apt-get"; exit 0; }
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    say "not root"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    rm -f "$log"
    say "could not install ${missing[*]}"
    exit 0
fi
rm -f "$log"
# The packages enable their services; the tests start their own daemons, so stop any the
# package scripts started (no-ops in containers without systemd).
for service in slurmctld slurmd munge; do
    "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
done
exit 0
