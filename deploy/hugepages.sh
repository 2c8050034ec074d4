#!/usr/bin/env bash
# Reserve hugepages and mount hugetlbfs for ngstack (eal.no_huge: false). As root.
#
#   deploy/hugepages.sh [PAGES]              PAGES 2 MiB pages on every NUMA node (default 1024)
#   deploy/hugepages.sh --config FILE        what FILE needs, on the NUMA nodes of its lcores
#   deploy/hugepages.sh --node N PAGES ...   PAGES on node N (repeatable)
#   deploy/hugepages.sh --release            reservation back to 0, unmount what this script mounted
#   options: --size 2M|1G (default 2M)  --headroom MB (default 64)  --dry-run
#
# --config: EAL started with -m eal.memory_mb spreads that memory over the
# NUMA nodes in proportion to the lcores on each (main lcore and workers,
# eal.lcore_cpus followed), so node N needs memory_mb * lcores_on_N / lcores.
# Every node with an lcore or a configured PCI NIC (its descriptor rings live
# on its node) gets --headroom MiB more, for allocations beyond -m (rings,
# a dpdk-dumpcap secondary) and page rounding. A reservation is only ever
# raised by --config, to what is in use plus what ngstack needs, never lowered.
# 1 GiB pages need the CPU flag pdpe1gb; the kernel can rarely find them after
# boot, and when it falls short the kernel command line that reserves them at
# boot is printed. Settings that last across reboots (kernel command line,
# sysctl, /etc/fstab) are printed as advice, never written.
#
# For tests: NGS_SYSFS_ROOT=DIR reads and writes /sys, /proc, the mount points
# and /var/lib/ngstack under DIR; NGS_MOUNT and NGS_UMOUNT replace mount and umount.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/config.sh
. "$HERE/config.sh"

ROOT=${NGS_SYSFS_ROOT:-}
MOUNT=${NGS_MOUNT:-mount}
UMOUNT=${NGS_UMOUNT:-umount}
STATE=$ROOT/var/lib/ngstack/hugepages/mounts

die() { echo "ngstack hugepages: error: $*" >&2; exit 1; }
usage() { echo "ngstack hugepages: $*" >&2; sed -n '4,9p' "$0" >&2; exit 2; }
say() { echo "ngstack hugepages: $*"; }

mode="" config="" size=2M headroom=64 dry_run=0
declare -A want=()  # node -> pages (--node, PAGES)
while [ $# -gt 0 ]; do
  case $1 in
    --config) [ $# -ge 2 ] || usage "--config needs a FILE"; config=$2; mode=${mode:-config}; [ "$mode" = config ] || usage "--config cannot be combined with --node, PAGES or --release"; shift ;;
    --node)
      [ $# -ge 3 ] || usage "--node needs a node number and a page count"
      [[ $2 =~ ^[0-9]+$ && $3 =~ ^[0-9]+$ ]] || usage "--node $2 $3: expected two numbers"
      mode=${mode:-node}; [ "$mode" = node ] || usage "--node cannot be combined with --config, PAGES or --release"
      want[$2]=$3; shift 2 ;;
    --size) [ $# -ge 2 ] || usage "--size needs 2M or 1G"; size=$2; shift ;;
    --headroom) [[ ${2:-} =~ ^[0-9]+$ ]] || usage "--headroom needs a number of MiB"; headroom=$2; shift ;;
    --release) mode=${mode:-release}; [ "$mode" = release ] || usage "--release cannot be combined with --config, --node or PAGES" ;;
    --dry-run) dry_run=1 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    [0-9]*)
      [[ $1 =~ ^[0-9]+$ ]] || usage "PAGES must be a number, not \"$1\""
      mode=${mode:-all}; [ "$mode" = all ] || usage "PAGES cannot be combined with --config, --node or --release"
      want[all]=$1 ;;
    *) usage "unknown argument \"$1\"" ;;
  esac
  shift
