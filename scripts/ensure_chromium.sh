#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (the PyPI package): Playwright's
# own browser download is never used. Installs Chromium when it is missing and this is root on
# a Debian-like system; otherwise says how to install it (the browser tests then fail loudly).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Koho: installing Chromium for the browser tests (apt-get)…"
  apt-get update -qq
  # a Japanese font too, so that screenshots of the pages show their text
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null
  exit 0
fi
echo "Koho: Chromium is missing; install it (Debian/Ubuntu: sudo apt-get install chromium) for the browser tests" >&2
