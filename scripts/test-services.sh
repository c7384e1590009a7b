#!/usr/bin/env bash
# System packages the test suite needs beyond the venv (headless Chromium for the endpoint page test).
# Idempotent: does nothing when they are already present.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless browser for the endpoint page test)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: chromium is missing and cannot be installed here (need root + apt-get)" >&2
    exit 1
  fi
fi