done
mode=${mode:-all}
[ "$mode" != all ] || [ -n "${want[all]:-}" ] || want[all]=1024
case $size in
  2M | 2m | 2048kB) size=2M kb=2048 page_mb=2 ;;
  1G | 1g | 1048576kB) size=1G kb=1048576 page_mb=1024 ;;
  *) usage "--size must be 2M or 1G, not \"$size\"" ;;
esac
if [ -z "$ROOT" ] && [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (writes to /sys and mounts hugetlbfs), or use --dry-run"
fi
if [ "$size" = 1G ]; then
  grep -qw pdpe1gb "$ROOT/proc/cpuinfo" 2>/dev/null || die "this CPU has no 1 GiB pages (no pdpe1gb in /proc/cpuinfo): use --size 2M"
  [ -d "$ROOT/sys/kernel/mm/hugepages/hugepages-1048576kB" ] ||
    die "this kernel offers no 1 GiB pages (no /sys/kernel/mm/hugepages/hugepages-1048576kB): use --size 2M"
fi

# ---- NUMA nodes and their hugepage counters --------------------------------

NODE_DIR=$ROOT/sys/devices/system/node
nodes=()
for d in "$NODE_DIR"/node[0-9]*; do
  [ -d "$d" ] && nodes+=("${d##*node}")
done
numa=1
if [ ${#nodes[@]} = 0 ]; then  # a kernel without NUMA: one pool, called node 0
  numa=0
  nodes=(0)
fi
mapfile -t nodes < <(printf '%s\n' "${nodes[@]}" | sort -n)
counter() {  # counter NODE nr_hugepages|free_hugepages
  if [ "$numa" = 1 ]; then
    echo "$NODE_DIR/node$1/hugepages/hugepages-${kb}kB/$2"
  else
    echo "$ROOT/sys/kernel/mm/hugepages/hugepages-${kb}kB/$2"
  fi
}
read_count() {  # a counter's value; 0 when absent or empty
  local v
  v=$(cat "$(counter "$1" "$2")" 2>/dev/null || true)
  [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}
write_count() {  # write_count NODE PAGES
  local f
  f=$(counter "$1" nr_hugepages)
  if [ "$dry_run" = 1 ]; then
    say "would write $2 to ${f#"$ROOT"}"
  else
    [ -e "$f" ] || die "node $1 has no ${f#"$ROOT"} (no $size pages on this kernel?)"
    echo "$2" >"$f" || die "cannot write $2 to ${f#"$ROOT"}"
  fi
}
expand_cpulist() {  # "0-3,8" -> 0 1 2 3 8
  local part
  local IFS=,
  for part in $1; do
    if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; elif [ -n "$part" ]; then echo "$part"; fi
  done
}
node_of_cpu() {
  local link n
  [ "$numa" = 1 ] || { echo 0; return 0; }
  for link in "$ROOT/sys/devices/system/cpu/cpu$1"/node[0-9]*; do
    [ -e "$link" ] && { echo "${link##*node}"; return 0; }
  done
  for n in "${nodes[@]}"; do
    if expand_cpulist "$(cat "$NODE_DIR/node$n/cpulist" 2>/dev/null)" | grep -qx "$1"; then
      echo "$n"
      return 0
    fi
  done
  return 1
}

# ---- the plan: pages per node ------------------------------------------------

declare -A target=()  # node -> nr_hugepages to set
plan_config() {
  local facts kind a b memory_mb=0 total=0 n addr node
  declare -A lcores_on=() cpus_on=() nics_on=()
  facts=$(ngs_config_facts "$config" 2>&1) || die "$config: $facts"
  if grep -qx "no_huge true" <<<"$facts"; then
    say "$config has eal.no_huge: true: it runs on ordinary memory and needs no hugepages"
    exit 0
  fi
  while read -r kind a b; do
    case $kind in
      memory_mb) memory_mb=$a ;;
      lcore)
        node=$(node_of_cpu "$b") || die "$config: CPU $b (lcore $a) is on no NUMA node in /sys/devices/system/node"
        lcores_on[$node]=$((${lcores_on[$node]:-0} + 1))
        cpus_on[$node]+="${cpus_on[$node]:+ }$a"
        total=$((total + 1)) ;;
      port)
        addr=$(ngs_pci_address "$b") || continue
        node=$(cat "$ROOT/sys/bus/pci/devices/$addr/numa_node" 2>/dev/null) || { say "$addr (port $a) is not present: its NUMA node is unknown"; continue; }
        # No NUMA information (-1): ngstack puts the port's rings on node 0.
        [[ $node =~ ^[0-9]+$ ]] && [ "$numa" = 1 ] || node=0
        nics_on[$node]+="${nics_on[$node]:+ }$addr" ;;
    esac
  done <<<"$facts"
  say "$config: eal.memory_mb $memory_mb over $total lcore(s), in proportion to the lcores on each NUMA node, +$headroom MiB headroom per node used"
  local node_list
  node_list=$(printf '%s\n' "${!lcores_on[@]}" "${!nics_on[@]}" | sort -nu)
  for n in $node_list; do
    [ -d "$NODE_DIR/node$n" ] || [ "$numa" = 0 ] || die "$config: node $n is used but $NODE_DIR/node$n does not exist"
    local count=${lcores_on[$n]:-0} need_mb pages nr free in_use what=""
    need_mb=$(( (memory_mb * count + total - 1) / total ))
    pages=$(( (need_mb + headroom + page_mb - 1) / page_mb ))
    nr=$(read_count "$n" nr_hugepages)
    free=$(read_count "$n" free_hugepages)
    in_use=$(( nr > free ? nr - free : 0 ))
    target[$n]=$(( nr > in_use + pages ? nr : in_use + pages ))
    [ "$count" = 0 ] || what="lcores ${cpus_on[$n]} ($need_mb MiB of -m)"
    [ -z "${nics_on[$n]:-}" ] || what+="${what:+, }NICs ${nics_on[$n]}"
    say "node $n: $what + $headroom MiB -> $pages pages of $size; $nr reserved, $in_use in use -> nr_hugepages ${target[$n]}"
  done
}

case $mode in
  config) plan_config ;;
  node)
    for n in "${!want[@]}"; do
      [ "$numa" = 1 ] && { [ -d "$NODE_DIR/node$n" ] || die "--node $n: no such NUMA node (nodes: ${nodes[*]})"; }
      [ "$numa" = 1 ] || [ "$n" = 0 ] || die "--node $n: this kernel has no NUMA nodes; use --node 0 or PAGES"
      target[$n]=${want[$n]}
    done ;;
  all) for n in "${nodes[@]}"; do target[$n]=${want[all]}; done ;;
  release) for n in "${nodes[@]}"; do target[$n]=0; done ;;
