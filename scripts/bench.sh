#!/usr/bin/env bash
# dpsecd throughput benchmark: one worker, ESP tunnel AES-128-GCM, outbound and
# inbound at 64/512/1420 B, the native engine (intel-ipsec-mb's direct API), CPU
# crypto and async cryptodev, 1 vs 10 000 SAs, against the raw crypto ceiling of
# dpdk-test-crypto-perf, intel-ipsec-mb alone (bench/imb_rate.c) and DPDK's
# ipsec-secgw example in the same set-up, both directions (the reference); IPComp
# outbound at 1420 B beside dpdk-test-compress-perf on the same packets.
#
#   scripts/bench.sh [--out DIR] [--duration S] [--only REGEX] [--perf] ...
#   scripts/bench.sh --pfkey [--tunnels N] [--window W]   (PF_KEY install rate)
#
# Runs scripts/setup.sh, scripts/build.sh and scripts/ipsec-secgw.sh first
# (DPSEC_BENCH_NO_SETUP=1 skips them). Prints a table; raw results go to DIR
# (default /tmp/dpsec-bench-DATE):
# results.txt, results.json, and work/ (pcaps, configurations, daemon logs).
# See docs/PERFORMANCE.md. Options: scripts/bench/bench.py --help.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "bench: must run as root (DPDK, hugepages)" >&2; exit 1; }
if [ -z "${DPSEC_BENCH_NO_SETUP:-}" ]; then
	scripts/setup.sh
	scripts/build.sh >/dev/null
	# the reference gateway (DPDK's ipsec-secgw example); without it the bench says it was not
	# measured and compares with an old constant
	scripts/ipsec-secgw.sh ||
		echo "bench: warning: building ipsec-secgw failed: the reference will not be measured" >&2
fi
command -v dpdk-test-crypto-perf >/dev/null ||
	echo "bench: dpdk-test-crypto-perf missing (package dpdk-dev): no crypto ceiling" >&2
command -v dpdk-test-compress-perf >/dev/null ||
	echo "bench: dpdk-test-compress-perf missing (package dpdk-dev): no IPComp reference" >&2
if pgrep -x dpsecd >/dev/null || pgrep -f 'dpdk-test-crypto-perf|dpdk-test-compress-perf|dpdk-ipsec-secgw' >/dev/null; then
	echo "bench: warning: other DPDK processes are running; they share the cores" >&2
	echo "bench: (the per-CPU-second columns correct for it, the raw rates do not)" >&2
fi
if [ "${1:-}" = "--pfkey" ]; then # PF_KEY install rate (scripts/bench/pfkey_rate.py --help)
	shift
	exec /usr/bin/python3 -B scripts/bench/pfkey_rate.py "$@"
fi
exec /usr/bin/python3 -B scripts/bench/bench.py "$@"
