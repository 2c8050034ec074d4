#!/bin/bash
# Pack ngstack's benchmark binaries with every library they load, glibc and
# the vdev PMDs included, so perf/ runs on a machine where ngstack is not
# installed and nothing can be installed (a borrowed many-core box):
#   perf/bundle.sh . /tmp/b && scp -r /tmp/b perf box:...
# There, as root: `. <dest>/env.sh` (puts <dest>/bin first in PATH and links
# the PMDs where EAL looks for plugins), then run perf/*.py with
# --ngstack <dest>/bin/ngstack.
# Each wrapper in <dest>/bin starts its binary through the packed loader
# (<dest>/lib/ld-linux-x86-64.so.2 --library-path <dest>/lib), so the
# other machine's own libraries are never mixed in. The PMDs are links to
# the packed copies, not second copies: testpmd links bus_vdev itself, and
# a second copy loaded as a plugin registers a second vdev bus, on which
# no device probes.
set -euo pipefail
src=$1; dest=$2
rm -rf "$dest"; mkdir -p "$dest/real" "$dest/lib" "$dest/bin"
P=/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0
pmds="bus_vdev mempool_ring net_pcap net_null net_ring net_memif"
bins="$src/build/app/ngstack $src/build/perf/pcb_bench $src/build/perf/handoff_bench /usr/bin/dpdk-testpmd"
for b in $bins; do cp -L "$b" "$dest/real/"; done
libs=$( (for b in $bins; do ldd "$b"; done; for p in $pmds; do ldd $P/librte_$p.so; done) | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | sort -u)
for l in $libs; do cp -L "$l" "$dest/lib/"; done
for p in $pmds; do cp -L $P/librte_$p.so.23 "$dest/lib/"; done  # plugins beside the libs: one copy of each (a second copy of bus_vdev breaks probing)
for b in $bins; do n=$(basename $b); cat > "$dest/bin/$n" <<W
#!/bin/sh
D=\$(cd "\$(dirname "\$(readlink -f "\$0")")/.." && pwd)
exec "\$D/lib/ld-linux-x86-64.so.2" --library-path "\$D/lib" "\$D/real/$n" "\$@"
W
chmod +x "$dest/bin/$n"; done
cat > "$dest/env.sh" <<E
D=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
export PATH=\$D/bin:\$PATH
mkdir -p $P
# a machine with DPDK installed keeps its own plugins
for n in $pmds; do [ -e $P/librte_\$n.so ] || ln -s \$D/lib/librte_\$n.so.23 $P/librte_\$n.so; done
E
du -sh "$dest"