esac

# ---- reserve, mount ----------------------------------------------------------

mapfile -t planned < <(printf '%s\n' "${!target[@]}" | sort -n)
short=()
for n in "${planned[@]}"; do
  write_count "$n" "${target[$n]}"
  [ "$dry_run" = 0 ] || continue
  got=$(read_count "$n" nr_hugepages)
  if [ "$mode" = release ]; then
    [ "$got" = 0 ] || say "node $n: $got page(s) of $size still in use (a DPDK process running, or its files left in a hugetlbfs mount)"
  elif [ "$got" -lt "${target[$n]}" ]; then
    short+=("node $n: asked for ${target[$n]} pages of $size, the kernel found $got")
  fi
done

mount_dir=/dev/hugepages
[ "$size" = 2M ] || mount_dir=/dev/hugepages1G
default_kb=$(awk '/^Hugepagesize:/ { print $2 }' "$ROOT/proc/meminfo" 2>/dev/null || true)
mounted_for_size() {  # a hugetlbfs mount of this page size exists (the kernel prints 1G as 1024M)
  awk -v sz="pagesize=$([ "$size" = 1G ] && echo 1024M || echo "$size")" -v alt="pagesize=$size" \
      -v dflt="$([ "${default_kb:-2048}" = "$kb" ] && echo 1 || echo 0)" '
    $3 == "hugetlbfs" { if (index($4, sz) || index($4, alt)) found = 1; else if ($4 !~ /pagesize=/ && dflt) found = 1 }
    END { exit !found }' "$ROOT/proc/mounts" 2>/dev/null
}
mounted_at() { awk -v d="$1" '$2 == d && $3 == "hugetlbfs" { found = 1 } END { exit !found }' "$ROOT/proc/mounts" 2>/dev/null; }

