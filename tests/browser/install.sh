#!/usr/bin/env bash
# Install Debian's chromium for tests/figures/test_browser.py (the interactive pages in a real
# browser). Idempotent, quiet, never fails the caller (tests/apt_install.sh): without it the
# browser tests skip, naming the missing binary.
"$(dirname "$0")/../apt_install.sh" tests/browser/install.sh chromium
exit 0
