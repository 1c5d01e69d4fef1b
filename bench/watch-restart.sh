#!/usr/bin/env bash
# bench/watch-restart.sh: `maqet watch`, QEMU killed -> restart begun, against
# a supervisor that polls /proc every 100 ms.
#
# usage (from the repository root):
#   bash bench/watch-restart.sh
#   MAQET=path/to/maqet REPS=15 N=4 SETTLE_MAX=60 bash bench/watch-restart.sh
#   FAKE=1 bash bench/watch-restart.sh   # the VMs run the fake QEMU instead
#
# FAKE=1 swaps QEMU for tests/fake-qemu ($FAKE_QEMU): its exit costs the kernel
# next to nothing, so what remains is watch's own reaction time.  The issue's
# target is about QEMU; the default (FAKE=0) is the run that counts.
#
# Set-up: N (4) VMs k0..k<N-1> (64M, serial none, restart: on-failure, the
# default) started by `maqet watch -f DIR --log-format json --stable-after 1000
# --crash-loop-limit 1000` (default settle and resync).  The two tuning options
# only keep every kill a *first* failure (1 s of running resets the count), so
# each crash is restarted at once instead of after a growing backoff and none
# reaches crash-loop; they do not touch the path measured here.
#
# Each of REPS (15) repetitions, round robin over the VMs:
#   1. wait until our QEMUs idle (< 3% of a CPU each, at most SETTLE_MAX s): a
#      restarted guest burns CPU in its firmware for a second or two;
#   2. start the peer, `wtime procpoll 100 ... PID` (a loop that looks at
#      /proc/PID/stat every 100 ms and notices when the entry is gone or a
#      zombie), and the kernel floor, `wtime pidfdwait ... PID` (pidfd_open +
#      poll: the moment the kernel reports the whole process exited, which no
#      supervisor can beat); then sleep a random 10-99 ms so the poller's phase
#      is random;
#   3. `wtime kill 9 PID`: CLOCK_REALTIME read right before kill(2);
#   4. watch latency = "time" of watch's "exit" line for the VM (logged when
#      the reconcile pass that restarts it begins) - kill time; peer latency =
#      the time the poller noticed - kill time; kernel floor = the time the
#      pidfd became readable - kill time.  All three include the kernel's
#      tear-down of the killed QEMU (guest memory, KVM, its threads), which
#      happens before the exit is reported;
#   5. wait until `maqet status NAME -o json` shows the VM running with a new
#      pid.
# watch stamps its lines with CLOCK_REALTIME truncated to the ms, so a watch
# latency reads up to 1 ms short: the target is judged on median + 1 ms.
#
# Target: median watch latency <= 5 ms (absolute by the issue's wording),
# printed beside the peer's median (~50 ms expected: half the period) and the
# kernel floor's; watch's own share is watch - pidfd floor.  Output: per
# repetition the three latencies; median/min/max; one PASS/FAIL line.  Exit
# status 0 when the target holds, 1 when it misses, 2 when the benchmark could
# not run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/watchlib.sh
source bench/watchlib.sh

REPS=${REPS:-15}
N=${N:-4}
SETTLE_MAX=${SETTLE_MAX:-60}
FAKE=${FAKE:-0}
TARGET_US=5000
((REPS >= 1 && N >= 1 && N <= 20)) || bench_die "REPS must be >= 1 and N 1..20"

extra=''
if [[ $FAKE == 1 ]]; then
	watch_bench_init fake
	extra="binary: $FAKE_QEMU"$'\n''args: ["-fake-mode", "normal"]'$'\n'
else
	watch_bench_init
fi
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
log=$BENCH_TMP/watch.log
mkdir -p "$mdir"
for ((i = 0; i < N; i++)); do
	printf 'name: k%d\nstate: running\nmemory: 64M\nserial: none\n%s' "$i" "$extra" >"$mdir/k$i.yaml"
done
watch_start "$state" "$log" -f "$mdir" --stable-after 1000 --crash-loop-limit 1000
(($(bench_count_qemus) == N)) || bench_die "after watch's first pass $(bench_count_qemus) QEMUs run, expected $N"

# vm_pid NAME: the pid `maqet status NAME -o json` shows when it says running.
vm_pid() {
	local out st='' pid='' re_s='"status": "([a-z-]+)"' re_p='"pid": ([0-9]+)'
	out=$("$MAQET" --state-dir "$state" status "$1" -o json 2>/dev/null) || return 0
	[[ $out =~ $re_s ]] && st=${BASH_REMATCH[1]}
	[[ $out =~ $re_p ]] && pid=${BASH_REMATCH[1]}
	[[ $st == running && -n $pid ]] && echo "$pid"
	return 0
}

# wait_new_pid NAME OLD: wait (60 s) until NAME runs with a pid other than OLD.
wait_new_pid() {
	local i pid
	for ((i = 0; i < 1200; i++)); do
		pid=$(vm_pid "$1")
		[[ -n $pid && $pid != "$2" ]] && kill -0 "$pid" 2>/dev/null && {
			echo "$pid"
			return 0
		}
		sleep 0.05
	done
	tail -n 20 "$log" >&2
	bench_die "$1 was not running again with a new pid within 60 s"
}

# bench_ms of a value that may be negative
sms() { if (($1 < 0)); then echo "-$(bench_ms $((-$1)))"; else bench_ms "$1"; fi; }

declare -A pids
for ((i = 0; i < N; i++)); do
	pids[k$i]=$(wait_new_pid "k$i" 0)
