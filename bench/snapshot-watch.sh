#!/usr/bin/env bash
# bench/snapshot-watch.sh: watch's other latencies while a live snapshot job
# runs on another VM.
#
# usage (from the repository root):
#   bash bench/snapshot-watch.sh
#   MAQET=path/to/maqet REPS=5 bash bench/snapshot-watch.sh
#
# Set-up, under `maqet watch -f DIR --log-format json --stable-after 1000
# --crash-loop-limit 1000` (as in watch-restart.sh): VM `a`, whose live
# snapshots are long (machine pc, A_MEM (1024) MiB of RAM with A_RAND (512)
# MiB of random data loaded by `-device loader`, so a snapshot-save takes
# seconds; one 2 GiB qcow2 IDE disk with 256 MiB written, idle boot sector), and VM `b` (machine pc, 64M, serial none, an idle boot
# sector on a raw IDE disk).
#
# Each of 2 x REPS (5) repetitions, alternating "idle" and "snapshot":
#   snapshot: `maqet snapshot create a sN` starts in the background; once
#             a's status is "snapshotting" (its snapshot-save job runs),
#   both:     b's QEMU is killed (`wtime kill 9`), and we measure
#             detect   = watch's "exit" line for b - kill time,
#             relaunch = b's "start.spawned" event - kill time (watch has
#                        decided, taken the lease and exec'd the new QEMU),
#             restart  = b's "start ok" event - kill time (b runs again: the
#                        new QEMU's own start-up and QMP hand-shake included);
#             in "snapshot" rounds we also check the snapshot job was still
#             running at the kill (a's "snapshot-create ok" event came after).
# Target: median detect with a snapshot running <= 1.10 x median detect when
# idle (+1 ms of stamp resolution), and the same for relaunch and restart
# (restart is mostly the new QEMU starting under TCG, which competes with
# a's QEMU for the 2 cpus and the disk: printed, and judged, but not watch's
# own latency).  Exit 0 / 1 / 2.
# Needs jq.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/watchlib.sh
source bench/watchlib.sh

REPS=${REPS:-5}
SETTLE_MAX=${SETTLE_MAX:-60}
A_MEM=${A_MEM:-1024}
A_RAND=${A_RAND:-512}
((REPS >= 1 && A_RAND + 16 < A_MEM)) || bench_die "REPS must be >= 1"
bench_need qemu-img qemu-io jq
watch_bench_init
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
log=$BENCH_TMP/watch.log
mkdir -p "$mdir"
bench_idle_guest "$BENCH_TMP/boot.bin"
head -c $((A_RAND << 20)) /dev/urandom >"$BENCH_TMP/ram.bin"
qemu-img create -q -f qcow2 "$BENCH_TMP/a.qcow2" 2G
qemu-io -f qcow2 -c "write -q -P 0x5a 1M 256M" -c "write -q -s $BENCH_TMP/boot.bin 0 512" "$BENCH_TMP/a.qcow2" ||
	bench_die "qemu-io failed"
cp "$BENCH_TMP/boot.bin" "$BENCH_TMP/b.raw"
truncate -s 1M "$BENCH_TMP/b.raw"
cat >"$mdir/a.yaml" <<YAML
name: a
machine: pc
memory: ${A_MEM}M
serial: none
state: running
storage:
  - {name: root, file: $BENCH_TMP/a.qcow2, interface: ide}
args: ["-device", "loader,file=$BENCH_TMP/ram.bin,addr=0x1000000,force-raw=on"]
YAML
cat >"$mdir/b.yaml" <<YAML
name: b
machine: pc
memory: 64M
serial: none
state: running
storage:
  - {name: boot, type: raw, file: $BENCH_TMP/b.raw, interface: ide}
YAML
watch_start "$state" "$log" -f "$mdir" --stable-after 1000 --crash-loop-limit 1000

