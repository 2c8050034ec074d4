#!/usr/bin/env bash
# Bind the PCI devices an ngstack configuration names to a DPDK driver, and
# put them back on their kernel driver afterwards. As root.
#
#   deploy/bind.sh --config FILE [--driver vfio-pci|uio_pci_generic] [--force] [--dry-run]
#   deploy/bind.sh --config FILE --unbind [--dry-run]      (also: --restore, or `restore`)
#
# Binding: every ports[].device that is a PCI address (DDDD:BB:DD.F or
# BB:DD.F) is bound with dpdk-devbind.py (Debian package dpdk) to --driver
# (default vfio-pci, loaded with modprobe when needed). Its previous kernel
# driver is kept in /var/lib/ngstack/bind/<ADDR>, which --unbind reads to
# bind it back. Devices already on a DPDK driver are skipped; mlx4/mlx5 NICs
# stay on their kernel driver (DPDK's PMD works through it); vdevs are not
# touched. Nothing is done unless every device can be handled: a missing
# device, a device vfio-pci cannot take (no IOMMU group), or a NIC whose
# interface is up or carries the default route (unless --force) stops the
# script before it changes anything. --dry-run prints what would be done.
#
# For tests: NGS_SYSFS_ROOT=DIR reads /sys, /proc and keeps its state under
# DIR; NGS_DEVBIND and NGS_MODPROBE replace dpdk-devbind.py and modprobe.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/config.sh
. "$HERE/config.sh"

ROOT=${NGS_SYSFS_ROOT:-}
DEVBIND=${NGS_DEVBIND:-dpdk-devbind.py}
MODPROBE=${NGS_MODPROBE:-modprobe}
STATE_DIR=$ROOT/var/lib/ngstack/bind
DPDK_DRIVERS=" vfio-pci uio_pci_generic igb_uio "
BIFURCATED=" mlx4_core mlx5_core "

die() { echo "ngstack bind: error: $*" >&2; exit 1; }
usage() { echo "ngstack bind: $*" >&2; sed -n '5,6p' "$0" >&2; exit 2; }
say() { echo "ngstack bind: $*"; }

config="" driver=vfio-pci action=bind dry_run=0 force=0
while [ $# -gt 0 ]; do
  case $1 in
    --config) [ $# -ge 2 ] || usage "--config needs a FILE"; config=$2; shift ;;
    --config=*) config=${1#*=} ;;
    --driver) [ $# -ge 2 ] || usage "--driver needs a value"; driver=$2; shift ;;
    --driver=*) driver=${1#*=} ;;
    --unbind | --restore | restore | unbind) action=unbind ;;
    --dry-run) dry_run=1 ;;
    --force) force=1 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) usage "unknown argument \"$1\"" ;;
  esac
  shift
done
[ -n "$config" ] || usage "--config FILE is required"
case $driver in
  vfio-pci | uio_pci_generic) ;;
  *) usage "--driver must be vfio-pci or uio_pci_generic, not \"$driver\"" ;;