done
accel=$(grep -o -- '-accel [a-z]*' "$MAQET_RUNTIME_DIR/k0.qemu.log" | head -n 1) || true
accel=${accel#-accel }
[[ $FAKE == 1 ]] && accel="none: FAKE=1, the VMs run the fake QEMU $FAKE_QEMU"

echo "watch-restart: QEMU killed (SIGKILL) -> watch's \"exit\" line (restart pass begun), $N VMs under watch, accel ${accel:-?}, $(nproc) cpus"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version))"
echo "peer: /proc/PID/stat polled every 100 ms (bench/wtime.c procpoll), watching the same kill"
echo "kernel floor: a pidfd on the same QEMU (bench/wtime.c pidfdwait): when the kernel reports the exit"
echo "$REPS repetitions; ms from just before kill(2):"
printf '  %-6s %-4s %8s %10s %12s %12s %12s %6s\n' rep vm pid "watch" "pidfd floor" "watch-floor" "poll 100ms" "idle"
w_us=() p_us=() k_us=() o_us=()
retries=0
for ((r = 1; r <= REPS; r++)); do
	vm=k$(((r - 1) % N))
	pid=${pids[$vm]}
	bench_wait_idle "$SETTLE_MAX"
	waited=$IDLE_WAITED
	((IDLE_OK)) || waited="${waited}s!"
	off=$(log_size "$log")
	"$WTIME" pidfdwait 30000 "$pid" >"$BENCH_TMP/pidfd.out" 2>"$BENCH_TMP/pidfd.err" &
	pidfdw=$!
	"$WTIME" procpoll 100 30000 "$pid" >"$BENCH_TMP/poll.out" &
	poller=$!
	for ((i = 0; i < 500; i++)); do # pidfd opened?
		[[ -s $BENCH_TMP/pidfd.out ]] && break
		kill -0 "$pidfdw" 2>/dev/null || break
		sleep 0.01
	done
	if ! [[ -s $BENCH_TMP/pidfd.out ]]; then
		# the recorded pid is no longer this VM's (it was restarted meanwhile):
		# take the current one and repeat this repetition, a few times at most
		kill "$pidfdw" "$poller" 2>/dev/null || true
		wait "$pidfdw" "$poller" 2>/dev/null || true
		((retries++ < 3)) || bench_die "the pidfd waiter did not start: $(cat "$BENCH_TMP/pidfd.err")"
		echo "  (rep $r: pid $pid of $vm is gone: $(cat "$BENCH_TMP/pidfd.err"); retrying with its current pid)"
		pids[$vm]=$(wait_new_pid "$vm" "$pid")
		((r--))
		continue
	fi
	sleep "0.0$((RANDOM % 90 + 10))"
	t=$("$WTIME" kill 9 "$pid") || bench_die "cannot kill $vm (pid $pid)"
	watch_wait "$log" "$off" 30 "\"vm\":\"$vm\"" '"action":"exit"' || {
		tail -n 20 "$log" >&2
		bench_die "watch logged no exit for $vm within 30 s"
	}
	[[ $WL_LINE == *'"outcome":"crash"'* ]] || bench_die "watch did not classify the kill of $vm as a crash: $WL_LINE"
	wl=$((WL_MS * 1000 - ${t/./}))
	wait "$poller" || bench_die "the /proc poller did not notice the death of pid $pid"
	read -r pt _ <"$BENCH_TMP/poll.out"
	pl=$((${pt/./} - ${t/./}))
	wait "$pidfdw" || bench_die "the pidfd waiter did not see pid $pid exit"
	kt=$(tail -n 1 "$BENCH_TMP/pidfd.out")
	kt=${kt%% *}
	kl=$((${kt/./} - ${t/./}))
	w_us+=("$wl") p_us+=("$pl") k_us+=("$kl") o_us+=($((wl - kl)))
	pids[$vm]=$(wait_new_pid "$vm" "$pid")
	printf '  %-6s %-4s %8s %10s %12s %12s %12s %6s\n' "$r" "$vm" "$pid" "$(bench_ms "$wl")" "$(bench_ms "$kl")" \
		"$(sms $((wl - kl)))" "$(bench_ms "$pl")" "$waited"
done
restarts=$(grep -c '"action":"exit","outcome":"crash"' "$log" || true)
watch_stop

read -r w_med w_min w_max < <(bench_stats "${w_us[@]}")
read -r p_med p_min p_max < <(bench_stats "${p_us[@]}")
read -r k_med k_min k_max < <(bench_stats "${k_us[@]}")
read -r o_med o_min o_max < <(bench_stats "${o_us[@]}")
for row in "median $w_med $k_med $o_med $p_med" "min $w_min $k_min $o_min $p_min" "max $w_max $k_max $o_max $p_max"; do
	read -r name a b c d <<<"$row"
	printf '  %-6s %-4s %8s %10s %12s %12s %12s\n' "$name" "" "" "$(bench_ms "$a")" "$(bench_ms "$b")" "$(sms "$c")" \
		"$(bench_ms "$d")"
done
echo "watch logged $restarts crash exits for $REPS kills"
echo "kernel floor (pidfd readable): median $(bench_ms "$k_med") ms; watch's own share (watch - floor): median $(sms "$o_med") ms"
echo "peer: 100 ms /proc poll median $(bench_ms "$p_med") ms; ratio watch/peer $(bench_ratio "$w_med" "$p_med")"
ok=0
((w_med + 1000 <= TARGET_US)) && ok=1
bench_target "QEMU killed -> restart begun" "$ok" \
	"median $(bench_ms "$w_med") ms (+1 ms stamp resolution: $(bench_ms $((w_med + 1000))) ms; target <= 5 ms;" \
	"kernel floor $(bench_ms "$k_med") ms; peer 100 ms /proc poll: median $(bench_ms "$p_med") ms)"
exit "$BENCH_FAILED"
