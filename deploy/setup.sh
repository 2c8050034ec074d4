#!/usr/bin/env bash
# ngstack on a fresh Debian 12 machine, as root.
#
#   deploy/setup.sh run    install dependencies, build, run the embedded default
#   deploy/setup.sh test   install dependencies, build, run the whole test suite
#   deploy/setup.sh deps   install dependencies only
#   deploy/setup.sh build  build only (build/ and, for tests, build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: DPDK, TBB, spdlog, yaml-cpp, meson, GoogleTest. Tests: Linux peers in
# namespaces (iproute2, ping, ethtool, setpriv/taskset, netcat), scapy, testpmd
# (dpdk), clang with libFuzzer (the fuzz suite).
PACKAGES=(
  build-essential pkg-config meson ninja-build
  libdpdk-dev dpdk libtbb-dev libspdlog-dev libyaml-cpp-dev libgtest-dev
  python3 python3-scapy python3-yaml gnuplot-nox iproute2 iputils-ping ethtool tcpdump util-linux procps netcat-openbsd
  clang libclang-rt-14-dev
)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ngstack setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
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
  ninja -C build-tsan tests/netisr_tests tests/unit_tests
}

build_asan() {
  [ -d build-asan ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build-asan tests/unit_tests tests/netisr_tests
}

# libFuzzer harnesses: clang, AddressSanitizer, coverage on every library.
build_fuzz() {
  [ -d build-fuzz ] || CXX=clang++ CC=clang meson setup build-fuzz --buildtype=debug -Dfuzz=true \
    -Db_sanitize=address -Db_lundef=false
  ninja -C build-fuzz tests/fuzz_router_input
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
  # The dispatcher's and the shared tables' concurrency tests under ThreadSanitizer.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" \
    meson test -C build-tsan --no-rebuild --print-errorlogs netisr shared_tables || rc=1
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
  test) require_root; deps; build; build_asan; build_tsan; build_fuzz; run_tests ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
