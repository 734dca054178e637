#!/usr/bin/env bash
# dpsecd throughput benchmark: one worker, ESP tunnel AES-128-GCM, outbound and
# inbound at 64/512/1420 B, the native engine (intel-ipsec-mb's direct API), CPU
# crypto and async cryptodev, 1 vs 10 000 SAs, against the raw crypto ceiling of
# dpdk-test-crypto-perf, intel-ipsec-mb alone (bench/imb_rate.c) and DPDK's
# ipsec-secgw example in the same set-up, both directions (the reference); IPComp
# outbound at 1420 B beside dpdk-test-compress-perf on the same packets; issue 12's
# goals 3 to 5 (scripts/bench/topologies.py): inbound with anti-replay on behind a
# second dpsecd over net_memif (chain-*), 1 000 / 10 000 / 100 000 tunnels over
# PF_KEY (tun-*), two workers (w1-*, w2-*; beside them intel-ipsec-mb alone on both
# CPUs at once against one, the machine's own ceiling); the queue path on a device with 20 us
# of latency (crypto.queue_latency_us, *-async-1sa-lat20; with --baseline, against
# a build whose worker waits for its operations). Prints a goals table and writes
# results.png. About 15 minutes a round; installing 100 000 tunnels took 3 minutes
# of it on a loaded 2-CPU machine.
#
#   scripts/bench.sh [--out DIR] [--duration S] [--only REGEX] [--perf] ...
#   scripts/bench.sh --pfkey [--tunnels N] [--window W]   (PF_KEY install rate)
#   scripts/bench.sh --reconf [--tunnels N] [--reconf M]   (tunnels added under traffic)
#   scripts/bench.sh --restart [--rounds N] [--rate PPS]   (outage of a restart under charon)
#   scripts/bench.sh --callgrind BUILD [--case NAME] ...  (instructions per packet under
#       callgrind, this build against the build directory BUILD: scripts/bench/callgrind.py)
#   scripts/bench.sh --pfkey-latency [--policies N]   (reply latency per message type vs Linux XFRM)
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
	# measured and compares with an old constant (--pfkey, --reconf, --restart and
	# --callgrind do not use it)
	case "${1:-}" in
	--pfkey | --pfkey-latency | --reconf | --restart | --callgrind) ;;
	*)
		scripts/ipsec-secgw.sh ||
			echo "bench: warning: building ipsec-secgw failed: the reference will not be measured" >&2
		;;
	esac
fi
command -v dpdk-test-crypto-perf >/dev/null ||
	echo "bench: dpdk-test-crypto-perf missing (package dpdk-dev): no crypto ceiling" >&2
command -v dpdk-test-compress-perf >/dev/null ||
	echo "bench: dpdk-test-compress-perf missing (package dpdk-dev): no IPComp reference" >&2
if pgrep -x dpsecd >/dev/null || pgrep -f 'dpdk-test-crypto-perf|dpdk-test-compress-perf|dpdk-ipsec-secgw' >/dev/null; then
	echo "bench: warning: other DPDK processes are running; they share the cores" >&2
	echo "bench: (the per-CPU-second columns correct for it, the raw rates do not)" >&2
fi
if [ "${1:-}" = "--reconf" ]; then # tunnels added under traffic (scripts/bench/reconf.py --help)
	shift
	exec /usr/bin/python3 -B scripts/bench/reconf.py "$@"
fi
if [ "${1:-}" = "--pfkey-latency" ]; then # scripts/bench/reply_latency.py --help
	shift
	exec /usr/bin/python3 -B scripts/bench/reply_latency.py "$@"
fi
if [ "${1:-}" = "--pfkey" ]; then # PF_KEY install rate (scripts/bench/pfkey_rate.py --help)
	shift
	exec /usr/bin/python3 -B scripts/bench/pfkey_rate.py "$@"
fi
if [ "${1:-}" = "--restart" ]; then # restart outage (scripts/bench/restart.py --help)
	shift
	exec /usr/bin/python3 -B scripts/bench/restart.py "$@"
fi
if [ "${1:-}" = "--callgrind" ]; then # Ir per packet, this build vs BUILD (callgrind.py --help)
	[ $# -ge 2 ] || { echo "bench: --callgrind BUILD: a baseline build directory" >&2; exit 2; }
	base=$2
	shift 2
	exec /usr/bin/python3 -B scripts/bench/callgrind.py --baseline "$base" "$@"
fi
exec /usr/bin/python3 -B scripts/bench/bench.py "$@"
