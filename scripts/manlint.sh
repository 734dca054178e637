#!/usr/bin/env bash
# Lint the manual pages: any warning fails. mandoc -Tlint (package mandoc) is
# the check CI should run; without it, groff's mdoc macros with all warnings
# on catch unknown macros, unclosed lists and bad arguments, but not mandoc's
# style rules (sections out of order, a missing .Sh SEE ALSO entry sort...).
set -uo pipefail
cd "$(dirname "$0")/.."
pages=(docs/man/*.[1-9])
if command -v mandoc >/dev/null; then
	mandoc -Tlint -Wwarning "${pages[@]}"
	exit
fi
echo "manlint: mandoc not installed (apt-get install mandoc); checking with groff instead" >&2
status=0
for p in "${pages[@]}"; do
	out=$(groff -mdoc -ww -z -Tutf8 "$p" 2>&1)
	if [ -n "$out" ]; then
		printf '%s:\n%s\n' "$p" "$out" >&2
		status=1
	fi
done
exit $status
