#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed: the browser test of
# the web console (integration/browser) drives Debian's chromium package
# with chromedp. When it is missing and we are root with apt-get, installs
# it; otherwise prints the install hint and fails. CHROMIUM may name
# another binary (the test uses it too).
set -euo pipefail

hint='chromium not found: install it (apt-get install -y chromium) or set CHROMIUM to a Chromium or Chrome binary'

have() { command -v "$1" >/dev/null 2>&1; }

if [ -n "${CHROMIUM:-}" ] && [ -x "${CHROMIUM}" ]; then
	exit 0
fi
if have chromium || have chromium-browser; then
	exit 0
fi

if [ "$(id -u)" = 0 ] && have apt-get; then
	echo "ensure-chromium: installing chromium with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium </dev/null
	if have chromium; then
		exit 0
	fi
fi

echo "$hint" >&2
exit 1
