#!/usr/bin/env bash
# bench/snapshot-list.sh: `maqet snapshot list` of a VM with 100 snapshots,
# stopped (read from the qcow2 image) and running (read through QMP).
#
# usage (from the repository root):
#   bash bench/snapshot-list.sh
#   MAQET=path/to/maqet REPS=21 N=100 bash bench/snapshot-list.sh
#
# Set-up: VM `a` (machine pc, 64M, serial none) with one 256 MiB qcow2 IDE
# disk whose first sector is an idle boot sector (FA F4 EB FD), 64 MiB
# written; N (100) snapshots made with `maqet snapshot create` while it is
# stopped (so each has its origin row in the state DB, as in real use).
# Stopped: REPS (21) runs of `maqet snapshot list a` (table output to a
# file); then the VM is started and the same REPS runs read the list
# through QMP (query-block).  Each run is checked to show N snapshots.
# Floors printed beside it, measured in the same run: `maqet --version`
# (process start-up) and `qemu-img info --output=json -U` of the image (what
# a stopped list would cost through qemu-img).
# Target (absolute, by the issue): median <= 50 ms for both.  Exit 0 / 1 / 2.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh

REPS=${REPS:-21}
N=${N:-100}
((REPS >= 1 && N >= 1)) || bench_die "REPS and N must be >= 1"
command -v qemu-img >/dev/null || bench_die "'qemu-img' is needed"
bench_init
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
img=$BENCH_TMP/a.qcow2
mkdir -p "$mdir"
bench_idle_guest "$BENCH_TMP/boot.bin"
qemu-img create -q -f qcow2 "$img" 256M
qemu-io -f qcow2 -c "write -q -P 0x5a 1M 64M" -c "write -q -s $BENCH_TMP/boot.bin 0 512" "$img" ||
	bench_die "qemu-io failed"
manifest() {
	cat >"$mdir/a.yaml" <<YAML
name: a
machine: pc
memory: 64M
serial: none
state: $1
storage:
  - {name: root, file: $img, interface: ide}
YAML
}
manifest stopped
"$MAQET" --state-dir "$state" apply -f "$mdir" >"$BENCH_TMP/apply.out" 2>&1 ||
	bench_die "maqet apply failed: $(cat "$BENCH_TMP/apply.out")"
for ((i = 0; i < N; i++)); do
	"$MAQET" --state-dir "$state" snapshot create a "snap-$i" >/dev/null || bench_die "snapshot create $i failed"
done
echo "maqet: $MAQET_ORIG ($("$MAQET" --version)), $(nproc) cpus, REPS=$REPS, N=$N"

# time_list LABEL CMD...: REPS runs; sets MED (µs) and prints median/min/max
time_list() {
	local label=$1 all=() med lo hi
	shift
	for ((r = 0; r < REPS; r++)); do
		bench_run "$BENCH_TMP/out" "$@"
		((RUN_RC == 0)) || bench_die "$label failed: $(cat "$BENCH_TMP/out")"
		all+=("$RUN_US")
	done
	read -r med lo hi <<<"$(bench_stats "${all[@]}")"
	printf '  %-34s median %7s ms  (min %s, max %s)\n' "$label" "$(bench_ms "$med")" "$(bench_ms "$lo")" \
		"$(bench_ms "$hi")"
	MED=$med
}
check_count() {
	local n
	n=$(grep -c ' snap-' "$BENCH_TMP/out" || true)
	((n == N)) || bench_die "$1: listed $n snapshots, expected $N"
}

echo "stopped VM (snapshot table read from the image):"
time_list "maqet --version (floor)" "$MAQET" --version
time_list "qemu-img info --output=json -U" qemu-img info --output=json -U "$img"
time_list "maqet snapshot list a" "$MAQET" --state-dir "$state" snapshot list a
check_count stopped
stopped_us=$MED

manifest running
"$MAQET" --state-dir "$state" apply -f "$mdir" >"$BENCH_TMP/apply.out" 2>&1 ||
	bench_die "maqet apply (start) failed: $(cat "$BENCH_TMP/apply.out")"
bench_wait_idle 60
echo "running VM (list read through QMP query-block):"
time_list "maqet snapshot list a" "$MAQET" --state-dir "$state" snapshot list a
check_count running
running_us=$MED

ok=0
((stopped_us <= 50000)) && ok=1
bench_target "snapshot list of $N snapshots, stopped VM" "$ok" "median $(bench_ms "$stopped_us") ms (target <= 50 ms)"
ok=0
((running_us <= 50000)) && ok=1
bench_target "snapshot list of $N snapshots, running VM" "$ok" "median $(bench_ms "$running_us") ms (target <= 50 ms)"
exit "$BENCH_FAILED"
