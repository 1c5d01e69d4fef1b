#!/usr/bin/env bash
# before_change + rollback under `maqet watch`: a manifest edit to a spec
# QEMU refuses is rolled back (pre-change snapshot, disks reverted, last
# good spec started) and, although watch resyncs every second, the refused
# spec is not tried again until the manifest changes; a good edit then
# restarts normally and clears the mark.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

BC='  before_change: {rollback: true}'
# conditions re-evaluated on every poll of wait_until
status_is() { [ "$(vm_status rw)" = "$1" ]; }
events_ge() { [ "$(count_events rw "$1" ok)" -ge "$2" ]; }
resyncs_ge() { [ "$(pass_count resync)" -ge "$1" ]; }
mark_cleared() { [ "$(vm_field rw rolled_back)" = null ]; }
shows_rolled_back() { mq status | grep -q rolled-back; }
vm_yaml rw 'storage:' '  - {name: root, size: 16M}' 'snapshots:' "$BC" >"$M/rw.yaml"
start_watch -f "$M" --resync 1
wait_until 30 status_is running || fail "vm not started by watch"
pid0=$(vm_pid rw)
hash0=$(vm_field rw spec_hash)

vm_yaml rw 'storage:' '  - {name: root, size: 16M}' 'args: ["-no-such-option-for-maqet"]' \
	'snapshots:' "$BC" >"$M/rw.yaml"
wait_until 40 events_ge rollback 1 || fail "no rollback under watch"
wait_until 30 shows_rolled_back || fail "status does not show rolled-back"
pid1=$(vm_pid rw)
assert_ne "$pid1" "$pid0" "restarted for the change"
proc_alive "$pid1" || fail "last good spec not running"
assert_eq "$(vm_field rw spec_hash)" "$hash0" "last good spec recorded"
# several resync passes later: still the same process, one rollback, one pre-change snapshot
n=$(pass_count resync)
wait_until 20 resyncs_ge $((n + 3)) || fail "no resync passes"
assert_eq "$(vm_pid rw)" "$pid1" "the refused spec was retried under watch"
assert_eq "$(count_events rw rollback ok)" 1 "rollbacks"
assert_eq "$(count_events rw snapshot.pre-change ok)" 1 "pre-change snapshots"
pass "watch: rolled back once, refused spec not retried"

vm_yaml rw 'cpu: 2' 'storage:' '  - {name: root, size: 16M}' 'snapshots:' "$BC" >"$M/rw.yaml"
wait_until 40 mark_cleared || fail "good change did not clear the mark"
wait_until 20 status_is running || fail "not running after the good change"
assert_ne "$(vm_pid rw)" "$pid1" "good change restarted"
assert_eq "$(count_events rw snapshot.pre-change ok)" 2 "pre-change snapshot before the good change"
stop_watch
pass "watch: a good change after a rollback restarts and clears the mark"
