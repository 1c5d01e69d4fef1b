#!/usr/bin/env bash
# bench/watch-create.sh: `maqet watch`, manifest saved -> the new VM's QMP
# says "running", against the same QEMU argv started by a bare loop.
#
# usage (from the repository root):
#   bash bench/watch-create.sh
#   MAQET=path/to/maqet REPS=7 SETTLE=100 bash bench/watch-create.sh
#
# Set-up: `maqet watch -f DIR --prune --allow-empty --settle SETTLE
# --log-format json` on an empty manifest directory (fresh state dir), default
# --resync (60 s).  Then REPS repetitions, each with a new VM name c1, c2, ...:
#   watch   write DIR/.cN.tmp (name cN, state running, memory 64M, serial none,
#           stop_timeout 1s), then rename it to DIR/cN.yaml (an atomic save)
#           with bench/wtime.c, which reads CLOCK_REALTIME right before the
#           rename().  Latency = the "time" of watch's "create"/"start" "ok"
#           line for cN (logged once query-status said "running"; the stamp is
#           CLOCK_REALTIME, truncated to the ms) - the time before the rename.
#   floor   the argv watch used (the "maqet: starting" line of
#           $MAQET_RUNTIME_DIR/cN.qemu.log), after cN is gone, started by
#           bench/qmp-ready.c -l (fork, setsid, exec, connect every 1 ms,
#           greeting, qmp_capabilities, query-status until "running"), timed
#           by bench/rusage.c from before fork to its exit; then killed.
#   Between the two, cN.yaml is deleted and the script waits for watch's
#   "delete" line (--prune stops and forgets cN: the firmware ignores the
#   ACPI powerdown, so this takes stop_timeout, 1 s).  No other QEMU of ours
#   runs during either timed part.
# One untimed warm-up repetition (c0) first.
#
# Target: median(watch latency) - median(floor) <= SETTLE + 10 ms.  The settle
# window is a deliberate wait (no pass before SETTLE ms without a further
# change), so what maqet adds beyond it and beyond QEMU's own start must stay
# within 10 ms.  Output: per repetition the latency, the floor, their
# difference; median/min/max; one PASS/FAIL line.  Exit status 0 when the
# target holds, 1 when it misses, 2 when the benchmark could not run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/watchlib.sh
source bench/watchlib.sh

REPS=${REPS:-7}
SETTLE=${SETTLE:-100}
((REPS >= 1 && SETTLE >= 0)) || bench_die "REPS must be >= 1 and SETTLE >= 0"

watch_bench_init
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
log=$BENCH_TMP/watch.log
mkdir -p "$mdir"
watch_start "$state" "$log" -f "$mdir" --prune --allow-empty --settle "$SETTLE"

# One repetition with VM $1.  Sets LAT_US (watch), FLOOR_US (bare), ARGV.
one_rep() {
	local vm=$1 off t line pid
	printf 'name: %s\nstate: running\nmemory: 64M\nserial: none\nstop_timeout: 1s\n' "$vm" >"$mdir/.$vm.tmp"
	sync "$mdir/.$vm.tmp" # the write-back of the new file must not land in the timed part
	off=$(log_size "$log")
	t=$("$WTIME" mv "$mdir/.$vm.tmp" "$mdir/$vm.yaml") || bench_die "rename failed"
	watch_wait "$log" "$off" 60 "\"vm\":\"$vm\"" '"action":"create"|"action":"start"' '"outcome":"' || {
		tail -n 20 "$log" >&2
		bench_die "watch logged no create/start for $vm within 60 s"
	}
	[[ $WL_LINE == *'"outcome":"ok"'* ]] || bench_die "watch failed to start $vm: $WL_LINE"
	LAT_US=$((WL_MS * 1000 - ${t/./}))
	line=$(grep '^maqet: starting ' "$MAQET_RUNTIME_DIR/$vm.qemu.log" | tail -n 1) ||
		bench_die "no 'maqet: starting' line in $vm.qemu.log"
	ARGV=${line#maqet: starting }

	off=$WL_OFF
	rm "$mdir/$vm.yaml"
	watch_wait "$log" "$off" 60 "\"vm\":\"$vm\"" '"action":"delete"' || {
		tail -n 20 "$log" >&2
		bench_die "watch did not prune $vm within 60 s"
	}
	[[ $WL_LINE == *'"outcome":"ok"'* ]] || bench_die "watch failed to prune $vm: $WL_LINE"
	(($(bench_count_qemus) == 0)) || bench_die "a QEMU still runs after $vm was pruned"

	local -a av
	read -r -a av <<<"$ARGV"
	bench_run "$BENCH_TMP/floor.out" "$QMP_READY" -l "$BENCH_TMP/floor.log" -- "${av[@]}"
	((RUN_RC == 0)) || bench_die "bare start of $vm failed (exit $RUN_RC); see $BENCH_TMP/floor.log"
	FLOOR_US=$RUN_US
	bench_kill_qemus
}

one_rep c0 # warm-up
accel=$(grep -o -- '-accel [a-z]*' <<<"$ARGV" | head -n 1)
accel=${accel#-accel }
echo "watch-create: manifest saved -> new VM's QMP running, maqet watch --settle $SETTLE, accel ${accel:-?}, $(nproc) cpus"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version))"
echo "argv of c0: $ARGV"
echo "$REPS repetitions after 1 warm-up; ms:"
printf '  %-6s %14s %14s %14s\n' rep "watch" "bare (floor)" "watch - bare"
# bench_ms of a value that may be negative
sms() { if (($1 < 0)); then echo "-$(bench_ms $((-$1)))"; else bench_ms "$1"; fi; }
lat=() flo=() dif=()
for ((r = 1; r <= REPS; r++)); do
	one_rep "c$r"
	lat+=("$LAT_US") flo+=("$FLOOR_US") dif+=($((LAT_US - FLOOR_US)))
	printf '  %-6s %14s %14s %14s\n' "$r" "$(bench_ms "$LAT_US")" "$(bench_ms "$FLOOR_US")" \
		"$(sms $((LAT_US - FLOOR_US)))"
done
watch_stop

read -r l_med l_min l_max < <(bench_stats "${lat[@]}")
read -r f_med f_min f_max < <(bench_stats "${flo[@]}")
read -r d_med d_min d_max < <(bench_stats "${dif[@]}")
for row in "median $l_med $f_med $d_med" "min $l_min $f_min $d_min" "max $l_max $f_max $d_max"; do
	read -r name a b c <<<"$row"
	printf '  %-6s %14s %14s %14s\n' "$name" "$(bench_ms "$a")" "$(bench_ms "$b")" "$(sms "$c")"
done
over=$((l_med - f_med))
echo "floor: bare start median $(bench_ms "$f_med") ms; settle window $SETTLE ms"
echo "watch overhead beyond the floor (median - median): $(sms "$over") ms;" \
	"beyond floor + settle: $(sms $((over - SETTLE * 1000))) ms"
ok=0
((over <= (SETTLE + 10) * 1000)) && ok=1
bench_target "manifest saved -> QMP running" "$ok" \
	"median $(bench_ms "$l_med") ms = floor $(bench_ms "$f_med") ms + $(sms "$over") ms" \
	"(target <= floor + settle $SETTLE ms + 10 ms)"
exit "$BENCH_FAILED"
