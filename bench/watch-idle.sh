#!/usr/bin/env bash
# bench/watch-idle.sh: CPU time of an idle `maqet watch` with 20 running VMs.
#
# usage (from the repository root):
#   bash bench/watch-idle.sh
#   MAQET=path/to/maqet N=20 WINDOW=60 SETTLE_MAX=120 bash bench/watch-idle.sh
#
# Set-up: N (20) VMs i00..i<N-1> (64M, serial none, no storage, no network)
# started by `maqet watch -f DIR --log-format json` itself (its first pass),
# with the default settle (100 ms) and the default --resync (60 s): a periodic
# full resync is part of normal idling, so the window holds one.  The script
# waits for "ready", then (at most SETTLE_MAX, 120 s) until the guests are past
# their firmware and use < 3% of a CPU each.
#
# Measured over WINDOW (60) seconds of wall time (CLOCK_REALTIME, µs):
#   watch    CPU time of the watch process: utime+stime from /proc/PID/stat
#            (clock ticks) and the exact run time from /proc/PID/schedstat (ns),
#            both read at the start and the end; voluntary and non-voluntary
#            context switches from /proc/PID/status (each voluntary one is a
#            wake-up from poll(): near zero means no polling); watch's "pass"
#            lines in the window (the periodic resync)
#   floor    `sleep WINDOW+1` started at the start: the same readings; its
#            CPU is ~0 (the trivial floor)
#   peer     `wtime procpoll 100 ... PID...` over the N QEMU pids started at
#            the start: what a supervisor that polls /proc every 100 ms costs
#            for the same VMs (reference only)
#
# Target: watch's CPU time < 0.1% of the wall time of the window, judged on the
# larger of the two CPU readings (ticks are 10 ms coarse, schedstat is exact).
# Output: the readings per process, one PASS/FAIL line.  Exit status 0 when the
# target holds, 1 when it misses, 2 when the benchmark could not run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/watchlib.sh
source bench/watchlib.sh

N=${N:-20}
WINDOW=${WINDOW:-60}
SETTLE_MAX=${SETTLE_MAX:-120}
((N >= 1 && N <= 100 && WINDOW >= 10)) || bench_die "N must be 1..100 and WINDOW >= 10"

watch_bench_init
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
log=$BENCH_TMP/watch.log
mkdir -p "$mdir"
for ((i = 0; i < N; i++)); do
	printf 'name: i%02d\nstate: running\nmemory: 64M\nserial: none\n' "$i" >"$mdir/i$(printf %02d "$i").yaml"
