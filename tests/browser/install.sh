#!/usr/bin/env bash
# Install Debian's chromium for tests/figures/test_browser.py (the interactive pages in a real
# browser). Idempotent and quiet: does nothing when it is installed. Never fails the caller:
# where it cannot install (not root, no apt-get, no archive) it says why on stderr and exits
# 0, and the browser tests then skip, naming the missing binary.
set -uo pipefail

say() { echo "tests/browser/install.sh: $*; the browser tests will be skipped" >&2; }

command -v chromium >/dev/null && exit 0
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
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    say "could not install chromium"
fi
rm -f "$log"
exit 0
