#!/usr/bin/env bash
# `maqet watch` with its state dir on a full file system (root only: the
# state dir is a 2 MiB tmpfs).  Phase 1: with two VMs running, the tmpfs is
# filled to ENOSPC and a pass is triggered (one VM's memory changes, which
# needs a restart, and a third VM is added).  The watch must stay alive, not
# spin (CPU < 20 %), log a "no space left" error (SQLite's "disk is full"
# counts too), but not the same line over and over (at most 5 identical
# lines: once per distinct cause, plus a few backoff retries), keep the
# unchanged VM on its pid and leave no QEMU running that the store does not
# record.  Phase 2: the filler is removed and
# the watch converges by itself (third VM running, memory change applied:
# `maqet plan` has no changes).  Phase 3: full again, a pass fails, and
# SIGTERM still ends the watch with status 0 within 5 s.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"
[ "$(id -u)" = 0 ] || { echo "skip: needs root to mount a tmpfs"; exit 77; }
mkdir -p "$STATE"
mount -t tmpfs -o size=2m,mode=0700 tmpfs "$STATE" 2>/dev/null || { echo "skip: cannot mount a tmpfs"; exit 77; }
unmount_state() { umount "$STATE" 2>/dev/null || umount -l "$STATE" 2>/dev/null || true; }
CLEANUP_LATE_HOOKS+=(unmount_state)

# fill_store: fill the state tmpfs up to ENOSPC.  First the WAL is
# checkpointed and truncated (from a second connection, as any sqlite client
# may), so that the next write needs new blocks: else SQLite would reuse WAL
# space allocated earlier and the full disk would go unnoticed.
fill_store() {
	local i out
	for i in $(seq 1 50); do
		out=$(python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=5)
print("|".join(map(str, c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())))' "$STATE/maqet.db") &&
			[ "${out%%|*}" = 0 ] && break
		sleep 0.1
	done
	[ "${out%%|*}" = 0 ] || fail "cannot checkpoint the WAL: $out"
	dd if=/dev/zero of="$STATE/filler" bs=4k status=none 2>/dev/null || true
	[ "$(df --output=avail -B1 "$STATE" | tail -n 1)" -lt 8192 ] || fail "the tmpfs is not full: $(df -h "$STATE")"
}
nospace_count() { log_select '' | jq -s '[.[] | select(.detail | test("no space left|disk is full"; "i"))] | length'; }
# no_unrecorded: every QEMU of ours runs under the pid its VM's record says
no_unrecorded() {
	local n p rec
	for n in s1 s2 s3; do
		for p in $(pgrep -f -- "$RT/$n.qmp"); do
			rec=$(vm_pid "$n") || { echo "cannot read the status of $n"; return 1; }
			[ "$rec" = "$p" ] || { echo "a qemu of $n (pid $p) runs, but the store records pid '$rec' (status $(vm_status "$n"))"; return 1; }
		done
	done
}
converged() { mq plan -f "$M" >/dev/null 2>&1 && live_pid s3 >/dev/null && [ "$(live_pid s1)" != "$ps1" ]; }

make_idle_guest "$M/s1.img"
cp "$M/s1.img" "$M/s2.img"
cp "$M/s1.img" "$M/s3.img"
idle_yaml s1 s1.img > "$M/s1.yaml"
idle_yaml s2 s2.img > "$M/s2.yaml"
start_watch -f "$M" --settle 100 --resync 10
wait_until 60 live_pid s1 || fail "s1 not running: $(mq status 2>&1)"
wait_until 60 live_pid s2 || fail "s2 not running: $(mq status 2>&1)"
ps1=$(live_pid s1); ps2=$(live_pid s2)
pass "s1, s2 running (pids $ps1 $ps2)"

# --- phase 1: the store is full, a pass must restart s1 and create s3
fill_store
idle_yaml s1 s1.img > "$M/s1.yaml.tmp"
sed -i 's/^memory: 32M$/memory: 48M/' "$M/s1.yaml.tmp"
mv "$M/s1.yaml.tmp" "$M/s1.yaml"
idle_yaml s3 s3.img > "$M/.s3.yaml" && mv "$M/.s3.yaml" "$M/s3.yaml"
deadline=$((SECONDS + 30))
while [ "$(nospace_count)" = 0 ] && watch_alive && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
watch_alive || fail "watch died on a full store: $(tail -n 20 "$WATCH_LOG")"
[ "$(nospace_count)" -ge 1 ] ||
	soft_fail "no 'no space left' line in the watch log within 30 s of the pass: $(tail -n 10 "$WATCH_LOG")"
quiet_for 8 # let retries (if any) happen; the watch must still be alive
pct=$(cpu_pct "$WATCH_PID" 3) || fail "watch died: $(tail -n 20 "$WATCH_LOG")"
echo "watch CPU on a full store: $pct %"
[ "$pct" -lt 20 ] || soft_fail "watch uses $pct % of a CPU on a full store (want < 20 %): it spins"
rep=$(max_repeat)
[ "$rep" -le 5 ] || soft_fail "the same log line repeated $rep times: $(most_repeated | cut -c1-400)"
lines=$(wc -l < "$WATCH_LOG")
echo "watch log: $lines lines, $(nospace_count) with 'no space left'"
proc_alive "$ps2" || soft_fail "s2 (unchanged, pid $ps2) died on a full store"
out=$(mq status -o json 2>&1) || soft_fail "maqet status fails on a full store: $out"
why=$(no_unrecorded) || soft_fail "$why"
proc_alive "$ps1" && pass "s1 kept running on its pid (its restart could not be recorded)"
pass "phase 1: full store survived"

# --- phase 2: space again; the watch converges by itself
rm -f "$STATE/filler"
if wait_until 60 converged; then
	pass "phase 2: converged after the filler was removed (s1 pid $(live_pid s1), s3 pid $(live_pid s3))"
else
	soft_fail "no convergence within 60 s after the store has space again: plan: $(mq plan -f "$M" 2>&1 | tail -n 5)"
fi
[ "$(vm_pid s2)" = "$ps2" ] || soft_fail "s2 (unchanged) is not on its pid $ps2 any more: $(vm_pid s2)"

# --- phase 3: full again, a failing pass, then SIGTERM
watch_alive || fail "watch died: $(tail -n 20 "$WATCH_LOG")"
n0=$(nospace_count)
fill_store
idle_yaml s2 s2.img > "$M/s2.yaml.tmp"
sed -i 's/^memory: 32M$/memory: 48M/' "$M/s2.yaml.tmp"
mv "$M/s2.yaml.tmp" "$M/s2.yaml"
deadline=$((SECONDS + 30))
while [ "$(nospace_count)" -le "$n0" ] && watch_alive && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
[ "$(nospace_count)" -gt "$n0" ] || soft_fail "phase 3: no new 'no space left' line within 30 s"
if term_watch_within 5; then
	pass "phase 3: SIGTERM on a full store: exit 0 within 5 s"
else
	soft_fail "SIGTERM on a full store not answered with exit 0 within 5 s"
fi
rm -f "$STATE/filler"
why=$(no_unrecorded) || soft_fail "after the watch exited: $why"
soft_done
pass "watch survives a full state dir and converges once there is space"
