#!/usr/bin/env bash
# Build and install strongSwan's kernel-pfkey plugin, which Debian's charon is shipped without, from
# Debian's own source package of the installed version. Idempotent: does nothing when the installed
# plugin's stamp names the installed strongSwan version. Run as root (scripts/setup.sh calls it).
#
# Only the plugin is compiled: a plugin of a non-monolithic strongSwan is not linked against
# libstrongswan/libcharon (charon resolves its symbols at dlopen time), so a ./configure that
# reproduces the ABI-relevant choices of Debian's build plus the plugin directory's make is enough.
#
# The plugin is compiled with dpsec's PF_KEY extension header forced in (-include
# src/pfkey_emul/pfkeyv2_ext.h): it defines SADB_X_EXT_SA_REPLAY, SADB_X_SAFLAGS_ESN,
# SADB_X_EXT_NEW_ADDRESS_SRC/DST and SADB_X_EALG_CHACHA20POLY1305, so that the plugin's own
# #ifdef'd code for replay windows > 32, ESN, MOBIKE address updates and ChaCha20-Poly1305 is built
# (docs/strongswan.md). DPSEC_PFKEY_PLAIN=1 builds it against the plain Linux header instead.
set -euo pipefail

die() { echo "strongswan-pfkey: $*" >&2; exit 1; }
say() { echo "strongswan-pfkey: $*"; }
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get source, installs into /usr/lib/ipsec/plugins)"

PLUGIN=/usr/lib/ipsec/plugins/libstrongswan-kernel-pfkey.so
CHARON=/usr/lib/ipsec/charon
STAMP=/var/lib/dpsec/strongswan-kernel-pfkey.stamp
CACHE=${DPSEC_STRONGSWAN_CACHE:-/var/cache/dpsec/strongswan}
start=$SECONDS
EXT_HDR=$(cd "$(dirname "$0")/.." && pwd)/src/pfkey_emul/pfkeyv2_ext.h
if [ "${DPSEC_PFKEY_PLAIN:-0}" = 1 ]; then
	ext_id=plain
else
	[ -f "$EXT_HDR" ] || die "$EXT_HDR is missing"
	ext_id=$(sha256sum "$EXT_HDR" | cut -d' ' -f1)
fi
# A fix carried on the plugin's source: its SADB_X_NAT_T_NEW_MAPPING handling matches nothing in
# the layout Linux's af_key (and dpsecd) send, and byte-swaps the port (docs/strongswan.md).
MAPPING_PATCH=$(cd "$(dirname "$0")" && pwd)/strongswan-pfkey-mapping.patch
[ -f "$MAPPING_PATCH" ] || die "$MAPPING_PATCH is missing"
ext_id="$ext_id+mapping:$(sha256sum "$MAPPING_PATCH" | cut -c1-16)"

version_of() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
ver=$(version_of strongswan-libcharon)
[ -n "$ver" ] || die "strongswan-libcharon is not installed (run scripts/setup.sh first)"
[ -x "$CHARON" ] || die "$CHARON is missing: install strongswan-charon"
libver=$(version_of libstrongswan)
[ "$libver" = "$ver" ] || die "libstrongswan $libver and strongswan-libcharon $ver differ: upgrade both first"

if [ -f "$STAMP" ] && [ -f "$PLUGIN" ] && grep -qx "installed=$ver" "$STAMP" &&
	grep -qx "ext=$ext_id" "$STAMP" &&
	grep -qx "sha256=$(sha256sum "$PLUGIN" | cut -d' ' -f1)" "$STAMP"; then
	say "kernel-pfkey plugin for strongSwan $ver already installed ($PLUGIN)"
	exit 0
fi

for tool in gcc make dpkg-source dpkg-buildflags python3 unshare; do
	command -v "$tool" >/dev/null || die "'$tool' is missing (build-essential, dpkg-dev, python3, util-linux)"
done

# --- fetch and unpack the source ------------------------------------------------------------------
. "$(dirname "$0")/deb-src.sh"
deb_src_fetch strongswan "$ver" "$CACHE"
srcver=$DEB_SRC_VERSION
dir=$DEB_SRC_DIR

# --- configure and build only the plugin ---------------------------------------------------------
# Struct layouts in libcharon's headers depend on config.h: ME (mediation) adds members to daemon_t,
# whose 'kernel' member the plugin uses, so mirror Debian's choice from its debian/rules.
conf=(--prefix=/usr --sysconfdir=/etc --libdir=/usr/lib --libexecdir=/usr/lib
	--disable-defaults --disable-dependency-tracking --enable-charon --enable-ikev2 --enable-kernel-pfkey)
rules=$dir/debian/rules
[ -f "$rules" ] || die "$rules is missing: not a Debian source tree"
grep -q -- '--enable-mediation' "$rules" && conf+=(--enable-mediation)
grep -q -- '--disable-ikev1' "$rules" && conf+=(--disable-ikev1) || conf+=(--enable-ikev1)

