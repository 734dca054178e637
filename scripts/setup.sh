#!/usr/bin/env bash
# Idempotent machine set-up for dpsec (Debian 12, run as root): packages, hugepages, hugetlbfs.
set -euo pipefail

die() { echo "setup: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, reserves hugepages)"
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || echo "setup: warning: tested on Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}" >&2

PKGS=(
	# build
	build-essential meson ninja-build pkg-config clang-format
	dpdk dpdk-dev libdpdk-dev libipsec-mb-dev libssl-dev libyaml-dev libcmocka-dev libsystemd-dev
	libisal-dev zlib1g-dev libpcap-dev libjansson-dev libmicrohttpd-dev
	# sanitizers + fuzzing
	clang libclang-rt-14-dev
	# tests and demo (python3-matplotlib: the bench's results.png)
	python3 python3-pytest python3-scapy python3-yaml iproute2 iputils-ping iperf3 tcpdump netcat-openbsd ethtool kmod procps python3-prometheus-client python3-matplotlib
	# benchmark: instruction counts (scripts/bench.sh --callgrind)
	valgrind
	# operator tools: man page lint, the Debian package, bash completion
	mandoc debhelper bash-completion
	# strongSwan interop
	strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
	# a second PF_KEY key daemon (OpenBSD's iked): docs/iked.md
	openiked
	# a NAT in a namespace for the NAT-rebinding interop test (masquerade, mapping flushed)
	nftables conntrack
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || die "apt-get update failed: no package archive reachable"
	for p in "${missing[@]}"; do
		apt-cache show "$p" >/dev/null 2>&1 || die "package '$p' is not available from the configured archives"
	done
	apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install failed for: ${missing[*]}"
fi

# Debian enables some strongSwan services on install; dpsec's tests start charon themselves.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now strongswan-starter strongswan >/dev/null 2>&1 || true
	systemctl disable --now openiked iked >/dev/null 2>&1 || true
fi

# Hugepages: 2 MB pages for the daemon, its tests and the benchmark (several EAL instances at once).
# 4 GB: a daemon installing 100 000 tunnels at once maps about 1.7 GB at its peak
# (docs/PERFORMANCE.md, Capacity); DPDK takes them as needed, nothing is reserved per daemon.
want=${DPSEC_HUGEPAGES:-2048}
have=$(cat /proc/sys/vm/nr_hugepages)
if [ "$have" -lt "$want" ]; then
	echo "$want" >/proc/sys/vm/nr_hugepages
	have=$(cat /proc/sys/vm/nr_hugepages)
	[ "$have" -ge 256 ] || die "could reserve only $have 2 MB hugepages (need at least 256): memory too fragmented or not allowed"
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages ||
	die "cannot mount hugetlbfs on /dev/hugepages"

# Kernel pieces the tests use: TUN/TAP for the exception path and the scapy peer, veth + netns.
[ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun; } ||
	die "/dev/net/tun is missing and cannot be created: net_tap needs it"

mkdir -p /run/dpsec

# charon's kernel-pfkey plugin (Debian does not ship it), built from Debian's source of the installed version.
bash "$(dirname "$0")/strongswan-pfkey.sh" || die "building strongSwan's kernel-pfkey plugin failed"
echo "setup: ok ($have hugepages of 2 MB, packages present)"