done
watch_start "$state" "$log" -f "$mdir"
alive=$(bench_count_qemus)
((alive == N)) || bench_die "after watch's first pass $alive QEMUs run, expected $N"
grep -q "\"action\":\"ready\".*$N running" "$log" || bench_die "watch's ready line does not say $N running: $(grep ready "$log")"
bench_wait_idle "$SETTLE_MAX"
((IDLE_OK)) || echo "warning: the guests were not idle after ${SETTLE_MAX} s; measuring anyway" >&2
accel=$(grep -o -- '-accel [a-z]*' "$MAQET_RUNTIME_DIR/i00.qemu.log" | head -n 1) || true
accel=${accel#-accel }
hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
mapfile -t qpids < <(pgrep -f -- "id=mqmp,path=$MAQET_RUNTIME_DIR/")

sleep $((WINDOW + 1)) &
sleeper=$!
"$WTIME" procpoll 100 $(((WINDOW + 5) * 1000)) "${qpids[@]}" >"$BENCH_TMP/poll.out" &
poller=$!
sleep 0.2 # let both start up before the window opens
# snapshot PID: "ticks runtime_ns voluntary nonvoluntary"
snap() { echo "$(proc_ticks "$1") $(proc_runtime_ns "$1") $(proc_ctxt "$1")"; }
off0=$(log_size "$log")
t0=$(real_us)
read -r w_t0 w_n0 w_v0 w_i0 <<<"$(snap "$WATCH_PID")"
read -r s_t0 s_n0 s_v0 s_i0 <<<"$(snap "$sleeper")"
read -r p_t0 p_n0 p_v0 p_i0 <<<"$(snap "$poller")"
sleep "$WINDOW"
read -r w_t1 w_n1 w_v1 w_i1 <<<"$(snap "$WATCH_PID")"
read -r s_t1 s_n1 s_v1 s_i1 <<<"$(snap "$sleeper")"
read -r p_t1 p_n1 p_v1 p_i1 <<<"$(snap "$poller")"
t1=$(real_us)
off1=$(log_size "$log")
kill "$poller" 2>/dev/null || true
wait "$poller" 2>/dev/null || true
[[ -s $BENCH_TMP/poll.out ]] && bench_die "a QEMU died during the window: $(<"$BENCH_TMP/poll.out")"
alive=$(bench_count_qemus)
((alive == N)) || bench_die "after the window $alive QEMUs run, expected $N"
passes=$(tail -c +$((off0 + 1)) "$log" | head -c $((off1 - off0)) | grep -c '"action":"pass"' || true)
pass_lines=$(tail -c +$((off0 + 1)) "$log" | head -c $((off1 - off0)) | grep '"action":"pass"' || true)
other=$(tail -c +$((off0 + 1)) "$log" | head -c $((off1 - off0)) | grep -vc '"action":"pass"' || true)
wpid=$WATCH_PID
watch_stop

wall=$((t1 - t0))
# per process: CPU µs from ticks, CPU µs from schedstat (empty without it)
cpu_tick_us() { echo $((($2 - $1) * 1000000 / hz)); }
cpu_ns_us() { [[ -n $1 && -n $2 ]] && echo $((($2 - $1) / 1000)) || echo ""; }
# pct US: US as a percentage of the wall time, 4 decimals
pct() {
	local x=$(($1 * 1000000 / wall)) # parts per million
	printf '%d.%04d%%' $((x / 10000)) $((x % 10000))
}
row() { # NAME T0 T1 NS0 NS1 V0 V1 I0 I1
	local tu nu
	tu=$(cpu_tick_us "$2" "$3")
	nu=$(cpu_ns_us "$4" "$5")
	printf '  %-28s %9s ms %9s %9s ms %9s %8d %8d\n' "$1" "$(bench_ms "$tu")" "$(pct "$tu")" \
		"${nu:+$(bench_ms "$nu")}" "${nu:+$(pct "$nu")}" $(($7 - $6)) $(($9 - $8))
}

echo "watch-idle: idle maqet watch with $N running VMs (64M, serial none), accel ${accel:-?}, $(nproc) cpus"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version))"
echo "defaults: --settle 100 ms, --resync 60 s (the periodic resync is part of idling); guests idle after ${IDLE_WAITED} s"
echo "window: $(bench_ms "$wall") ms wall; clock ticks $hz/s"
printf '  %-28s %12s %9s %12s %9s %8s %8s\n' process "cpu (ticks)" "of wall" "cpu (sched)" "of wall" "vol.cs" "invol.cs"
row "maqet watch (pid $wpid)" "$w_t0" "$w_t1" "$w_n0" "$w_n1" "$w_v0" "$w_v1" "$w_i0" "$w_i1"
row "floor: sleep $((WINDOW + 1))" "$s_t0" "$s_t1" "$s_n0" "$s_n1" "$s_v0" "$s_v1" "$s_i0" "$s_i1"
row "peer: /proc poll 100 ms" "$p_t0" "$p_t1" "$p_n0" "$p_n1" "$p_v0" "$p_v1" "$p_i0" "$p_i1"
echo "watch log lines in the window: $passes pass line(s), $other other line(s)"
[[ -n $pass_lines ]] && printf '    %s\n' "$pass_lines"
tu=$(cpu_tick_us "$w_t0" "$w_t1")
nu=$(cpu_ns_us "$w_n0" "$w_n1")
judged=$tu how="ticks"
if [[ -n $nu ]]; then
	how="larger of ticks $(bench_ms "$tu") ms and schedstat $(bench_ms "$nu") ms"
	((nu > judged)) && judged=$nu
fi
ok=0
((judged * 1000 < wall)) && ok=1
bench_target "idle watch CPU, $N VMs, ${WINDOW} s" "$ok" \
	"$(pct "$judged") of wall ($how; target < 0.1000%; floor sleep: $(pct "$(cpu_tick_us "$s_t0" "$s_t1")"))"
exit "$BENCH_FAILED"
