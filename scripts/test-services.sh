#!/usr/bin/env bash
# System packages the test suite needs beyond the venv: headless Chromium (the endpoint page test) and Virtuoso Open
# Source (the second SPARQL store of tests/test_virtuoso.py: virtuoso-t and its isql-vt client).
# Idempotent: does nothing when they are already present.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
{ command -v virtuoso-t >/dev/null 2>&1 && command -v isql-vt >/dev/null 2>&1; } || need+=(virtuoso-opensource)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} (for the test suite)"
  apt-get update -qq >/dev/null
  # The package's own service is not started (policy-rc.d in containers); tests start their own instances.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "error: ${need[*]} missing and cannot be installed here (need root + apt-get)" >&2
  exit 1
fi
