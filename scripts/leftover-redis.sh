#!/usr/bin/env bash
# Prints, one a line, the pids listed in the file $1 (written through
# internal/pidrecord by the servers this repository's tests start) that are
# still live redis-server processes (zombies left out: a killed process
# whose parent is gone may stay a zombie where init does not reap). Servers
# started by anything else on the machine are never listed.
set -euo pipefail
file=${1:?usage: leftover-redis.sh PIDFILE}
[ -f "$file" ] || exit 0
sort -un "$file" | while read -r pid; do
	[ -n "$pid" ] || continue
	state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
	comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
	if [ -n "$state" ] && [ "$state" != Z ] && [ "$comm" = redis-server ]; then
		echo "$pid"
	fi
done
