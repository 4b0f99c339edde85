#!/usr/bin/env bash
# promtool (Debian's `prometheus` package) for `make test-alerts`: checks and unit-tests the alert
# rules in ops/prometheus. Installed only when missing. Only promtool is used: the Prometheus
# server the package also ships must not start, since it would listen on every interface.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# Debian starts a packaged daemon at install unless policy-rc.d says no (101); container images
# usually ship one, a plain machine does not, so one is put in place for this install only.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
# The package lists once, if this machine has none yet.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $sudo apt-get update
fi
# Without recommends: they pull node-exporter, another daemon nothing here needs.
$sudo apt-get install -y --no-install-recommends prometheus \
  || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends prometheus; }