esac
if [ -z "$ROOT" ] && [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (binding writes to /sys), or use --dry-run"
fi

facts=$(ngs_config_facts "$config" 2>&1) || die "$config: $facts"

# The config's PCI devices: "ADDR PORT" per line, in port order, each once.
devices=()
declare -A port_of=()
while read -r kind name device; do
  [ "$kind" = port ] || continue
  addr=$(ngs_pci_address "$device") || continue
  [ -z "${port_of[$addr]:-}" ] || continue
  port_of[$addr]=$name
  devices+=("$addr")
done <<<"$facts"
if [ ${#devices[@]} = 0 ]; then
  say "$config names no PCI device (only virtual devices): nothing to do"
  exit 0
fi

sysdev() { echo "$ROOT/sys/bus/pci/devices/$1"; }
driver_of() {  # the driver a device is bound to, or "" when none
  local link
  link=$(readlink "$(sysdev "$1")/driver" 2>/dev/null) || return 0
  basename "$link"
}
interfaces_of() { ls "$(sysdev "$1")/net" 2>/dev/null || true; }
is_up() {  # IFF_UP in the interface's flags
  local flags
  flags=$(cat "$ROOT/sys/class/net/$1/flags" 2>/dev/null) || return 1
  (( flags & 1 ))
}
has_default_route() {
  awk -v ifc="$1" '$1 == ifc && $2 == "00000000" { found = 1 } END { exit !found }' "$ROOT/proc/net/route" 2>/dev/null
}
module_loaded() { [ -d "$ROOT/sys/module/${1//-/_}" ] || [ -d "$ROOT/sys/bus/pci/drivers/$1" ]; }
run() {
  if [ "$dry_run" = 1 ]; then
    say "would run: $*"
  else
    "$@"
  fi
}
desc() { echo "$1 (port ${port_of[$1]})"; }

unbind_all() {
  local addr prev now state
  for addr in "${devices[@]}"; do
    state=$STATE_DIR/$addr
    [ -e "$(sysdev "$addr")" ] || die "$(desc "$addr"): no such PCI device (see lspci -D or dpdk-devbind.py --status)"
    now=$(driver_of "$addr")
    if [ ! -f "$state" ]; then
      say "$(desc "$addr"): no record of a previous driver (not bound by bind.sh), left on ${now:-no driver}"
      continue
    fi
    prev=$(head -n 1 "$state")
    if [ "$now" = "$prev" ]; then
      say "$(desc "$addr"): already on ${prev:-no driver}"
    elif [ -z "$prev" ]; then
      run "$DEVBIND" --unbind "$addr"
      [ "$dry_run" = 1 ] || [ -z "$(driver_of "$addr")" ] || die "$(desc "$addr"): still on $(driver_of "$addr") after $DEVBIND --unbind"
      say "$(desc "$addr"): $now -> no driver (as before)"
    else
      run "$DEVBIND" --bind="$prev" "$addr"
      now2=$(driver_of "$addr")
      [ "$dry_run" = 1 ] || [ "$now2" = "$prev" ] || die "$(desc "$addr"): $DEVBIND --bind=$prev left it on ${now2:-no driver}"
      say "$(desc "$addr"): $now -> $prev"
    fi
    [ "$dry_run" = 1 ] || rm -f "$state"
  done
}

bind_all() {
  # Plan every device first; change nothing unless all of them can be handled.
  local addr now ifc problems=() todo=() notes=() why
  local noiommu
  noiommu=$(cat "$ROOT/sys/module/vfio/parameters/enable_unsafe_noiommu_mode" 2>/dev/null || echo N)
  for addr in "${devices[@]}"; do
    if [ ! -e "$(sysdev "$addr")" ]; then
      problems+=("$(desc "$addr"): no such PCI device (see lspci -D or dpdk-devbind.py --status)")
      continue
    fi
    now=$(driver_of "$addr")
    if [[ $DPDK_DRIVERS == *" $now "* ]]; then
      say "$(desc "$addr"): already on $now (a DPDK driver), skipped"
      continue
    fi
    if [[ $BIFURCATED == *" $now "* ]]; then
      say "$(desc "$addr"): on $now, a bifurcated driver: DPDK's mlx PMD works through it, left as it is"
      continue
    fi
    if [ "$driver" = vfio-pci ] && [ ! -e "$(sysdev "$addr")/iommu_group" ] && [ "$noiommu" != Y ]; then
      problems+=("$(desc "$addr"): no IOMMU group, so vfio-pci cannot take it: turn the IOMMU on (intel_iommu=on iommu=pt or amd_iommu=on on the kernel command line), or use --driver uio_pci_generic")
      continue
    fi
    why=""
    for ifc in $(interfaces_of "$addr"); do
      if has_default_route "$ifc"; then
        why+="${why:+; }its interface $ifc carries the default route"
      elif is_up "$ifc"; then
        why+="${why:+; }its interface $ifc is up"
      fi
    done
    if [ -n "$why" ] && [ "$force" = 0 ]; then
      problems+=("$(desc "$addr"): $why: binding it cuts the host's traffic there (ip link set dev IF down first, or --force)")
      continue
    fi
    todo+=("$addr")
    notes+=("$why")
  done
  if [ ${#problems[@]} -gt 0 ]; then
    for why in "${problems[@]}"; do echo "ngstack bind: error: $why" >&2; done
    echo "ngstack bind: nothing was changed" >&2
    exit 1
  fi
  [ ${#todo[@]} -gt 0 ] || return 0

  if ! module_loaded "$driver"; then
    run "$MODPROBE" "$driver" || die "modprobe $driver failed"
  fi
  local i prev after fflag=()
  [ "$force" = 0 ] || fflag=(--force)
  for i in "${!todo[@]}"; do
    addr=${todo[$i]}
    prev=$(driver_of "$addr")
    if [ "$dry_run" = 0 ]; then
      mkdir -p "$STATE_DIR"
      # An older record (bound, then moved back by hand) is replaced: this
      # driver is the one to return to now.
      printf '%s\n' "$prev" >"$STATE_DIR/$addr"
    fi
    run "$DEVBIND" "${fflag[@]}" --bind="$driver" "$addr"
    if [ "$dry_run" = 0 ]; then
      after=$(driver_of "$addr")
      if [ "$after" != "$driver" ]; then
        [ "$after" != "$prev" ] || rm -f "$STATE_DIR/$addr"
        die "$(desc "$addr"): $DEVBIND --bind=$driver left it on ${after:-no driver} (see its messages above)"
      fi
    fi
    say "$(desc "$addr"): ${prev:-no driver} -> $driver${notes[$i]:+ (--force: ${notes[$i]})}"
  done
  [ "$dry_run" = 1 ] || say "previous drivers kept in $STATE_DIR; deploy/bind.sh --config $config --unbind puts them back"
}

case $action in
  bind) bind_all ;;
  unbind) unbind_all ;;
esac
[ "$dry_run" = 0 ] || say "dry run: nothing was changed"
