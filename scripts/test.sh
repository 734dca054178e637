#!/usr/bin/env bash
# Set up the machine, build, and run every test: unit tests (normal and
# ASan/UBSan builds), 60 s runs of the fuzzers (PF_KEY codec, configuration,
# dataplane), and the integration tests on real DPDK devices.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m interop` for the slow
# interop tests alone, or `scripts/test.sh -k pcap`.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d /tmp/dpsec-test.XXXXXX)
passed=0
failed=0

count_meson() { # parse "Ok: N" / "Fail: N" of meson test's summary
	local ok fail
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$1" | tail -1)
	fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$1" | tail -1)
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-1}))
}

bash scripts/setup.sh || exit 1
bash scripts/build.sh || exit 1

echo "== unit tests"
meson test -C build --suite unit --print-errorlogs | tee "$log/unit.txt"
count_meson "$log/unit.txt"

echo "== unit tests under ASan/UBSan (no DPDK)"
if [ ! -f build-asan/build.ninja ]; then
	CC=clang meson setup build-asan -Ddataplane=false -Db_sanitize=address,undefined \
		-Db_lundef=false --buildtype=debug >"$log/asan-setup.txt" || { cat "$log/asan-setup.txt"; exit 1; }
fi
ninja -C build-asan >"$log/asan-build.txt" || { cat "$log/asan-build.txt"; exit 1; }
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C build-asan --print-errorlogs | tee "$log/asan.txt"
count_meson "$log/asan.txt"

# libFuzzer targets, 60 s each: a crash, a leak or a sanitizer report fails.
# The seeds are copied: libFuzzer adds what it finds to its corpus directory.
fuzz() { # name build-dir seed... ; extra libFuzzer flags in $fuzz_flags
	local name=$1 dir=$2 corpus
	shift 2
	echo "== fuzzer $name (libFuzzer, 60 s)"
	if ! ninja -C "$dir" "tests/$name" >"$log/$name-build.txt"; then
		cat "$log/$name-build.txt"
		failed=$((failed + 1))
		return
	fi
	corpus=$(mktemp -d /tmp/dpsec-fuzz.XXXXXX)
	cp "$@" "$corpus"/
	# shellcheck disable=SC2086
	if "$dir/tests/$name" -max_total_time=60 -artifact_prefix="$log/$name-" ${fuzz_flags:-} \
		"$corpus" >"$log/$name.txt" 2>&1; then
		tail -1 "$log/$name.txt"
		passed=$((passed + 1))
	else
		tail -40 "$log/$name.txt"
		echo "$name failed; reproducer in $log/"
		failed=$((failed + 1))
	fi
	rm -rf "$corpus"
}

# Without DPDK: the PF_KEY codec and the configuration loader.
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz -Ddataplane=false -Dfuzz=true -Db_lundef=false \
		>"$log/fuzz-setup.txt" || { cat "$log/fuzz-setup.txt"; exit 1; }
fi
fuzz fuzz_pfkey build-fuzz tests/fuzz/corpus/*
fuzz_flags="-dict=tests/fuzz/config.dict" fuzz fuzz_config build-fuzz config/*.yaml config/examples/*.yaml

# The packet path on the real dataplane: DPDK-enabled, everything under
# ASan/UBSan (Debian's DPDK itself is not instrumented).
if [ ! -f build-fuzz-dp/build.ninja ]; then
	CC=clang meson setup build-fuzz-dp -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false >"$log/fuzz-dp-setup.txt" || { cat "$log/fuzz-dp-setup.txt"; exit 1; }
fi
fuzz fuzz_dataplane build-fuzz-dp tests/fuzz/corpus_dataplane/*

# dpsecd itself under ASan/UBSan, for the tests whose failure is a use after
# free: SAs deleted while their crypto operations are in flight (issue 12).
# ASan does not see rte_malloc memory, but dp_sa_free zeroes a freed SA, so
# an operation finished through it faults at once and ASan reports where.
# And a peer's neighbour entry (malloc'd: ASan sees it) freed while an SA's
# worker keeps it from loop to loop (dp_output_peer()).
echo "== the crypto queue path in flight and the kept neighbour entry, dpsecd under ASan/UBSan"
if [ ! -f build-asan-dp/build.ninja ]; then
	CC=clang meson setup build-asan-dp -Db_sanitize=address,undefined -Db_lundef=false \
		>"$log/asan-dp-setup.txt" ||
		{ cat "$log/asan-dp-setup.txt"; exit 1; }
fi
ninja -C build-asan-dp >"$log/asan-dp-build.txt" || { cat "$log/asan-dp-build.txt"; exit 1; }
DPSEC_BUILD="$PWD/build-asan-dp" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	tests/integration/test_queue_inflight.py \
	"tests/integration/test_forward_netns.py::test_esp_follows_the_peer_to_its_new_mac_after_its_entry_aged_out" |
	tee "$log/asan-dp.txt"
if tail -1 "$log/asan-dp.txt" | grep -q ' passed' && ! tail -1 "$log/asan-dp.txt" | grep -q 'failed\|error'; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
fi

echo "== manual pages (mandoc -Tlint; a warning fails)"
if bash scripts/manlint.sh; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
fi

echo "== integration tests"
/usr/bin/python3 -m pytest -v -p no:cacheprovider "$@" | tee "$log/pytest.txt"
p=$(tail -1 "$log/pytest.txt" | grep -o '[0-9]* passed' | grep -o '[0-9]*')
f=$(tail -1 "$log/pytest.txt" | grep -o '[0-9]* failed' | grep -o '[0-9]*')
e=$(tail -1 "$log/pytest.txt" | grep -o '[0-9]* error' | grep -o '[0-9]*')
[ -n "$p$f$e" ] || f=1 # no summary line: the run itself broke
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-0} + ${e:-0}))

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
