#!/usr/bin/env bash
# bench/snapshot-offline.sh: offline snapshot of a stopped VM, `maqet snapshot
# create --offline` against bare `qemu-img snapshot -c` on an identical image.
#
# usage (from the repository root):
#   bash bench/snapshot-offline.sh
#   MAQET=path/to/maqet REPS=15 bash bench/snapshot-offline.sh
#
# Set-up: VM `a` (machine pc, state stopped) whose one drive is a 1 GiB qcow2
# with 256 MiB written by `qemu-io -c "write -P 0x5a 1M 256M"`, recorded by
# `maqet apply`; an identical image b.qcow2 for the floor.
# Each of REPS (11) rounds, in rotating order: `maqet snapshot create a sN
# --offline` (state lock, state DB, the existing snapshots read from the
# image, qemu-img snapshot -c, origin row and events), `qemu-img snapshot
# -q -c sN b.qcow2` (the floor), and `spawn1 qemu-img snapshot -q -c sN
# c.qcow2` (bench/spawn1.c: a program that only runs qemu-img and waits, the
# least any tool that runs qemu-img pays: one more exec), each timed to its
# exit; then the snapshots are deleted (untimed), so every round starts from
# the same images.
# Target: median maqet / median floor <= 1.05.  Printed beside it: the
# spawn1 floor and maqet's ratio to it (what maqet's own work costs).
# Exit 0 / 1 / 2 as the others.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh

REPS=${REPS:-11}
((REPS >= 1)) || bench_die "REPS must be >= 1"
bench_need qemu-img qemu-io
bench_init
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
mkdir -p "$mdir"
for v in a b c; do
	qemu-img create -q -f qcow2 "$BENCH_TMP/$v.qcow2" 1G
	qemu-io -f qcow2 -c "write -q -P 0x5a 1M 256M" "$BENCH_TMP/$v.qcow2" || bench_die "qemu-io failed"
done
cat >"$mdir/a.yaml" <<YAML
name: a
machine: pc
memory: 64M
serial: none
state: stopped
storage:
  - {name: root, file: $BENCH_TMP/a.qcow2, interface: ide}
YAML
"$MAQET" --state-dir "$state" apply -f "$mdir" >"$BENCH_TMP/apply.out" 2>&1 ||
	bench_die "maqet apply failed: $(cat "$BENCH_TMP/apply.out")"
QEMU_IMG=$(command -v qemu-img)
SPAWN1=$BENCH_TMP/spawn1
cc -O2 -o "$SPAWN1" bench/spawn1.c || bench_die "cannot compile bench/spawn1.c"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version)), $(nproc) cpus, REPS=$REPS"
echo "round  order               maqet_ms  floor_ms  spawn1_ms  ratio  vs_spawn1"
m_all=() f_all=() w_all=() q_all=()
time_maqet() {
	bench_run "$BENCH_TMP/m.out" "$MAQET" --state-dir "$state" snapshot create a "s$1" --offline
	((RUN_RC == 0)) || bench_die "maqet snapshot create failed: $(cat "$BENCH_TMP/m.out")"
	m_us=$RUN_US
}
time_floor() {
	bench_run "$BENCH_TMP/f.out" "$QEMU_IMG" snapshot -q -c "s$1" "$BENCH_TMP/b.qcow2"
	((RUN_RC == 0)) || bench_die "qemu-img snapshot -c failed"
	f_us=$RUN_US
}
time_spawn1() {
	bench_run "$BENCH_TMP/w.out" "$SPAWN1" "$QEMU_IMG" snapshot -q -c "s$1" "$BENCH_TMP/c.qcow2"
	((RUN_RC == 0)) || bench_die "spawn1 qemu-img snapshot -c failed"
	w_us=$RUN_US
}
# one untimed warm-up of both (page cache, binaries)
time_maqet 0
time_floor 0
time_spawn1 0
"$MAQET" --state-dir "$state" snapshot delete a s0 >/dev/null
qemu-img snapshot -d s0 "$BENCH_TMP/b.qcow2"
qemu-img snapshot -d s0 "$BENCH_TMP/c.qcow2"
orders=("maqet floor spawn1" "floor spawn1 maqet" "spawn1 maqet floor")
for ((r = 1; r <= REPS; r++)); do
	order=${orders[r % 3]}
	for w in $order; do "time_$w" "$r"; done
	printf '%5d  %-19s %9s %9s %10s  %5s  %s\n' "$r" "${order// /,}" "$(bench_ms "$m_us")" "$(bench_ms "$f_us")" \
		"$(bench_ms "$w_us")" "$(bench_ratio "$m_us" "$f_us")" "$(bench_ratio "$m_us" "$w_us")"
	m_all+=("$m_us") f_all+=("$f_us") w_all+=("$w_us") q_all+=($((m_us * 1000 / f_us)))
	"$MAQET" --state-dir "$state" snapshot delete a "s$r" >/dev/null || bench_die "delete a s$r failed"
	qemu-img snapshot -d "s$r" "$BENCH_TMP/b.qcow2" || bench_die "delete b s$r failed"
	qemu-img snapshot -d "s$r" "$BENCH_TMP/c.qcow2" || bench_die "delete c s$r failed"
done
# bench_ms of a value that may be negative
sms() { if (($1 < 0)); then echo "-$(bench_ms $((-$1)))"; else bench_ms "$1"; fi; }
read -r mm mmin mmax <<<"$(bench_stats "${m_all[@]}")"
read -r fm fmin fmax <<<"$(bench_stats "${f_all[@]}")"
echo "maqet  median $(bench_ms "$mm") ms (min $(bench_ms "$mmin"), max $(bench_ms "$mmax"))"
echo "floor  median $(bench_ms "$fm") ms (min $(bench_ms "$fmin"), max $(bench_ms "$fmax"))"
read -r wm wmin wmax <<<"$(bench_stats "${w_all[@]}")"
echo "spawn1 median $(bench_ms "$wm") ms (min $(bench_ms "$wmin"), max $(bench_ms "$wmax")): spawn1/floor $(bench_ratio "$wm" "$fm"), maqet/spawn1 $(bench_ratio "$mm" "$wm"), maqet's own work $(sms $((mm - wm))) ms"
read -r qm _ <<<"$(bench_stats "${q_all[@]}")"
echo "median of the per-round ratios $((qm / 1000)).$(printf '%03d' $((qm % 1000))); ratio of the minima $(bench_ratio "$mmin" "$fmin") (the least disturbed runs)"
ok=0
((mm * 100 <= fm * 105)) && ok=1
bench_target "offline snapshot (1 GiB qcow2, 256 MiB written)" "$ok" \
	"ratio $(bench_ratio "$mm" "$fm") (target <= 1.05 x qemu-img snapshot -c), overhead $(sms $((mm - fm))) ms"
exit "$BENCH_FAILED"
