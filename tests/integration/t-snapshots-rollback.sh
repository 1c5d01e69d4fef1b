#!/usr/bin/env bash
# snapshots.before_change with rollback, against real QEMU: a restart-class
# change to a spec that cannot start (QEMU refuses an option) stops the VM,
# takes a pre-change snapshot, fails to start the new spec, reverts the
# disks, starts the last good spec, shows the VM as rolled-back with the
# reason and does not retry that spec until the manifest changes; a later
# good change restarts normally, clears the mark, and before_change.keep
# prunes old pre-change snapshots.
source "$(dirname "$0")/lib.sh"

BC='  before_change: {enabled: true, keep: 1, rollback: true}'
vm_yaml rb 'storage:' '  - {name: root, size: 16M}' 'snapshots:' "$BC" >"$M/rb.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "first apply: $OUT"
pid0=$(vm_pid rb)
hash0=$(vm_field rb spec_hash)
n_pre() { mq snapshot list rb -o json | jq '[.. | objects | select(.origin? == "pre-change")] | length'; }

# a restart-class change whose QEMU cannot start
vm_yaml rb 'storage:' '  - {name: root, size: 16M}' 'args: ["-no-such-option-for-maqet"]' \
	'snapshots:' "$BC" >"$M/rb.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2 "plan exit"
assert_contains "$OUT" "-/+ rb    restart"
assert_contains "$OUT" "  @ rb    snapshot  pre-change snapshot before restart (rollback if the new spec fails)"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 1 "apply of a spec that cannot start: $OUT"
assert_contains "$OUT" "cannot restart vm 'rb' with its new spec"
assert_contains "$OUT" "rolled back to pre-change snapshot 'pre-change-"
assert_eq "$(vm_status rb)" running "the last good spec runs"
pid1=$(vm_pid rb)
assert_ne "$pid1" "$pid0" "it was restarted"
proc_alive "$pid1" || fail "rolled-back qemu not alive"
assert_eq "$(vm_field rb spec_hash)" "$hash0" "the recorded spec is the last good one"
assert_contains "$(vm_field rb rolled_back.reason)" "the new spec failed to start"
assert_contains "$(mq status)" "rolled-back"
assert_eq "$(count_events rb snapshot.pre-change ok)" 1 "pre-change snapshot event"
assert_eq "$(count_events rb rollback ok)" 1 "rollback event"
assert_eq "$(n_pre)" 1 "pre-change snapshot listed with its origin"
# the qemu command line of the running vm is the old one
assert_not_contains "$(tr '\0' ' ' </proc/$pid1/cmdline)" "-no-such-option-for-maqet"
pass "a failing restart-class change is rolled back"

# not retried while the manifest is unchanged
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan after rollback: $OUT"
assert_contains "$OUT" "rolled-back: rolled back to snapshot 'pre-change-"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply after rollback: $OUT"
assert_eq "$(vm_pid rb)" "$pid1" "the refused spec was retried"
pass "the refused spec is not retried"

# a good change: restarts, clears the mark; keep: 1 prunes the older pre-change snapshot
vm_yaml rb 'cpu: 2' 'storage:' '  - {name: root, size: 16M}' 'snapshots:' "$BC" >"$M/rb.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "good change: $OUT"
assert_contains "$OUT" "restarted"
assert_contains "$OUT" "deleted pre-change snapshot 'pre-change-"
assert_eq "$(vm_field rb rolled_back)" null "mark cleared"
assert_ne "$(vm_field rb spec_hash)" "$hash0" "new spec recorded"
assert_eq "$(count_events rb snapshot.pre-change ok)" 2 "second pre-change snapshot"
assert_eq "$(n_pre)" 1 "before_change.keep: 1"
assert_not_contains "$(mq status)" "rolled-back"
mq stop rb >/dev/null
pass "a good change restarts and clears the rollback mark"
