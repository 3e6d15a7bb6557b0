#!/usr/bin/env bash
# Runs every Fuzz* target of every module (the Makefile's MODULES) for FUZZTIME (default 5s) each.
# Targets are found with `go test -list`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime=${FUZZTIME:-5s}
found=0

# fuzz_one runs one target. Before Go 1.27, the fuzzing coordinator can end
# a time-boxed run with a bare "context deadline exceeded" although no input
# failed and none is written (golang/go#75804; make test passes a count,
# which has no deadline): such a run is tried once more; any other failure
# fails at once.
fuzz_one() {
	local mod=$1 pkg=$2 name=$3 out
	for attempt in 1 2; do
		if out=$(cd "$mod" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
			echo "$out"
			return 0
		fi
		echo "$out"
		if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz-smoke: $name stopped on the fuzzing engine's deadline without a failing input; once more"
			continue
		fi
		return 1
	done
}
for mod in . integration contrib/otelsyncfanout; do
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
				fuzz_one "$mod" "$pkg" "$name"
			done
			names=()
			;;
		esac
	done <<<"$listing"
done
if [ "$found" = 0 ]; then
	echo "fuzz-smoke: no Fuzz targets yet"
fi
