#!/usr/bin/env bash
# snapshots.before_change rollback when the new spec never reaches running
# (QEMU does not exit: it stays paused past the start timeout), with the fake
# QEMU's "paused" mode: apply stops the VM, takes the pre-change snapshot,
# starts the new spec, gives up after the start timeout (killing that QEMU),
# reverts the disks -- a pattern written into the image while the new spec
# hung is gone again --, starts the last good spec and marks the VM
# rolled-back with the reason; the refused spec is not retried.
source "$(dirname "$0")/lib.sh"

BC='  before_change: {enabled: true, rollback: true}'
qemu-img create -q -f qcow2 "$M/root.qcow2" 16M
qemu-io -f qcow2 -c "write -q -P 0xaa 1M 64k" "$M/root.qcow2"
read_pat() { qemu-io -f qcow2 -r -U -c "read -P $1 1M 64k" "$M/root.qcow2" 2>&1 | grep -q "read 65536/65536" &&
	! qemu-io -f qcow2 -r -U -c "read -P $1 1M 64k" "$M/root.qcow2" 2>&1 | grep -q "Pattern verification failed"; }
fake_yaml tm normal 'storage:' "  - {name: root, file: $M/root.qcow2}" 'snapshots:' "$BC" >"$M/tm.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "first apply: $OUT"
pid0=$(vm_pid tm)
hash0=$(vm_field tm spec_hash)

# the new spec: QEMU starts, answers QMP, but never runs (cont leaves it paused)
fake_yaml tm paused 'storage:' "  - {name: root, file: $M/root.qcow2}" 'snapshots:' "$BC" >"$M/tm.yaml"
"$MAQET" apply -f "$M" >"$T/apply.out" 2>&1 &
ap=$!
new_spec_starting() {
	[ "$(vm_status tm)" = starting ] && pgrep -f -- "-fake-mode paused" >/dev/null
}
wait_until 30 new_spec_starting || fail "the new spec was not being started: $(cat "$T/apply.out")"
hung=$(pgrep -f -- "-fake-mode paused" | head -n 1)
# what the hung start "did" to the disk: the rollback must undo it
qemu-io -f qcow2 -c "write -q -P 0xee 1M 64k" "$M/root.qcow2"
read_pat 0xee || fail "pattern 0xee not written"
rc=0
wait "$ap" || rc=$?
OUT=$(cat "$T/apply.out")
assert_eq "$rc" 1 "apply of a spec that never runs: $OUT"
assert_contains "$OUT" "cannot restart vm 'tm' with its new spec"
assert_contains "$OUT" "qmp not ready after"
assert_contains "$OUT" "rolled back to pre-change snapshot 'pre-change-"
proc_dead "$hung" || fail "the hung qemu of the new spec was left running"
assert_eq "$(vm_status tm)" running "the last good spec runs"
pid1=$(vm_pid tm)
assert_ne "$pid1" "$pid0" "restarted"
proc_alive "$pid1" || fail "rolled-back qemu not alive"
assert_contains "$(tr '\0' ' ' </proc/$pid1/cmdline)" "-fake-mode normal"
assert_eq "$(vm_field tm spec_hash)" "$hash0" "the recorded spec is the last good one"
assert_contains "$(vm_field tm rolled_back.reason)" "the new spec failed to start"
assert_contains "$(vm_field tm rolled_back.reason)" "qmp not ready after"
assert_eq "$(count_events tm rollback ok)" 1 "rollback event"
read_pat 0xaa || fail "disk not reverted to the pre-change snapshot"
pass "a new spec stuck short of running is rolled back after the start timeout, disks reverted"

run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply after the rollback: $OUT"
assert_eq "$(vm_pid tm)" "$pid1" "the refused spec was retried"
pass "the refused spec is not retried"
