#!/usr/bin/env bash
# The main job: set up, build, and show a working two-site VPN. Gateway A is
# dpsecd keyed by strongSwan's charon over PF_KEY; gateway B is a stock
# strongSwan (userspace ESP). Every host is a network namespace:
#
#   site A host -- [lan] dpsecd + charon A [wan] == internet == charon B -- site B host
#   10.1.0.2       10.1.0.1        192.0.2.1           192.0.2.2  10.2.0.1   10.2.0.2
#
# Environment (tests/integration/test_demo.py uses them): DPSEC_DEMO_NO_SETUP=1
# skips setup.sh and build.sh; DPSEC_DEMO_TAG (default demo, at most 9
# characters) names the namespaces, interfaces and DPDK file prefix, so demos
# can run side by side; DPSEC_DEMO_DIR (default /tmp/dpsec-$DPSEC_DEMO_TAG) is
# where logs, captures and sockets go; DPSEC_BUILD the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [ -z "${DPSEC_DEMO_NO_SETUP:-}" ]; then
	bash scripts/setup.sh
	bash scripts/build.sh >/dev/null
fi

T=${DPSEC_DEMO_TAG:-demo}
[[ $T =~ ^[a-z0-9]{1,9}$ ]] || { echo "demo: DPSEC_DEMO_TAG: 1 to 9 of [a-z0-9]" >&2; exit 2; }
NS=("$T-a" "$T-gwa" "$T-gwb" "$T-b")
BUILD=${DPSEC_BUILD:-build}
DIR=${DPSEC_DEMO_DIR:-/tmp/dpsec-$T}
CONF=$DIR/dpsec.yaml # config/demo.yaml with this demo's names and directory
DPSECD=$BUILD/src/control/dpsecd
DPSECCTL="$BUILD/src/control/dpsecctl -c $CONF"
PRELOAD=$(realpath "$BUILD")/src/pfkey_emul/libdpsec_pfkey.so
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
	for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	return 0
}
trap cleanup EXIT
cleanup
# an interrupted demo's dpsecd (this tag's only: other demos may be running)
if [ -f "$DIR/dpsecd.pid" ] && grep -qF "$CONF" "/proc/$(cat "$DIR/dpsecd.pid")/cmdline" 2>/dev/null; then
	kill -TERM "$(cat "$DIR/dpsecd.pid")" && sleep 2
fi
rm -rf "$DIR"
mkdir -p "$DIR"
sed -e "s#demo-gwa-#$T-gwa-#; s#file_prefix: dpsec_demo#file_prefix: dpsec_$T#" \
	-e "s#exception_iface: demo-#exception_iface: $T-#; s#/tmp/dpsec-demo#$DIR#" config/demo.yaml >"$CONF"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
inns() { local n=$1; shift; ip netns exec "$n" "$@"; }
veth() { # veth NS_A IF_A NS_B IF_B
	ip link add "$2" type veth peer name "$4"
	ip link set "$2" netns "$1"; ip link set "$4" netns "$3"
	inns "$1" ip link set "$2" up; inns "$3" ip link set "$4" up
	inns "$1" ethtool -K "$2" tx off rx off >/dev/null 2>&1 || true
	inns "$3" ethtool -K "$4" tx off rx off >/dev/null 2>&1 || true
}

# charon NAME NS KERNEL-PLUGINS [ENV...]: one charon with a private /run (its pid
# file is fixed there), its own strongswan.conf, vici socket and log in $DIR.
charon() {
	local name=$1 ns=$2 kernel=$3 routes=$4; shift 4
	sed -e "s#@NAME@#$name#g; s#@DIR@#$DIR#g; s#@KERNEL@#$kernel#; s#@ROUTES@#$routes#" \
		config/demo/strongswan.conf.in >"$DIR/$name.conf"
	STRONGSWAN_CONF=$DIR/$name.conf ip netns exec "$ns" \
		sh -c 'mount -t tmpfs tmpfs /run && exec env "$@" /usr/lib/ipsec/charon' charon "$@" \
		>"$DIR/$name.out" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		swan "$name" --stats >/dev/null 2>&1 && break
		sleep 0.1
	done
	# (swanctl also looks for credential directories beside the file: none here, its complaints go to a log)
	swan "$name" --load-all --noprompt --file "$ROOT/config/demo/swanctl-$name.conf" >"$DIR/$name.load" 2>&1 ||
		{ cat "$DIR/$name.load" "$DIR/$name.log" "$DIR/$name.out"; exit 1; }
}
swan() { local name=$1; shift; STRONGSWAN_CONF=$DIR/$name.conf swanctl "$@" --uri "unix://$DIR/$name.vici"; }

