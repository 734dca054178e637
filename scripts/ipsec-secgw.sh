#!/usr/bin/env bash
# Build DPDK's examples/ipsec-secgw, the benchmark's reference gateway, from Debian's own source
# package of the installed DPDK, against the installed libdpdk (pkg-config), and install it as
# /usr/local/lib/dpsec/dpdk-ipsec-secgw. Debian ships the library but not this example. Only the
# source is downloaded and only the example is compiled. Idempotent: does nothing when the stamp
# names the installed DPDK version and the binary's checksum. Run as root (scripts/bench.sh calls it;
# CI does not need it).
set -euo pipefail

die() { echo "ipsec-secgw: $*" >&2; exit 1; }
say() { echo "ipsec-secgw: $*"; }
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get source, installs into /usr/local/lib/dpsec)"

BIN=/usr/local/lib/dpsec/dpdk-ipsec-secgw
STAMP=/var/lib/dpsec/ipsec-secgw.stamp
CACHE=${DPSEC_DPDK_CACHE:-/var/cache/dpsec/dpdk}
PATCH=$(cd "$(dirname "$0")" && pwd)/ipsec-secgw-vdev.patch
start=$SECONDS

version_of() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null | awk '/^ii/ { print $2 }'; }
ver=$(version_of libdpdk-dev)
[ -n "$ver" ] || die "libdpdk-dev is not installed (run scripts/setup.sh first)"

[ -f "$PATCH" ] || die "$PATCH is missing"
patchsum=$(sha256sum "$PATCH" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ -x "$BIN" ] && grep -qx "installed=$ver" "$STAMP" &&
	grep -qx "patch=$patchsum" "$STAMP" &&
	grep -qx "sha256=$(sha256sum "$BIN" | cut -d' ' -f1)" "$STAMP"; then
	say "ipsec-secgw for DPDK $ver already installed ($BIN)"
	exit 0
fi

# Build dependencies: a compiler, make, pkg-config and dpkg-source; libdpdk-dev brings the headers
# and the .pc files' own requirements.
missing=()
for pair in gcc:gcc make:make patch:patch pkg-config:pkg-config dpkg-source:dpkg-dev; do
	command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
pcver=$(pkg-config --modversion libdpdk 2>/dev/null) || die "pkg-config finds no libdpdk"
[ "$pcver" = "$(echo "${ver%-*}" | sed 's/^[0-9]*://')" ] ||
	die "pkg-config's libdpdk is $pcver, the libdpdk-dev package is $ver: a local DPDK shadows Debian's"

# --- fetch and unpack the source (the package 'dpdk' is built from the source 'dpdk') -------------
. "$(dirname "$0")/deb-src.sh"
deb_src_fetch dpdk "$ver" "$CACHE"
srcver=$DEB_SRC_VERSION
[ -f "$DEB_SRC_DIR/examples/ipsec-secgw/ipsec-secgw.c" ] ||
	die "$DEB_SRC_DIR/examples/ipsec-secgw/ipsec-secgw.c is missing: not a DPDK source tree"

# --- build only the example ----------------------------------------------------------------------
# A copy of it (and of examples/common, which it includes) with scripts/ipsec-secgw-vdev.patch:
# unmodified, it demands an Rx checksum offload that net_pcap and net_null do not offer. Its
# Makefile compiles every .c with `pkg-config --cflags libdpdk` (-O3, ALLOW_EXPERIMENTAL_API) and
# links with `pkg-config --libs libdpdk`; the PMDs (net_pcap, net_null, crypto_aesni_mb) are loaded
# by EAL from Debian's driver directory at run time, as for dpsecd.
say "building examples/ipsec-secgw of dpdk $srcver"
bld=$CACHE/ipsec-secgw-build
rm -rf "$bld"
mkdir -p "$bld"
cp -a "$DEB_SRC_DIR/examples/ipsec-secgw" "$DEB_SRC_DIR/examples/common" "$bld/"
rm -rf "$bld/ipsec-secgw/build"
patch -d "$bld" -p1 --forward -s <"$PATCH" >"$bld/patch.log" 2>&1 || {
	cat "$bld/patch.log" >&2
	die "$PATCH does not apply to dpdk $srcver's examples/ipsec-secgw"
}
make -C "$bld/ipsec-secgw" -j"$(nproc)" shared >"$bld/make.log" 2>&1 || {
	tail -30 "$bld/make.log" >&2
	die "make failed (full log: $bld/make.log)"
}
built=$bld/ipsec-secgw/build/ipsec-secgw-shared
[ -x "$built" ] || die "make produced no $built"
if ldd "$built" | grep -q 'not found'; then
	ldd "$built" | grep 'not found' >&2
	die "the built ipsec-secgw does not link against the installed DPDK"
fi

# Smoke test: EAL starts (no hugepages, no shared files, no devices), loads the drivers, and the
# application's parser rejects -h with its usage. Exit 1 is expected; the usage text is the check.
out=$(timeout 30 "$built" --no-huge -m 64 --no-pci --no-shconf --no-telemetry -l 0 --log-level=error \
	-- -h 2>&1) || true
echo "$out" | grep -q -- '-f CONFIG_FILE' ||
	{ echo "$out" >&2; die "$built does not start (no application usage after EAL init)"; }

mkdir -p "$(dirname "$BIN")"
tmp=$(mktemp "$BIN.XXXXXX")
install -m 0755 "$built" "$tmp"
mv -f "$tmp" "$BIN"
mkdir -p "$(dirname "$STAMP")"
printf 'installed=%s\nsource=%s\npatch=%s\nsha256=%s\n' "$ver" "$srcver" "$patchsum" \
	"$(sha256sum "$BIN" | cut -d' ' -f1)" >"$STAMP"
say "installed $BIN for DPDK $ver (built from source $srcver) in $((SECONDS - start)) s"
