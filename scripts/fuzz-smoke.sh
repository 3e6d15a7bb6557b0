#!/usr/bin/env bash
# Runs every Fuzz* target of both modules for FUZZTIME (default 5s) each.
# Targets are found with `go test -list`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime=${FUZZTIME:-5s}
found=0
for mod in . integration; do
	# `go test -list` prints the matching names of a package, then its
	# "ok <package> <time>" line.
	listing=$(cd "$mod" && go test -list '^Fuzz' ./...)
	names=()
	while IFS= read -r line; do
		case "$line" in
		Fuzz*)
			names+=("$line")
			;;
		ok*)
			pkg=$(awk '{print $2}' <<<"$line")
			for name in "${names[@]}"; do
				found=$((found + 1))
				echo "==> $pkg $name ($fuzztime)"
				(cd "$mod" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg")
			done
			names=()
			;;
		esac
	done <<<"$listing"
done
if [ "$found" = 0 ]; then
	echo "fuzz-smoke: no Fuzz targets yet"
fi
