# shellcheck shell=bash
# Sourced by bind.sh and hugepages.sh: what a deploy script needs to know of
# an ngstack configuration, read from the resolved configuration that
# `ngstack check` prints, so that defaults and validation are the binary's own
# and a config ngstack would reject is rejected here too.
#
#   ngs_config_facts FILE   prints one fact per line:
#     memory_mb N | no_huge true|false | lcore LCORE CPU (main lcore first)
#     port NAME DEVICE      (DEVICE as written: a PCI address or a vdev string)
#
# The binary: $NGSTACK, else beside this script (the source tree's build/, or
# PREFIX/bin when installed under PREFIX/share/ngstack/deploy), else ngstack on
# PATH. `check FILE --offline` (schema only, no host checks) is used when the
# binary has it, plain `check FILE` otherwise.

ngs_find_binary() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  local c
  for c in "${NGSTACK:-}" "$here/../build/app/ngstack" "$here/../../../bin/ngstack" "$(command -v ngstack || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && [ -f "$c" ]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

# ngs_config_facts FILE; on failure prints the reason on stderr and returns 1.
ngs_config_facts() {
  local file=$1 bin yaml rc err
  [ -r "$file" ] || { echo "cannot read $file" >&2; return 1; }
  bin=$(ngs_find_binary) || { echo "cannot find the ngstack binary (build it: ninja -C build; or set NGSTACK=PATH)" >&2; return 1; }
  err=$(mktemp)
  rc=0
  yaml=$("$bin" check "$file" --offline 2>"$err") || rc=$?
  if [ "$rc" = 2 ]; then  # usage error: this binary has no --offline
    rc=0
    yaml=$("$bin" check "$file" 2>"$err") || rc=$?
  fi
  if [ "$rc" != 0 ]; then
    sed 's/^ngstack: error: //' "$err" | head -n 1 >&2
    rm -f "$err"
    return 1
  fi
  rm -f "$err"
  printf '%s\n' "$yaml" | /usr/bin/python3 -c '
import sys, yaml
c = yaml.safe_load(sys.stdin) or {}
eal = c.get("eal") or {}
print("memory_mb", int(eal.get("memory_mb", 0)))
print("no_huge", "true" if eal.get("no_huge") else "false")
cpus = {int(k): int(v) for k, v in (eal.get("lcore_cpus") or {}).items()}
lcores = [int(eal.get("main_lcore", 0))] + [int(l) for l in (c.get("workers") or {}).get("lcores") or []]
for l in lcores:
    print("lcore", l, cpus.get(l, l))
for p in c.get("ports") or []:
    print("port", p["name"], p["device"])
'
}

# ngs_pci_address DEVICE: the PCI address (DDDD:BB:DD.F, lower case) of a
# ports[].device string, devargs after a comma dropped; fails for a vdev.
ngs_pci_address() {
  local d=${1%%,*}
  d=${d,,}
  if [[ $d =~ ^[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$ ]]; then
    echo "0000:$d"
  elif [[ $d =~ ^[0-9a-f]{4,5}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$ ]]; then
    echo "$d"
  else
    return 1
  fi
}
