# Fetch and unpack a Debian source package of the installed version, with deb-src entries derived
# at run time from the machine's own apt sources. Sourced (not run) by scripts/strongswan-pfkey.sh
# and scripts/ipsec-secgw.sh, which define die() first and run as root.
#
#   deb_src_fetch SOURCE VERSION CACHE
#
# unpacks SOURCE's source package into CACHE/SOURCE-V and sets DEB_SRC_VERSION=V and
# DEB_SRC_DIR=CACHE/SOURCE-V. V is VERSION when the archives serve it, else the newest other Debian
# revision of the same upstream release (a warning says so); die()s when neither can be fetched.
# Only the source is downloaded (apt-get source --download-only, then dpkg-source -x): no build
# dependencies, no build. An unpacked tree is reused on later calls.

DEB_SRC_LIST=/etc/apt/sources.list.d/dpsec-deb-src

deb_src_warn() { echo "$(basename "$0" .sh): warning: $*" >&2; }

# The deb-src twins of the enabled deb entries for this release's suites (third-party repositories
# carry no Debian source), in $DEB_SRC_LIST.sources (deb822) and $DEB_SRC_LIST.list (one-line).
deb_src_write_lists() {
	local out822=$DEB_SRC_LIST.sources outlist=$DEB_SRC_LIST.list tmp f codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
	tmp=$(mktemp)
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] && [ "$f" != "$out822" ] || continue
		# deb822: one stanza per paragraph; keep enabled stanzas of type deb for our suites
		awk -v cn="$codename" '
			function flush() {
				if (n && isdeb && ours && !off) {
					if (printed++) print ""
					for (i = 1; i <= n; i++) print (lines[i] ~ /^Types:/ ? "Types: deb-src" : lines[i])
				}
				n = 0; isdeb = 0; ours = 0; off = 0
			}
			/^[ \t]*$/ { flush(); next }
			/^#/ { next }
			{ lines[++n] = $0 }
			/^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == cn || index($i, cn "-") == 1) ours = 1 }
			/^Enabled:[ \t]*no/ { off = 1 }
			END { flush() }' "$f" >>"$tmp"
	done
	if [ -s "$tmp" ]; then
		mv "$tmp" "$out822" && chmod 0644 "$out822"
	else
		rm -f "$tmp" "$out822"
	fi
	tmp=$(mktemp)
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -e "$f" ] && [ "$f" != "$outlist" ] || continue
		# one-line style: "deb [options] URI SUITE COMPONENTS..."
		awk -v cn="$codename" '$1 == "deb" {
			s = ($2 ~ /^\[/) ? 4 : 3
			while ($2 ~ /^\[/ && $(s - 2) !~ /\]$/ && s <= NF) s++
			if ($s == cn || index($s, cn "-") == 1) { $1 = "deb-src"; print }
		}' "$f" >>"$tmp"
	done
	if [ -s "$tmp" ]; then
		mv "$tmp" "$outlist" && chmod 0644 "$outlist"
	else
		rm -f "$tmp" "$outlist"
	fi
	[ -e "$out822" ] || [ -e "$outlist" ] ||
		die "no apt source for '$codename' found in /etc/apt/sources.list{,.d}: cannot derive a deb-src entry"
}

deb_src_versions() { apt-cache showsrc "$1" 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -u; }

deb_src_fetch() {
	local src=$1 ver=$2 cache=$3 upstream v dir dl candidates
	mkdir -p "$cache"
	if ! deb_src_versions "$src" | grep -qx "$ver"; then
		deb_src_write_lists
		echo "$(basename "$0" .sh): apt-get update (deb-src entries in $DEB_SRC_LIST.*)"
		apt-get update -q >"$cache.apt-update.log" 2>&1 || {
			cat "$cache.apt-update.log" >&2
			die "apt-get update failed"
		}
	fi
	# The exact version first. A security archive may index a version whose files it no longer
	# serves; then take the newest other Debian revision of the same upstream release (same ABI,
	# the differences are patches elsewhere) and say so loudly.
	upstream=${ver%-*}
	candidates=("$ver")
	while read -r v; do
		[ "$v" != "$ver" ] && [ "${v%-*}" = "$upstream" ] && candidates+=("$v")
	done < <(deb_src_versions "$src" | sort -r -V)

	DEB_SRC_VERSION=
	for v in "${candidates[@]}"; do
		dir=$cache/$src-$v
		if [ -f "$dir/.dpsec-unpacked" ]; then
			DEB_SRC_VERSION=$v
			break
		fi
		dl=$cache/download-$v
		mkdir -p "$dl"
		if (cd "$dl" && apt-get source -q --download-only "$src=$v") >"$dl.log" 2>&1; then
			rm -rf "$dir"
			dpkg-source --no-copy -x "$dl/${src}_${v#*:}.dsc" "$dir" >"$dir.unpack.log" 2>&1 ||
				die "dpkg-source -x failed for $src $v (see $dir.unpack.log)"
			touch "$dir/.dpsec-unpacked"
			DEB_SRC_VERSION=$v
			break
		fi
		deb_src_warn "cannot fetch the source of $src $v:"
		grep -E '^(E|Err):' "$dl.log" >&2 || tail -3 "$dl.log" >&2
	done
	[ -n "$DEB_SRC_VERSION" ] || die "no source package for $src $upstream is available from the configured archives"
	[ "$DEB_SRC_VERSION" = "$ver" ] ||
		deb_src_warn "building from $src $DEB_SRC_VERSION, the installed version is $ver"
	DEB_SRC_DIR=$cache/$src-$DEB_SRC_VERSION
}