status_of() { # vm -> "status pid"
	"$MAQET" --state-dir "$state" status "$1" -o json 2>/dev/null | jq -r '.[0] // . | "\(.status) \(.pid)"'
}
wait_running() { # vm old_pid -> new pid
	local i s p
	for ((i = 0; i < 1200; i++)); do
		read -r s p <<<"$(status_of "$1")"
		[[ $s == running && $p != "$2" && $p != null ]] && kill -0 "$p" 2>/dev/null && {
			echo "$p"
			return 0
		}
		sleep 0.05
	done
	bench_die "$1 not running with a new pid within 60 s: $(tail -n 5 "$log")"
}
last_event_ms() { # vm action outcome -> time_ms of the newest such event
	"$MAQET" --state-dir "$state" events "$1" -o json |
		jq -r --arg a "$2" --arg o "$3" '[.[] | select(.action == $a and .outcome == $o)] | last | .time_ms'
}
pid_b=$(wait_running b 0)
wait_running a 0 >/dev/null
bench_wait_idle "$SETTLE_MAX"
echo "maqet: $MAQET_ORIG ($("$MAQET" --version)), $(nproc) cpus, REPS=$REPS"
echo "  rep  mode       detect_ms  relaunch_ms  restart_ms  snapshot_ms"
d_idle=() d_snap=() r_idle=() r_snap=() l_idle=() l_snap=()
for ((r = 1; r <= 2 * REPS; r++)); do
	mode=idle
	((r % 2)) || mode=snapshot
	bench_wait_idle "$SETTLE_MAX"
	snap_pid='' sdur=-
	if [[ $mode == snapshot ]]; then
		"$MAQET" --state-dir "$state" snapshot create a "s$r" >"$BENCH_TMP/snap.out" 2>&1 &
		snap_pid=$!
		for ((i = 0; i < 600; i++)); do
			[[ $(status_of a) == snapshotting* ]] && break
			kill -0 "$snap_pid" 2>/dev/null || bench_die "snapshot ended before it was seen: $(cat "$BENCH_TMP/snap.out")"
			sleep 0.01
		done
		[[ $(status_of a) == snapshotting* ]] || bench_die "a never showed 'snapshotting'"
		sleep 0.2 # into the job
	fi
	off=$(log_size "$log")
	t=$("$WTIME" kill 9 "$pid_b") || bench_die "cannot kill b (pid $pid_b)"
	t_us=${t/./}
	watch_wait "$log" "$off" 60 '"vm":"b"' '"action":"exit"' || bench_die "no exit line for b: $(tail -n 5 "$log")"
	det=$((WL_MS * 1000 - t_us))
	pid_b=$(wait_running b "$pid_b")
	rs=$(last_event_ms b start ok)
	rst=$((rs * 1000 - t_us))
	ls=$(last_event_ms b start.spawned ok)
	lst=$((ls * 1000 - t_us))
	if [[ -n $snap_pid ]]; then
		wait "$snap_pid" || bench_die "snapshot failed: $(cat "$BENCH_TMP/snap.out")"
		ok_ms=$(last_event_ms a snapshot-create ok)
		((ok_ms * 1000 > t_us)) || bench_die "the snapshot had ended before the kill (rep $r)"
		sdur=$(grep -o 'in [0-9.]*s' "$BENCH_TMP/snap.out" | tr -d 'ins ')
		d_snap+=("$det") r_snap+=("$rst") l_snap+=("$lst")
	else
		d_idle+=("$det") r_idle+=("$rst") l_idle+=("$lst")
	fi
	printf '  %3d  %-9s %10s  %11s  %10s  %11s\n' "$r" "$mode" "$(bench_ms "$det")" "$(bench_ms "$lst")" \
		"$(bench_ms "$rst")" "$sdur"
done
watch_stop
read -r di _ <<<"$(bench_stats "${d_idle[@]}")"
read -r ds _ <<<"$(bench_stats "${d_snap[@]}")"
read -r ri _ <<<"$(bench_stats "${r_idle[@]}")"
read -r rs _ <<<"$(bench_stats "${r_snap[@]}")"
read -r li _ <<<"$(bench_stats "${l_idle[@]}")"
read -r lsn _ <<<"$(bench_stats "${l_snap[@]}")"
echo "detect (kill -> watch's exit line): idle median $(bench_ms "$di") ms, with a snapshot running $(bench_ms "$ds") ms"
echo "relaunch (kill -> b's new QEMU exec'd): idle median $(bench_ms "$li") ms, with a snapshot running $(bench_ms "$lsn") ms"
echo "restart (kill -> b's start ok):      idle median $(bench_ms "$ri") ms, with a snapshot running $(bench_ms "$rs") ms"
ok=0
((ds * 100 <= (di + 1000) * 110)) && ok=1
bench_target "watch detects a crash while a snapshot runs elsewhere" "$ok" \
	"ratio $(bench_ratio "$ds" "$di") (target <= 1.10 x idle, +1 ms stamp resolution)"
ok=0
((lsn * 100 <= (li + 1000) * 110)) && ok=1
bench_target "watch relaunches a crashed VM while a snapshot runs elsewhere" "$ok" \
	"ratio $(bench_ratio "$lsn" "$li") (target <= 1.10 x idle, +1 ms stamp resolution)"
ok=0
((rs * 100 <= ri * 110)) && ok=1
bench_target "watch restarts a crashed VM while a snapshot runs elsewhere" "$ok" \
	"ratio $(bench_ratio "$rs" "$ri") (target <= 1.10 x idle)"
exit "$BENCH_FAILED"