confkey=$(printf '%s\n' "${conf[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$dir/.dpsec-configured-$confkey" ]; then
	say "configuring strongSwan $srcver (plugin only)"
	(
		cd "$dir"
		eval "$(dpkg-buildflags --export=sh)"
		./configure -q "${conf[@]}"
	) >"$dir/dpsec-configure.log" 2>&1 || {
		tail -30 "$dir/dpsec-configure.log" >&2
		die "./configure failed (full log: $dir/dpsec-configure.log)"
	}
	rm -f "$dir"/.dpsec-configured-*
	touch "$dir/.dpsec-configured-$confkey"
fi
need=(USE_IKEV2)
grep -q -- '--enable-mediation' "$rules" && need+=(ME)
for def in "${need[@]}"; do
	grep -q "^#define $def " "$dir/config.h" || die "config.h lacks $def: the plugin would not match Debian's ABI"
done

say "building src/libcharon/plugins/kernel_pfkey"
plugdir=$dir/src/libcharon/plugins/kernel_pfkey
if patch -d "$dir" -p1 -R -s -f --dry-run <"$MAPPING_PATCH" >/dev/null 2>&1; then
	say "the NAT mapping fix is applied already"
else
	patch -d "$dir" -p1 -N -s <"$MAPPING_PATCH" || die "cannot apply $MAPPING_PATCH"
fi
# Only this directory's objects are removed: a CPPFLAGS change is not tracked by make.
make -C "$plugdir" clean >/dev/null 2>&1 || true
cppflags=()
[ "${ext_id%%+*}" = plain ] || cppflags=("CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS) -include $EXT_HDR")
make -C "$plugdir" -j"$(nproc)" "${cppflags[@]}" >"$dir/dpsec-make.log" 2>&1 || {
	tail -30 "$dir/dpsec-make.log" >&2
	die "make failed (full log: $dir/dpsec-make.log)"
}
built=$plugdir/.libs/libstrongswan-kernel-pfkey.so
[ -f "$built" ] || die "make produced no $built"
# With the extensions, charon's code for them must be in: its 'not supported by kernel' message is not.
if [ "${ext_id%%+*}" != plain ] && grep -q "extended sequence numbers (ESN) not supported" "$built"; then
	die "the plugin was built without pfkeyv2_ext.h's extensions"
fi

# --- check the result against the installed libraries before installing it -----------------------
python3 - "$built" <<'EOF' || die "the built plugin does not link against the installed libstrongswan/libcharon"
import ctypes, os, sys
flags = os.RTLD_NOW | os.RTLD_GLOBAL
for lib in ("/usr/lib/ipsec/libstrongswan.so.0", "/usr/lib/ipsec/libcharon.so.0"):
    ctypes.CDLL(lib, mode=flags)
plugin = ctypes.CDLL(sys.argv[1], mode=flags)   # RTLD_NOW: every undefined symbol must resolve
plugin.kernel_pfkey_plugin_create               # the constructor charon's plugin loader looks up
EOF

tmp=$(mktemp "$PLUGIN.XXXXXX")
install -m 0644 "$built" "$tmp"
mv -f "$tmp" "$PLUGIN"

# charon itself must load it: run it in private network and mount namespaces (its pid file is the
# fixed /run/charon.pid) with only this plugin, mandatory. Without AF_KEY in the kernel and without
# dpsec's preload library the plugin's code runs and reports that it cannot open a PF_KEY socket;
# with either, charon starts and keeps running until the timeout. A dlopen failure is an error.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/strongswan.conf" <<EOF
charon {
	load_modular = no
	load = random nonce sha1 kernel-pfkey!
	install_routes = no
	filelog {
		check {
			path = $work/charon.log
			default = 1
			lib = 2
			flush_line = yes
		}
	}
}
EOF
STRONGSWAN_CONF=$work/strongswan.conf unshare -m -n --propagation private \
	sh -c 'mount -t tmpfs tmpfs /run && exec timeout -s TERM 5 "$0"' "$CHARON" >"$work/out" 2>&1 || true
log=$(cat "$work/charon.log" 2>/dev/null || true)
if ! echo "$log" | grep -q "plugin 'kernel-pfkey': loaded successfully"; then
	echo "$log" >&2
	rm -f "$PLUGIN"
	die "charon cannot dlopen the plugin (removed it again)"
fi
if echo "$log" | grep -q 'unable to create PF_KEY socket'; then
	say "charon loads the plugin (this kernel has no AF_KEY: it needs dpsec's preload library to work)"
elif echo "$log" | grep -q 'loaded plugins:.*kernel-pfkey'; then
	say "charon loads the plugin and opened a PF_KEY socket"
else
	echo "$log" >&2
	cat "$work/out" >&2
	rm -f "$PLUGIN"
	die "charon's log does not show the plugin running (removed it again)"
fi

mkdir -p "$(dirname "$STAMP")"
printf 'installed=%s\nsource=%s\next=%s\nsha256=%s\n' "$ver" "$srcver" "$ext_id" \
	"$(sha256sum "$PLUGIN" | cut -d' ' -f1)" >"$STAMP"
say "installed $PLUGIN for strongSwan $ver (built from source $srcver) in $((SECONDS - start)) s"
