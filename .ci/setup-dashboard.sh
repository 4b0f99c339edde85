#!/usr/bin/env bash
# Debian's chromium for `make test-dashboard`: the dashboard (ops/dashboard) is opened in a real
# headless browser, which takes a screenshot and dumps the rendered page. Installed only when
# missing. The browser is only ever started by the tests, headless, on a local file.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# The package lists once, if this machine has none yet.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $sudo apt-get update
fi
# Without recommends: they pull desktop pieces (a keyring, notification daemons) a headless run
# does not use. Fonts come as dependencies, so text in the screenshot renders.
$sudo apt-get install -y --no-install-recommends chromium \
  || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends chromium; }
