#!/usr/bin/env bash
# redis-server, redis-cli and redis-benchmark (Debian) for healcache-server's tests and bench;
# installed only when missing. Nothing is started: tests start their own servers on loopback.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# The package lists once, if this machine has none yet.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $sudo apt-get update
fi
$sudo apt-get install -y redis-server redis-tools || { $sudo apt-get update && $sudo apt-get install -y redis-server redis-tools; }
