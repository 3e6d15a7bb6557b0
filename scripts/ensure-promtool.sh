#!/usr/bin/env bash
# Makes sure promtool is installed: CI checks deploy/prometheus/alerts.yml
# with it (`promtool check rules`, `promtool test rules`). When it is
# missing and we are root with apt-get, installs Debian's prometheus
# package (which ships promtool) without starting its service; otherwise
# prints the install hint and fails.
set -euo pipefail

hint='promtool not found: install it (apt-get install -y prometheus, or a release tarball from https://prometheus.io/download/)'

have() { command -v "$1" >/dev/null 2>&1; }

if have promtool; then
	exit 0
fi

if [ "$(id -u)" = 0 ] && have apt-get; then
	echo "ensure-promtool: installing prometheus (for promtool) with apt-get" >&2
	# Only promtool is needed: keep the package from starting the system
	# service (invoke-rc.d asks policy-rc.d; 101 means "not allowed").
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends prometheus </dev/null
	if have promtool; then
		exit 0
	fi
fi

echo "$hint" >&2
exit 1
