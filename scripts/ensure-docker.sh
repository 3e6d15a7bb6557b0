#!/usr/bin/env bash
# A private Docker daemon for the testcontainers backend of the test
# harness (internal/redistest), as CI runs it:
#
#   eval "$(bash scripts/ensure-docker.sh start DIR)"   # prints DOCKER_HOST=...
#   ...
#   bash scripts/ensure-docker.sh stop DIR
#
# start installs Debian's docker.io with apt-get when dockerd is missing
# and we are root (without starting the system service), then starts a
# dockerd of its own with everything under DIR: --data-root, --exec-root,
# --pidfile, its unix socket, its log. It has no bridge and touches no
# iptables: the harness's containers use the host's network and bind
# 127.0.0.1 only. It waits until the daemon answers and prints the
# DOCKER_HOST line. stop ends that dockerd by the pid in DIR (never by
# name: another daemon may run on the machine), waits for it, and removes
# DIR.
set -euo pipefail

usage() {
	echo "usage: ensure-docker.sh start|stop DIR" >&2
	exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")
have() { command -v "$1" >/dev/null 2>&1; }

# answers SOCK: the daemon at SOCK answers GET /_ping.
answers() {
	if have curl; then
		curl -fsS --max-time 2 --unix-socket "$1" http://docker/_ping >/dev/null 2>&1
	else
		docker -H "unix://$1" version >/dev/null 2>&1
	fi
}

start() {
	if ! have dockerd; then
		if [ "$(id -u)" = 0 ] && have apt-get; then
			echo "ensure-docker: installing docker.io with apt-get" >&2
			# Only the binaries: keep the package from starting the system
			# service (invoke-rc.d asks policy-rc.d; 101 means "not allowed").
			local policy=""
			if [ ! -e /usr/sbin/policy-rc.d ]; then
				printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
				chmod 755 /usr/sbin/policy-rc.d
				policy=/usr/sbin/policy-rc.d
			fi
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq >&2
			apt-get install -y -qq --no-install-recommends docker.io </dev/null >&2
			[ -z "$policy" ] || rm -f "$policy"
		fi
		if ! have dockerd; then
			echo "ensure-docker: dockerd not found and not installable here (needs root and apt-get)" >&2
			exit 1
		fi
	fi
	mkdir -p "$dir/data" "$dir/exec"
	local sock="$dir/docker.sock"
	# setsid: its own session, so that nothing aimed at the caller's
	# process group reaches it; it is stopped by pid.
	setsid dockerd \
		--bridge=none --iptables=false --ip6tables=false \
		--data-root "$dir/data" --exec-root "$dir/exec" \
		--pidfile "$dir/dockerd.pid" --host "unix://$sock" \
		</dev/null >"$dir/dockerd.log" 2>&1 &
	echo $! >"$dir/dockerd.launch.pid"
	for _ in $(seq 300); do
		if [ -S "$sock" ] && answers "$sock"; then
			echo "ensure-docker: dockerd $(cat "$dir/dockerd.pid") answers on unix://$sock" >&2
			echo "DOCKER_HOST=unix://$sock"
			return 0
		fi
		if ! kill -0 "$(cat "$dir/dockerd.launch.pid")" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "ensure-docker: dockerd did not answer on unix://$sock; its log:" >&2
	tail -n 30 "$dir/dockerd.log" >&2 || true
	stop
	exit 1
}

stop() {
	local pid=""
	if [ -s "$dir/dockerd.pid" ]; then
		pid=$(cat "$dir/dockerd.pid")
	elif [ -s "$dir/dockerd.launch.pid" ]; then
		pid=$(cat "$dir/dockerd.launch.pid")
	fi
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ]; then
		kill -TERM "$pid" 2>/dev/null || true
		# dockerd stops its containers and its containerd before it exits.
		for _ in $(seq 300); do
			[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ] || break
			sleep 0.1
		done
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ]; then
			echo "ensure-docker: dockerd $pid still runs after 30 s; SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	# Overlay mounts of a daemon that did not clean up would make rm fail.
	if [ -d "$dir" ]; then
		{ grep -o " $dir/[^ ]*" /proc/self/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
		rm -rf "$dir"
	fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
