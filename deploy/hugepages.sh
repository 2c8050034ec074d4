#!/usr/bin/env bash
# Reserve 2 MiB hugepages and mount hugetlbfs, for bare-metal runs
# (eal.no_huge: false). Usage: deploy/hugepages.sh [PAGES] (default 1024 = 2 GiB)
set -euo pipefail
pages=${1:-1024}
for node in /sys/devices/system/node/node*/hugepages/hugepages-2048kB; do
  [ -d "$node" ] || continue
  echo "$pages" > "$node/nr_hugepages"
done
[ -d /sys/devices/system/node/node0 ] || echo "$pages" > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
grep -E "HugePages_(Total|Free)" /proc/meminfo
