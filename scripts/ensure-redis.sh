#!/usr/bin/env bash
# Makes sure redis-server and redis-cli are installed: the tests start their
# own servers on free loopback ports. When they are missing and we are root
# with apt-get, installs Debian's packages without starting their service;
# otherwise goes on if a Docker daemon answers (the testcontainers backend),
# else prints the install hint and fails.
set -euo pipefail

hint='redis-server not found: install it (apt-get install -y redis-server) or set REDIS_ADDR (or REDIS_URL) / REDIS_CLUSTER_ADDRS'

have() { command -v "$1" >/dev/null 2>&1; }

if have redis-server && have redis-cli; then
	exit 0
fi

if [ "$(id -u)" = 0 ] && have apt-get; then
	echo "ensure-redis: installing redis-server and redis-tools with apt-get" >&2
	# Only the binaries are needed: keep the package from starting the system
	# service (invoke-rc.d asks policy-rc.d; 101 means "not allowed").
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends redis-server redis-tools </dev/null
	if have redis-server && have redis-cli; then
		exit 0
	fi
fi

# Docker instead: the harness then runs the shared standalone server in a
# container (testcontainers) and skips, saying why, the tests that need
# redis-server processes (cluster, private servers); see README,
# Development.
if [ "${SYNCFANOUT_REDIS_BACKEND:-}" = testcontainers ] || { have docker && docker version >/dev/null 2>&1; }; then
	echo "ensure-redis: no redis-server; Docker answers: the standalone server will run in a container, and tests that need redis-server processes will skip" >&2
	exit 0
fi

if [ -n "${REDIS_URL:-}${REDIS_ADDR:-}" ] && [ -n "${REDIS_CLUSTER_ADDRS:-}" ]; then
	echo "ensure-redis: no redis-server binary; using REDIS_URL or REDIS_ADDR, and REDIS_CLUSTER_ADDRS (tests that need a private server will fail)" >&2
	exit 0
fi

echo "$hint" >&2
exit 1
