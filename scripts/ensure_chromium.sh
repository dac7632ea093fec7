#!/usr/bin/env bash
# Make sure a headless Chromium is on PATH for the browser test (tests/workbench/test_browser_rating.py).
#
#   scripts/ensure_chromium.sh
#
# Does nothing when chromium (or chromium-browser, google-chrome) is found. Otherwise, as root on
# a machine with apt, installs Debian's `chromium` package (about 15 s from a nearby mirror).
# Anywhere else it says so and exits 0: the browser test then skips, naming this script.
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: installing Debian's chromium package for the browser test..." >&2
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
        >/tmp/ddft-apt-chromium.log 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q --no-install-recommends chromium >>/tmp/ddft-apt-chromium.log 2>&1; }; then
        exit 0
    fi
    echo "ensure_chromium: apt-get could not install chromium (see /tmp/ddft-apt-chromium.log);" \
         "the browser test will skip" >&2
    exit 0
fi
echo "ensure_chromium: no Chromium and no way to install it here (needs root and apt);" \
     "the browser test will skip" >&2