step "topology: site A -- gateway A (dpsecd) -- internet -- gateway B (strongSwan) -- site B"
for n in "${NS[@]}"; do ip netns add "$n"; inns "$n" ip link set lo up; done
veth $T-a $T-a0 $T-gwa $T-gwa-l
veth $T-gwa $T-gwa-w $T-gwb $T-gwb-w
veth $T-gwb $T-gwb-l $T-b $T-b0
# dpsecd owns gateway A's interfaces: that namespace's kernel must leave them alone
for i in $T-gwa-l $T-gwa-w; do
	inns $T-gwa sysctl -qw net.ipv4.conf.$i.arp_ignore=8 net.ipv4.conf.$i.rp_filter=1 \
		net.ipv6.conf.$i.disable_ipv6=1
done
inns $T-a ip addr add 10.1.0.2/24 dev $T-a0
inns $T-b ip addr add 10.2.0.2/24 dev $T-b0
inns $T-gwb ip addr add 192.0.2.2/24 dev $T-gwb-w
inns $T-gwb ip addr add 10.2.0.1/24 dev $T-gwb-l
inns $T-gwb sysctl -qw net.ipv4.ip_forward=1
# No MSS clamping: TCP finds the tunnel's MTU by path MTU discovery; dpsecd answers
# site A's too-big packets with ICMP "fragmentation needed" (src/dataplane/icmp.c).
inns $T-a ip route add default via 10.1.0.1
inns $T-b ip route add default via 10.2.0.1

step "dpsecd --check -c $CONF (config/demo.yaml); start dpsecd in gateway A"
$DPSECD --check -c "$CONF"
ip netns exec $T-gwa $DPSECD -c "$CONF" >"$DIR/dpsecd.log" 2>&1 &
pids+=($!)
echo $! >"$DIR/dpsecd.pid"
for _ in $(seq 100); do $DPSECCTL raw /dpsec/info >/dev/null 2>&1 && [ -S "$DIR/pfkey.sock" ] && break; sleep 0.2; done
grep -E "pfkey|running" "$DIR/dpsecd.log"
# a promiscuous PF_KEY listener: everything charon A and dpsecd say, shown at the end
$DPSECCTL monitor >"$DIR/monitor.log" 2>&1 &
pids+=($!)

step "charon B (stock strongSwan, kernel-libipsec) and charon A (kernel-pfkey -> dpsecd via $(basename "$PRELOAD"))"
charon b $T-gwb "kernel-libipsec kernel-netlink" yes
charon a $T-gwa "kernel-pfkey! kernel-netlink" no LD_PRELOAD="$PRELOAD" DPSEC_PFKEY_SOCKET="$DIR/pfkey.sock"

step "dpsecctl policy: charon A's trap policies, installed over PF_KEY"
$DPSECCTL policy

armed() { # wait until dpsecd's capture is armed
	for _ in $(seq 50); do $DPSECCTL raw /dpsec/capture/status 2>/dev/null | grep -q '"armed": 1' && break; sleep 0.1; done
}
comment() { # the pcapng comment of a capture's first packet: point, SA, policy, port (reason)
	/usr/bin/python3 -c 'import sys; from scapy.all import rdpcap; print("pcapng comment:", rdpcap(sys.argv[1])[0].comment.decode().strip())' \
		"$1" 2>/dev/null || true
}

step "the first ping from site A: dpsecd drops it (never in clear; dpsecctl capture --point drop) and ACQUIREs"
$DPSECCTL capture --point drop -c 1 --timeout 10 -w "$DIR/drop.pcapng" 2>"$DIR/capture-drop.err" &
cap=$!
armed
inns $T-a ping -c 1 -W 1 10.2.0.2 >/dev/null 2>&1 || true
wait $cap || cat "$DIR/capture-drop.err"
echo "dropped (dpsecd drop point): $(tcpdump -n -t -r "$DIR/drop.pcapng" 2>/dev/null | head -1)"
comment "$DIR/drop.pcapng"
for _ in $(seq 100); do swan a --list-sas 2>/dev/null | grep -q INSTALLED && break; sleep 0.1; done
grep -m1 "ACQUIRE" "$DIR/dpsecd.log" || true
grep -m2 -E "SADB_ACQUIRE|creating acquire job" "$DIR/a.log" | sed 's/^/charon A: /' || true
step "IKE keyed the tunnel: charon A's SAs"
swan a --list-sas

