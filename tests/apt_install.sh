#!/usr/bin/env bash
# Install Debian packages for a group of tests: tests/apt_install.sh LABEL PACKAGE...
# Idempotent and quiet: does nothing when they are installed. Never fails the caller: where
# it cannot install (not root, no apt-get, no archive) it says why on stderr and exits 2,
# and the tests that need the packages skip, naming what is missing. Exit 0: installed.
set -uo pipefail

label=$1
shift
say() { echo "$label: $*; those tests will be skipped" >&2; }

missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null || { say "no apt-get"; exit 2; }
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || { say "not root"; exit 2; }
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    rm -f "$log"
    say "could not install ${missing[*]}"
    exit 2
fi
rm -f "$log"
exit 0
