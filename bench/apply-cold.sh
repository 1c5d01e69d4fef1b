#!/usr/bin/env bash
# bench/apply-cold.sh: cold `maqet apply` of 10 new VMs against a bare loop
# starting the same QEMU argv.
#
# usage (from the repository root):
#   bash bench/apply-cold.sh
#   MAQET=path/to/maqet REPS=5 N=10 bash bench/apply-cold.sh
#
# What is measured, per repetition (wall time, CLOCK_MONOTONIC, by bench/rusage.c):
#   maqet -j1   `maqet apply --jobs 1 -f DIR` with a fresh state dir, until it
#               exits (it returns once every VM answered query-status "running")
#   maqet -j4   the same with the default --jobs (4)
#   bare loop   bench/qmp-ready.c -a: for each VM in turn, fork/setsid/exec QEMU
#               with the exact argv maqet used (taken from the "maqet: starting"
#               line of $MAQET_RUNTIME_DIR/<vm>.qemu.log), connect to its QMP
#               socket (retry every 1 ms), greeting, qmp_capabilities,
#               query-status until "running"; then the next VM.  This is the floor.
# VMs b0..b<N-1>: memory 64M, serial none, no storage, no network, accel auto.
# One untimed warm-up of maqet and of the bare loop first (it also captures the
# argv), then REPS repetitions alternating maqet -j1, bare, maqet -j4; every QEMU
# is killed (kill -9, by runtime dir) and stale sockets removed between runs.
#
# Targets (ratios of medians measured in this run, so machine noise cancels):
#   median(maqet -j1) / median(bare loop) <= 1.10   (the apples-to-apples one)
#   median(maqet -j4) / median(bare loop) <= 1.10   (parallel: reported, and it
#                                                    must not be slower either)
# Output: a table of the runs, median/min/max per column, the ratios, one
# PASS/FAIL line per target.  Exit status 0 when every target holds, 1 when one
# misses, 2 when the benchmark itself could not run (build, maqet failure).
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh

N=${N:-10}
REPS=${REPS:-5}
TARGET_X100=110
((N >= 1 && N <= 100 && REPS >= 1)) || bench_die "N must be 1..100 and REPS >= 1"

bench_init
mdir=$BENCH_TMP/manifests
adir=$BENCH_TMP/argv
mkdir -p "$mdir" "$adir"
vms=()
for ((i = 0; i < N; i++)); do
	vms+=("b$i")
	printf 'name: b%d\nstate: running\nmemory: 64M\nserial: none\n' "$i" >"$mdir/b$i.yaml"
done

# One maqet cold apply with --jobs $1.  Sets RUN_US; checks every VM runs and
# that maqet used the same argv as the bare loop replays.
run_maqet() {
	local jobs=$1 state=$BENCH_TMP/state vm line argv
	rm -rf "$state"
	rm -f "$MAQET_RUNTIME_DIR"/*.qemu.log
	bench_run "$BENCH_TMP/apply.out" "$MAQET" --state-dir "$state" apply --jobs "$jobs" -f "$mdir"
	if ((RUN_RC != 0)) || ! grep -q "^Apply: $N ok, 0 failed" "$BENCH_TMP/apply.out"; then
		cat "$BENCH_TMP/apply.out" >&2
		bench_die "maqet apply --jobs $jobs failed (exit $RUN_RC)"
	fi
	local alive
	alive=$(bench_count_qemus)
	((alive == N)) || bench_die "after maqet apply $alive QEMUs run, expected $N"
	for vm in "${vms[@]}"; do
		line=$(grep '^maqet: starting ' "$MAQET_RUNTIME_DIR/$vm.qemu.log" | tail -n 1) ||
			bench_die "no 'maqet: starting' line in $vm.qemu.log"
		argv=${line#maqet: starting }
		if [[ -f $adir/$vm.argv ]]; then
			[[ $(<"$adir/$vm.argv") == "$argv" ]] || bench_die "maqet changed the argv of $vm between runs"
		else
			printf '%s\n' "$argv" >"$adir/$vm.argv"
		fi
	done
	bench_kill_qemus
	rm -rf "$state"
}

# One bare loop over the captured argv.  Sets RUN_US.
run_bare() {
	local files=() vm
	for vm in "${vms[@]}"; do
		files+=("$adir/$vm.argv")
	done
	bench_run "$BENCH_TMP/bare.out" "$QMP_READY" -a "${files[@]}"
	((RUN_RC == 0)) || bench_die "bare loop failed (exit $RUN_RC); see $adir/*.argv.log"
	local alive
	alive=$(bench_count_qemus)
	((alive == N)) || bench_die "after the bare loop $alive QEMUs run, expected $N"
	bench_kill_qemus
}

# Warm-up (untimed): page cache, capture of the argv.
run_maqet 1
run_bare
accel=$(grep -o -- '-accel [a-z]*' "$adir/b0.argv" | head -n 1)
accel=${accel#-accel }

echo "apply-cold: $N new VMs (64M, serial none, no storage, no network), accel ${accel:-?}, $(nproc) cpus"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version))"
echo "argv of b0: $(<"$adir/b0.argv")"
echo "$REPS repetitions after 1 warm-up; wall ms:"
printf '  %-6s %12s %12s %12s %10s %10s\n' rep "maqet -j1" "bare loop" "maqet -j4" "j1/bare" "j4/bare"
seq_us=() bare_us=() par_us=()
for ((r = 1; r <= REPS; r++)); do
	run_maqet 1
	t_seq=$RUN_US
	run_bare
	t_bare=$RUN_US
	run_maqet 4
	t_par=$RUN_US
	seq_us+=("$t_seq") bare_us+=("$t_bare") par_us+=("$t_par")
	printf '  %-6s %12s %12s %12s %10s %10s\n' "$r" "$(bench_ms "$t_seq")" "$(bench_ms "$t_bare")" \
		"$(bench_ms "$t_par")" "$(bench_ratio "$t_seq" "$t_bare")" "$(bench_ratio "$t_par" "$t_bare")"
done

read -r s_med s_min s_max < <(bench_stats "${seq_us[@]}")
read -r b_med b_min b_max < <(bench_stats "${bare_us[@]}")
read -r p_med p_min p_max < <(bench_stats "${par_us[@]}")
for row in "median $s_med $b_med $p_med" "min $s_min $b_min $p_min" "max $s_max $b_max $p_max"; do
	read -r name a b c <<<"$row"
	printf '  %-6s %12s %12s %12s\n' "$name" "$(bench_ms "$a")" "$(bench_ms "$b")" "$(bench_ms "$c")"
done
echo "per VM (median): maqet -j1 $(bench_ms $((s_med / N))) ms, bare $(bench_ms $((b_med / N))) ms," \
	"maqet overhead $(bench_ms $(((s_med - b_med) / N))) ms"
echo "floor: bare loop median $(bench_ms "$b_med") ms"
seq_ratio=$(bench_ratio "$s_med" "$b_med")
par_ratio=$(bench_ratio "$p_med" "$b_med")
echo "ratio sequential: maqet -j1 / bare = $seq_ratio"
echo "ratio parallel:   maqet -j4 / bare = $par_ratio"

ok=0
((s_med * 100 <= b_med * TARGET_X100)) && ok=1
bench_target "cold apply of $N VMs, --jobs 1" "$ok" "ratio $seq_ratio (target <= 1.10 x bare loop)"
ok=0
((p_med * 100 <= b_med * TARGET_X100)) && ok=1
bench_target "cold apply of $N VMs, --jobs 4" "$ok" "ratio $par_ratio (target <= 1.10 x sequential bare loop)"
exit "$BENCH_FAILED"
