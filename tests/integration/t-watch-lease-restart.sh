#!/usr/bin/env bash
# A crashed VM with a disk lease is restarted as soon as its QEMU is torn
# down, not after the lease re-check timer.  watch hears of a SIGKILLed QEMU
# from the process-events connector when its main thread dies; the QEMU's
# files (the lease fd among them) close milliseconds later.  Before
# reconciler/teardown.c the pass in between found the lease "held by host X"
# and logged `blocked kept: waiting for host X to release`, and the restart
# waited for the 500 ms re-check (it did in most kills on this machine).
# Now watch waits on the dead QEMU's pidfd (or, once /proc has no entry, a
# short back-off) and says nothing about a lease.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

make_idle_guest "$T/g.raw"
idle_yaml g "$T/g.raw" > "$M/g.yaml"
start_watch -f "$M" --settle 100 --crash-loop-limit 100 --stable-after 100
pid=$(live_pid g) || fail "g not running after startup"
[ -e "$T/g.raw.maqet-lease" ] || fail "no disk lease beside g's disk"
# restarted and running (up to `start ok`), under a pid other than OLD
up_again() { status_is g running && has_new_pid g "$1"; }
n0=$(starts_of g)
KILLS=8
for ((i = 1; i <= KILLS; i++)); do
	kill -9 "$pid"
	wait_until 20 up_again "$pid" || { cat "$WATCH_LOG" | tail -n 25 >&2; fail "g not restarted after kill $i"; }
	pid=$(live_pid g)
done
assert_eq "$(starts_of g)" $((n0 + KILLS)) "one restart per kill"
assert_eq "$(log_count exit crash g)" "$KILLS" "one exit/crash line per kill"
blocked=$(log_details blocked '' g)
assert_eq "$blocked" "" "a restart waited on its own dead QEMU's lease"
assert_eq "$(log_count backoff '' g)" 0 "backoff lines (the restarts were not delayed)"
# the lease now names the running QEMU, and it holds it
assert_contains "$(cat "$T/g.raw.maqet-lease")" "pid $pid"
pass "$KILLS crashes of a vm with a disk lease: each restarted once, none waited on its own lease"