if [ "$mode" = release ]; then
  if [ -f "$STATE" ]; then
    while read -r dir; do
      [ -n "$dir" ] || continue
      if mounted_at "$dir"; then
        if [ "$dry_run" = 1 ]; then say "would run: $UMOUNT $ROOT$dir"; else "$UMOUNT" "$ROOT$dir" || die "cannot unmount $dir"; say "unmounted $dir"; fi
      fi
    done <"$STATE"
    [ "$dry_run" = 1 ] || rm -f "$STATE"
  fi
else
  if mounted_for_size; then
    :
  elif [ "$dry_run" = 1 ]; then
    say "would run: mkdir -p $mount_dir && $MOUNT -t hugetlbfs -o pagesize=$size nodev $mount_dir"
  else
    mkdir -p "$ROOT$mount_dir"
    "$MOUNT" -t hugetlbfs -o "pagesize=$size" nodev "$ROOT$mount_dir" || die "cannot mount hugetlbfs on $mount_dir"
    mkdir -p "$(dirname "$STATE")"
    grep -qx "$mount_dir" "$STATE" 2>/dev/null || echo "$mount_dir" >>"$STATE"
    say "mounted hugetlbfs (pagesize=$size) on $mount_dir"
  fi
fi

# ---- what there is now, and how to keep it -------------------------------------

if [ "$dry_run" = 0 ]; then
  for n in "${nodes[@]}"; do
    say "node $n: $(read_count "$n" nr_hugepages) pages of $size reserved, $(read_count "$n" free_hugepages) free"
  done
fi
[ "$mode" != release ] || { [ "$dry_run" = 0 ] || say "dry run: nothing was changed"; exit 0; }

# Boot-time counts: the new target where planned, the present count elsewhere.
per_node="" total=0
for n in "${nodes[@]}"; do
  c=${target[$n]:-$(read_count "$n" nr_hugepages)}
  per_node+="${per_node:+,}$n:$c"
  total=$((total + c))
done
echo "ngstack hugepages: to keep this across reboots (nothing below was written):"
if [ "$size" = 1G ]; then
  echo "  kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub; reboot):"
  echo "    default_hugepagesz=1G hugepagesz=1G hugepages=$total"
  [ ${#nodes[@]} -lt 2 ] || echo "    or per node (Linux 5.16 and later): default_hugepagesz=1G hugepagesz=1G hugepages=$per_node"
else
  echo "  /etc/sysctl.d/80-ngstack-hugepages.conf (the kernel spreads them over the nodes):"
  echo "    vm.nr_hugepages = $total"
  [ ${#nodes[@]} -lt 2 ] || echo "  or per node, kernel command line (Linux 5.16 and later): hugepagesz=2M hugepages=$per_node"
fi
echo "  /etc/fstab (systemd mounts /dev/hugepages for the default page size by itself):"
echo "    nodev $mount_dir hugetlbfs pagesize=$size 0 0"
if [ ${#short[@]} -gt 0 ]; then
  for s in "${short[@]}"; do echo "ngstack hugepages: error: $s" >&2; done
  if [ "$size" = 1G ]; then
    echo "ngstack hugepages: error: 1 GiB pages can usually only be reserved at boot: add default_hugepagesz=1G hugepagesz=1G hugepages=$total to the kernel command line and reboot" >&2
  else
    echo "ngstack hugepages: error: memory is too fragmented for more 2 MiB pages now: try echo 3 > /proc/sys/vm/drop_caches and run again, or reserve at boot (above)" >&2
  fi
  exit 1
fi
[ "$dry_run" = 0 ] || say "dry run: nothing was changed"
