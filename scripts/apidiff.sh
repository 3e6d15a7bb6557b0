#!/usr/bin/env bash
# Reports how the exported API of the root module changed since a base
# commit (APIDIFF_BASE, default HEAD~1: the previous commit), with apidiff
# from golang.org/x/exp. A report, never a failure: breaking changes may be
# deliberate before v1, but they must be seen (and go in CHANGELOG).
set -uo pipefail

APIDIFF_VERSION=${APIDIFF_VERSION:-v0.0.0-20261113113407-e3970619a1a4}
APIDIFF="go run golang.org/x/exp/cmd/apidiff@${APIDIFF_VERSION}"
base=${APIDIFF_BASE:-HEAD~1}
root=$(git rev-parse --show-toplevel) || exit 0
module=$(cd "$root" && go list -m)

if ! rev=$(git -C "$root" rev-parse --verify --quiet "${base}^{commit}"); then
	echo "apidiff: no commit $base to compare with; skipped"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/old"
git -C "$root" archive "$rev" | tar -x -C "$tmp/old"

# The export data of a module is written from inside that module.
if ! (cd "$tmp/old" && $APIDIFF -m -w "$tmp/old.api" "$module") >"$tmp/log" 2>&1 ||
	! (cd "$root" && $APIDIFF -m -w "$tmp/new.api" "$module") >>"$tmp/log" 2>&1; then
	echo "apidiff: could not read the API (reported, not failing):"
	cat "$tmp/log"
	exit 0
fi
echo "==> API of $module: changes since $base (${rev:0:12})"
out=$($APIDIFF -m "$tmp/old.api" "$tmp/new.api" 2>&1 | grep -v '^Ignoring internal package')
if [ -z "$out" ]; then
	echo "no change to the exported API"
else
	echo "$out"
	if grep -q '^Incompatible changes:' <<<"$out"; then
		echo
		echo "apidiff: incompatible changes above: say so in CHANGELOG (reported, not failing)"
	fi
fi
exit 0
