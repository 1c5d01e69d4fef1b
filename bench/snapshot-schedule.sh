#!/usr/bin/env bash
# bench/snapshot-schedule.sh: `maqet watch` takes a scheduled snapshot within
# a second of its due time.
#
# usage (from the repository root):
#   bash bench/snapshot-schedule.sh
#   MAQET=path/to/maqet EVERY=4 SLOTS=6 bash bench/snapshot-schedule.sh
#
# Set-up: two VMs with `snapshots: {schedule: {every: EVERY s, keep: 100}}`
# (keep high, so every scheduled snapshot stays listed): `off`, stopped
# (offline snapshots, qemu-img), and `live`, running an idle boot-sector
# guest (machine pc, 64M; live snapshots with memory state).  Both have one
# 64 MiB qcow2 IDE disk.  `maqet watch` runs until each VM has SLOTS (6)
# scheduled snapshots after its first one (which is due at once), then stops.
#
# Due rule (reconciler/schedule.h): snapshot k is due at created_at(k-1) +
# EVERY, created_at being the snapshot's own time in the image.  Per
# snapshot k >= 2:
#   start lateness = time of its "snapshot-create started" event - due
#                    (watch's timer, worker start, state lock, listing);
#   taken lateness = created_at(k) - due (the moment the snapshot holds).
# Target: every taken lateness <= 1000 ms (judged on the maximum); medians
# and maxima of both printed.  Exit 0 / 1 / 2.  Needs jq.
set -euo pipefail
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/watchlib.sh
source bench/watchlib.sh

EVERY=${EVERY:-4}
SLOTS=${SLOTS:-6}
((EVERY >= 1 && SLOTS >= 1)) || bench_die "EVERY and SLOTS must be >= 1"
bench_need qemu-img qemu-io jq
watch_bench_init
mdir=$BENCH_TMP/manifests
state=$BENCH_TMP/state
log=$BENCH_TMP/watch.log
mkdir -p "$mdir"
bench_idle_guest "$BENCH_TMP/boot.bin"
for v in off live; do
	qemu-img create -q -f qcow2 "$BENCH_TMP/$v.qcow2" 64M
	qemu-io -f qcow2 -c "write -q -s $BENCH_TMP/boot.bin 0 512" "$BENCH_TMP/$v.qcow2" || bench_die "qemu-io failed"
	st=running
	[[ $v == off ]] && st=stopped
	cat >"$mdir/$v.yaml" <<YAML
name: $v
machine: pc
memory: 64M
serial: none
state: $st
storage:
  - {name: root, file: $BENCH_TMP/$v.qcow2, interface: ide}
snapshots:
  schedule: {every: ${EVERY}s, keep: 100}
YAML
done
echo "maqet: $MAQET_ORIG ($("$MAQET" --version)), $(nproc) cpus, EVERY=${EVERY}s, SLOTS=$SLOTS"
watch_start "$state" "$log" -f "$mdir"
count() {
	"$MAQET" --state-dir "$state" snapshot list "$1" -o json | jq '[.snapshots[] | select(.origin == "scheduled")] | length'
}
deadline=$((SECONDS + (SLOTS + 2) * EVERY + 60))
while (($(count off) < SLOTS + 1 || $(count live) < SLOTS + 1)); do
	((SECONDS < deadline)) || bench_die "not $((SLOTS + 1)) scheduled snapshots each after $((SECONDS)) s: $(tail -n 5 "$log")"
	sleep 0.5
done
watch_stop

all_start=() all_taken=()
for v in off live; do
	snaps=$("$MAQET" --state-dir "$state" snapshot list "$v" -o json |
		jq -c '[.snapshots[] | select(.origin == "scheduled")] | sort_by(.created_at_ms) | .[:'$((SLOTS + 1))']')
	evs=$("$MAQET" --state-dir "$state" events "$v" -o json |
		jq -c '[.[] | select(.action == "snapshot-create" and .outcome == "started")]')
	echo "vm $v: snapshot          due (ms)         start_late_ms  taken_late_ms"
	for ((k = 1; k <= SLOTS; k++)); do
		read -r name prev cur < <(jq -r --argjson k "$k" '"\(.[$k].name) \(.[$k-1].created_at_ms) \(.[$k].created_at_ms)"' <<<"$snaps")
		due=$((prev + EVERY * 1000))
		started=$(jq -r --arg n "$name" '[.[] | select(.detail | startswith("snapshot '"'"'" + $n + "'"'"'"))][0].time_ms' <<<"$evs")
		[[ $started =~ ^[0-9]+$ ]] || bench_die "no started event for $v $name"
		sl=$((started - due)) tl=$((cur - due))
		printf '  %-26s %d  %13d  %13d\n' "$name" "$due" "$sl" "$tl"
		all_start+=($((sl < 0 ? 0 : sl))) all_taken+=($((tl < 0 ? 0 : tl)))
	done
done
read -r sm _ sx <<<"$(bench_stats "${all_start[@]}")"
read -r tm _ tx <<<"$(bench_stats "${all_taken[@]}")"
echo "start lateness: median $sm ms, max $sx ms; taken lateness: median $tm ms, max $tx ms"
ok=0
((tx <= 1000)) && ok=1
bench_target "scheduled snapshot taken after its due time" "$ok" \
	"max $tx ms, median $tm ms over $((2 * SLOTS)) snapshots (target <= 1000 ms)"
exit "$BENCH_FAILED"
