#!/usr/bin/env bash
# The main job: set up, build, and show dpsecd as a gateway between two hosts
# living in network namespaces, with its counters and neighbour table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null

NS=(demo-a demo-gw demo-b)
DPSECD=build/src/control/dpsecd
DPSECCTL="build/src/control/dpsecctl -c config/demo.yaml"
pid=

cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	return 0
}
trap cleanup EXIT
cleanup

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
inns() { local n=$1; shift; ip netns exec "$n" "$@"; }

step "topology: host A (demo-a) -- dpsecd (demo-gw) -- host B (demo-b)"
for n in "${NS[@]}"; do ip netns add "$n"; inns "$n" ip link set lo up; done
ip link add demo-a0 type veth peer name demo-gw-a
ip link add demo-b0 type veth peer name demo-gw-b
ip link set demo-a0 netns demo-a; ip link set demo-gw-a netns demo-gw
ip link set demo-b0 netns demo-b; ip link set demo-gw-b netns demo-gw
for x in "demo-a demo-a0" "demo-b demo-b0" "demo-gw demo-gw-a" "demo-gw demo-gw-b"; do
	set -- $x
	inns "$1" ip link set "$2" up
	inns "$1" ethtool -K "$2" tx off rx off >/dev/null 2>&1 || true
done
# The gateway's kernel must leave the dataplane's interfaces alone.
for i in demo-gw-a demo-gw-b; do
	inns demo-gw sysctl -qw net.ipv4.conf.$i.arp_ignore=8 net.ipv4.conf.$i.rp_filter=1 \
		net.ipv6.conf.$i.disable_ipv6=1
done
inns demo-a ip addr add 10.1.0.2/24 dev demo-a0; inns demo-a ip addr add fd01::2/64 dev demo-a0 nodad
inns demo-b ip addr add 10.2.0.2/24 dev demo-b0; inns demo-b ip addr add fd02::2/64 dev demo-b0 nodad
inns demo-a ip route add default via 10.1.0.1; inns demo-a ip -6 route add default via fd01::1
inns demo-b ip route add default via 10.2.0.1; inns demo-b ip -6 route add default via fd02::1

step "dpsecd --check -c config/demo.yaml"
$DPSECD --check -c config/demo.yaml

step "start dpsecd in demo-gw"
ip netns exec demo-gw $DPSECD -c config/demo.yaml &
pid=$!
for _ in $(seq 50); do $DPSECCTL raw /dpsec/info >/dev/null 2>&1 && break; sleep 0.2; done
$DPSECCTL raw /dpsec/info

step "ping across the gateway (IPv4 and IPv6, both ways)"
inns demo-a ping -c 3 -i 0.2 10.2.0.2
inns demo-b ping -c 3 -i 0.2 fd01::2

step "ping the gateway itself (answered by its kernel through the exception TAP)"
inns demo-a ping -c 2 -i 0.2 10.1.0.1

step "TCP: 20 MB from host A to host B, checked by SHA-256"
head -c 20000000 /dev/urandom >/tmp/dpsec-demo.bin
inns demo-b sh -c 'nc -4 -l -N -p 5001 > /tmp/dpsec-demo.out' &
srv=$!
for _ in $(seq 100); do inns demo-b ss -Hltn 'sport = :5001' | grep -q . && break; sleep 0.05; done
start=$(date +%s.%N)
inns demo-a nc -N 10.2.0.2 5001 </tmp/dpsec-demo.bin
wait $srv
end=$(date +%s.%N)
a=$(sha256sum </tmp/dpsec-demo.bin | cut -c1-64); b=$(sha256sum </tmp/dpsec-demo.out | cut -c1-64)
echo "sent $a"; echo "recv $b"
[ "$a" = "$b" ] || { echo "MISMATCH"; exit 1; }
awk -v s="$start" -v e="$end" 'BEGIN { printf "20 MB in %.2f s (%.0f Mbit/s, veth + af_packet)\n", e - s, 160 / (e - s) }'
rm -f /tmp/dpsec-demo.bin /tmp/dpsec-demo.out

step "dpsecctl stats"
$DPSECCTL stats
step "dpsecctl neigh (learned by the dataplane's ARP/ND)"
$DPSECCTL neigh

step "stop (SIGTERM)"
kill -TERM "$pid"; wait "$pid"; pid=
echo "dpsecd exited cleanly"
