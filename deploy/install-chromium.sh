#!/usr/bin/env bash
# Headless Chromium for the review console's browser tests: Debian's package, installed when missing
# and we are root (CI and `make setup`); otherwise a note, and those tests skip.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: chromium missing and not root with apt-get; the browser tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium fonts-dejavu-core >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-dejavu-core >/dev/null; } \
  || echo "install-chromium: apt-get could not install chromium; the browser tests will skip" >&2
command -v chromium >/dev/null 2>&1 && echo "install-chromium: $(chromium --version 2>/dev/null)"
exit 0