step "enc(4): the first ping through the tunnel as dpsecd saw it in the clear (dpsecctl capture --point out-clear), beside its ESP on the wire"
# dpsecd copies the next protected packet before protection; tcpdump on gateway B's
# outside takes the next ESP-in-UDP packet from gateway A (not IKE: its non-ESP marker is zero)
$DPSECCTL capture --point out-clear -c 1 --timeout 10 -w "$DIR/clear.pcapng" 2>"$DIR/capture.err" &
cap=$!
inns $T-gwb tcpdump -n -i $T-gwb-w -c 1 -w "$DIR/wire.pcap" 'src host 192.0.2.1 and udp port 4500 and udp[8:4] != 0' 2>/dev/null &
td=$!
armed
sleep 0.5 # tcpdump's filter in place
inns $T-a ping -c 1 -W 2 10.2.0.2 >/dev/null || true
wait $cap || cat "$DIR/capture.err"
wait $td || true
paste <(echo "in the clear, before ESP (dpsecd out-clear):"; tcpdump -n -r "$DIR/clear.pcapng" 2>/dev/null | cut -c1-88) \
	<(echo "on the wire (gateway B's outside):"; tcpdump -n -r "$DIR/wire.pcap" 2>/dev/null | cut -c1-100) |
	column -t -s $'\t'
comment "$DIR/clear.pcapng"

step "ping through the tunnel, both ways"
inns $T-a ping -c 3 -i 0.2 10.2.0.2
inns $T-b ping -c 3 -i 0.2 10.1.0.2

step "the internet link carries only IKE and ESP in UDP (tcpdump on gateway B's outside)"
inns $T-gwb tcpdump -n -i $T-gwb-w -c 6 udp 2>/dev/null &
td=$!
sleep 0.5
inns $T-a ping -c 3 -i 0.2 10.2.0.2 >/dev/null
wait $td || true

step "TCP: 20 MB from site A to site B through the tunnel, checked by SHA-256"
head -c 20000000 /dev/urandom >"$DIR/payload"
inns $T-b sh -c "nc -4 -l -N -p 5001 > $DIR/received" &
srv=$!
for _ in $(seq 100); do inns $T-b ss -Hltn 'sport = :5001' | grep -q . && break; sleep 0.05; done
start=$(date +%s.%N)
inns $T-a nc -N 10.2.0.2 5001 <"$DIR/payload"
wait $srv
end=$(date +%s.%N)
a=$(sha256sum <"$DIR/payload" | cut -c1-64); b=$(sha256sum <"$DIR/received" | cut -c1-64)
echo "sent $a"; echo "recv $b"
[ "$a" = "$b" ] || { echo "MISMATCH"; exit 1; }
awk -v s="$start" -v e="$end" 'BEGIN { printf "20 MB in %.2f s (%.0f Mbit/s; veth + af_packet, strongSwan userspace ESP on the far side)\n", e - s, 160 / (e - s) }'
rm -f "$DIR/payload" "$DIR/received"

step "dpsecctl sa: the SAs charon installed, with their counters"
$DPSECCTL sa
step "dpsecctl stats"
$DPSECCTL stats
step "dpsecctl stats esp: ESP totals over every SA"
$DPSECCTL stats esp

step "swanctl --terminate: charon deletes the SAs from dpsecd (the trap policies stay)"
swan a --terminate --ike site >/dev/null
for _ in $(seq 50); do $DPSECCTL sa | grep -q "no SAs" && break; sleep 0.1; done
$DPSECCTL sa
$DPSECCTL policy
step "dpsecctl stats esp: the totals outlive the SAs"
$DPSECCTL stats esp

step "dpsecctl monitor, running since dpsecd started: SA and policy changes, ACQUIRE, EXPIRE"
cat "$DIR/monitor.log"

step "stop"
cleanup
echo "demo done: dpsecd and both charons exited"
