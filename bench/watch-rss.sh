#!/usr/bin/env bash
# bench/watch-rss.sh: resident memory of `maqet watch` managing 100 VMs.
#
# usage (from the repository root):
#   bash bench/watch-rss.sh
#   MAQET=path/to/maqet FAKE_QEMU=path/to/fake-qemu N=100 REPS=3 bash bench/watch-rss.sh
#
# The VMs run the fake QEMU (tests/fake-qemu, built with maqet): 100 real
# QEMUs do not fit on a small machine (2 cpus here: their firmware alone would
# load it for minutes).  For watch a VM is the same either way: a pidfd, a QMP
# event connection (the fake speaks QMP on both monitors), a record, a spec, a
# cached manifest.  Each manifest: name fNNN, state running, memory 64M, serial
# none, binary <fake>, args ["-fake-mode", "normal"], stop_timeout 1s.
#
# REPS (3) rounds, each with fresh state dirs:
#   floor  `maqet watch -f EMPTYDIR --log-format json` with 0 VMs
#   N VMs  `maqet watch -f DIR --log-format json` over the N manifests: its
#          first pass starts the N fake QEMUs (--jobs 4, the default)
# For each: wait for "ready" (and, with N VMs, check that N run and are all
# tracked), 1 s pause, read VmRSS; send SIGHUP (a full resync pass over every
# VM: reload, plan, liveness checks), wait for that pass, read VmRSS and VmHWM
# (the peak over the watch's whole life, first pass included) from
# /proc/PID/status; stop the watch (SIGTERM) and kill the fakes.
#
# Target: VmHWM with N VMs <= 5 MiB + 50 KiB per VM (N=100: 10120 KiB, 9.88
# MiB), judged on the median over the rounds of the peak -- the strictest
# reading.  Also printed: the steady VmRSS, the 0-VM floor and the per-VM
# slope (rss_N - rss_0) / N.  One PASS/FAIL line; exit status 0 when the target
# holds, 1 when it misses, 2 when the benchmark could not run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/watchlib.sh
source bench/watchlib.sh

N=${N:-100}
REPS=${REPS:-3}
((N >= 1 && N <= 1000 && REPS >= 1)) || bench_die "N must be 1..1000 and REPS >= 1"
TARGET_KB=$((5 * 1024 + 50 * N))

watch_bench_init fake
mdir=$BENCH_TMP/manifests
edir=$BENCH_TMP/empty
mkdir -p "$mdir" "$edir"
for ((i = 0; i < N; i++)); do
	name=$(printf 'f%03d' "$i")
	printf 'name: %s\nstate: running\nmemory: 64M\nserial: none\nbinary: %s\nargs: ["-fake-mode", "normal"]\nstop_timeout: 1s\n' \
		"$name" "$FAKE_QEMU" >"$mdir/$name.yaml"
done

# measure DIR NVMS: one watch over DIR.  Sets RSS_READY, RSS_RESYNC, HWM (KiB).
measure() {
	local dir=$1 n=$2 state=$BENCH_TMP/state log=$BENCH_TMP/watch.log off alive
	rm -rf "$state"
	WATCH_READY_TIMEOUT=300 watch_start "$state" "$log" -f "$dir"
	alive=$(bench_count_qemus)
	((alive == n)) || bench_die "after watch's first pass $alive fake QEMUs run, expected $n"
	grep -q "\"action\":\"ready\".*, $n running" "$log" || bench_die "watch's ready line does not say $n running: $(grep ready "$log")"
	sleep 1
	RSS_READY=$(proc_kb "$WATCH_PID" VmRSS)
	off=$(log_size "$log")
	kill -HUP "$WATCH_PID"
	watch_wait "$log" "$off" 120 '"action":"pass"' '"outcome":"done"' '"detail":"trigger signal' ||
		bench_die "watch logged no resync pass after SIGHUP"
	[[ $WL_LINE == *'no changes'* ]] || bench_die "the resync pass changed something: $WL_LINE"
	sleep 0.2
	RSS_RESYNC=$(proc_kb "$WATCH_PID" VmRSS)
	HWM=$(proc_kb "$WATCH_PID" VmHWM)
	watch_stop
	bench_kill_qemus
	rm -rf "$state"
}

echo "watch-rss: resident memory of maqet watch, 0 vs $N running VMs, $(nproc) cpus"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version))"
echo "VMs: the fake QEMU ($FAKE_QEMU, -fake-mode normal): $N real QEMUs would not fit on this machine"
echo "$REPS rounds; KiB (VmRSS after ready, VmRSS after a SIGHUP resync, VmHWM):"
printf '  %-6s %10s %10s %10s %10s %10s %10s\n' round "0: ready" "0: resync" "0: peak" "$N: ready" "$N: resync" "$N: peak"
z_ready=() z_resync=() z_hwm=() n_ready=() n_resync=() n_hwm=()
for ((r = 1; r <= REPS; r++)); do
	measure "$edir" 0
	z_ready+=("$RSS_READY") z_resync+=("$RSS_RESYNC") z_hwm+=("$HWM")
	measure "$mdir" "$N"
	n_ready+=("$RSS_READY") n_resync+=("$RSS_RESYNC") n_hwm+=("$HWM")
	printf '  %-6s %10s %10s %10s %10s %10s %10s\n' "$r" "${z_ready[-1]}" "${z_resync[-1]}" "${z_hwm[-1]}" \
		"${n_ready[-1]}" "${n_resync[-1]}" "${n_hwm[-1]}"
done
med() { bench_stats "$@" | cut -d' ' -f1; }
zr=$(med "${z_ready[@]}") zs=$(med "${z_resync[@]}") zh=$(med "${z_hwm[@]}")
nr=$(med "${n_ready[@]}") ns=$(med "${n_resync[@]}") nh=$(med "${n_hwm[@]}")
printf '  %-6s %10s %10s %10s %10s %10s %10s\n' median "$zr" "$zs" "$zh" "$nr" "$ns" "$nh"
# slope KB0 KBN: (KBN - KB0) / N in KiB with one decimal
slope() { local x=$((($2 - $1) * 10 / N)); printf '%d.%d' $((x / 10)) $((x % 10)); }
echo "floor (0 VMs): VmRSS $(bench_mb "$zs") MiB, peak $(bench_mb "$zh") MiB"
echo "$N VMs: VmRSS $(bench_mb "$ns") MiB, peak $(bench_mb "$nh") MiB"
echo "per-VM slope: steady $(slope "$zs" "$ns") KiB/VM, peak $(slope "$zh" "$nh") KiB/VM (target budget 50 KiB/VM over a 5 MiB base)"
ok=0
((nh <= TARGET_KB)) && ok=1
bench_target "watch RSS with $N VMs" "$ok" \
	"peak $(bench_mb "$nh") MiB ($nh KiB; steady $ns KiB; target <= 5 MiB + 50 KiB x $N = $TARGET_KB KiB;" \
	"floor 0 VMs $zh KiB)"
exit "$BENCH_FAILED"
