#!/usr/bin/env bash
# Installs the system packages the test suite starts by itself (Redis, PostgreSQL, Chromium).
# Nothing here starts a service: each test session starts its own on 127.0.0.1 and stops it.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them, then re-run)" >&2
    exit 1
  fi
fi
