#!/usr/bin/env bash
# ngstack on a fresh Debian 12 machine, as root.
#
#   deploy/setup.sh run    install dependencies, build, run the embedded default
#   deploy/setup.sh test   install dependencies, build, run the whole test suite
#   deploy/setup.sh deps   install dependencies only
#   deploy/setup.sh build  build only (build/ and, for tests, build-asan/)
#   deploy/setup.sh check-programs   is every program the tests start installed?
set -euo pipefail
cd "$(dirname "$0")/.."

# What to install is one list: the libraries ngstack builds against, here,
# and every program the build, tests, benchmarks and deploy scripts start,
# with its package, in deploy/programs.list (tests/programs_listed.py keeps
# that list complete).
# dpdk-doc: the sources of DPDK's l3fwd example, which perf/router_bench.py
# builds as a peer (perf/l3fwd.py).
LIBRARIES=(
  libdpdk-dev libtbb-dev libspdlog-dev libyaml-cpp-dev libgtest-dev libcpp-httplib-dev
  python3-scapy python3-yaml libclang-rt-14-dev dpdk-doc
)
PROGRAMS_LIST=${NGS_PROGRAMS_LIST:-deploy/programs.list}  # the tests point it at a list of their own

# "program package" pairs of deploy/programs.list, one per line.
program_packages() { sed -e 's/#.*//' "$PROGRAMS_LIST" | awk 'NF >= 2 {print $1, $2}'; }

deps() {
  local missing=() p
  local packages=("${LIBRARIES[@]}")
  while read -r _ p; do packages+=("$p"); done < <(program_packages)
  for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ngstack setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Before the suite: every program it may start is here, or stop now with the
# package that provides it (rather than a FileNotFoundError twenty minutes in).
check_programs() {
  local prog pkg bad=0
  while read -r prog pkg; do
    if [[ "$prog" == /* ]]; then [ -x "$prog" ] && continue; else command -v "$prog" >/dev/null 2>&1 && continue; fi
    echo "ngstack setup: $prog is missing: apt-get install $pkg (deploy/programs.list)" >&2
    bad=1
  done < <(program_packages)
  [ $bad = 0 ] || { echo "ngstack setup: the test suite needs the programs above; run deploy/setup.sh deps" >&2; return 1; }
}

build() {
  [ -d build ] || meson setup build --buildtype=release
  ninja -C build
}

build_tsan() {
  # -Wno-tsan: DPDK's rte_atomic.h fences, which TSan does not model; stack/tsan.hpp
  # states the orderings they give instead.
  [ -d build-tsan ] || meson setup build-tsan --buildtype=debug -Db_sanitize=thread -Db_lundef=false \
    -Dcpp_args=-Wno-tsan
  ninja -C build-tsan tests/netisr_tests tests/unit_tests tests/pcb_tests
}

build_asan() {
  [ -d build-asan ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build-asan tests/unit_tests tests/netisr_tests tests/pcb_tests
}

# libFuzzer harnesses: clang, AddressSanitizer, coverage on every library.
build_fuzz() {
  [ -d build-fuzz ] || CXX=clang++ CC=clang meson setup build-fuzz --buildtype=debug -Dfuzz=true \
    -Db_sanitize=address -Db_lundef=false
  ninja -C build-fuzz tests/fuzz_router_input tests/fuzz_tcp
}

require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "ngstack setup: run as root (installs packages; DPDK and the test namespaces need root)" >&2
    exit 1
  fi
}

# meson's summary is not a line CI tools read; print "N passed, N failed" from
# the test logs of every suite run.
summarize() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
passed = failed = skipped = 0
for log in sys.argv[1:]:
    for line in open(log):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print(f"ngstack: {passed} passed, {failed} failed, {skipped} skipped")
PY
}

run_tests() {
  local rc=0
  meson test -C build --print-errorlogs --suite unit --suite integration --suite perf-smoke || rc=1
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    meson test -C build-asan --no-rebuild --print-errorlogs --suite unit || rc=1
  # The dispatcher's, the shared tables' and the connection table's concurrency
  # tests under ThreadSanitizer.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" \
    meson test -C build-tsan --no-rebuild --print-errorlogs netisr shared_tables pcb || rc=1
  # A bounded libFuzzer run over the router's input path.
  meson test -C build-fuzz --no-rebuild --print-errorlogs --suite fuzz || rc=1
  summarize build/meson-logs/testlog.json build-asan/meson-logs/testlog.json build-tsan/meson-logs/testlog.json \
    build-fuzz/meson-logs/testlog.json
  return $rc
}

case "${1:-}" in
  deps) require_root; deps ;;
  build) build ;;
  run) require_root; deps; build; exec build/app/ngstack "${@:2}" ;;
  test) require_root; deps; check_programs; build; build_asan; build_tsan; build_fuzz; run_tests ;;
  check-programs) check_programs ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
