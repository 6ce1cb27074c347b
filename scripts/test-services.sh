#!/usr/bin/env bash
# Installs the system packages the test suite starts by itself (Redis, PostgreSQL, Chromium).
# Nothing here starts a service: each test session starts its own on 127.0.0.1 and stops it.
# Idempotent and quiet: it prints nothing when everything is already there, and apt's output only when it fails.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
command -v redis-server >/dev/null || need+=(redis-server)  # tests/support/redis_server.py (rate limits)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      echo "could not install: ${need[*]}" >&2
      exit 1
    fi
    rm -f "$log"
  else
    echo "missing system packages: ${need[*]} (install them, then re-run)" >&2
    exit 1
  fi
fi
