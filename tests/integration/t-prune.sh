#!/usr/bin/env bash
# --prune stops and forgets VMs this source no longer declares, never touches
# another source's VMs, refuses to empty a source without --allow-empty, and
# prunes nothing when any manifest fails to load.
source "$(dirname "$0")/lib.sh"
mkdir -p "$M/src1" "$M/src2"
vm_yaml keep > "$M/src1/keep.yaml"
vm_yaml gone "storage: [{name: d, size: 16M}]" > "$M/src1/gone.yaml"
vm_yaml other > "$M/src2/other.yaml"
run_rc rc mq apply -f "$M/src1"
assert_eq "$rc" 0 "apply src1: $OUT"
run_rc rc mq apply -f "$M/src2"
assert_eq "$rc" 0 "apply src2: $OUT"
pgone=$(vm_pid gone); pother=$(vm_pid other); pkeep=$(vm_pid keep)
[ -f "$STATE/disks/gone-d.qcow2" ] || fail "disk of gone not created"

rm "$M/src1/gone.yaml"
# Without --prune: reported, untouched.
run_rc rc mq plan -f "$M/src1"
assert_contains "$OUT" "no longer declared"
run_rc rc mq apply -f "$M/src1"
assert_eq "$rc" 0
proc_alive "$pgone" || fail "gone stopped without --prune"

# An invalid manifest in the source: nothing pruned, nothing changed.
echo "name: [broken" > "$M/src1/bad.yaml"
run_rc rc mq apply -f "$M/src1" --prune
assert_eq "$rc" 1 "apply with a broken manifest fails"
proc_alive "$pgone" || fail "pruned although a manifest failed to load"
rm "$M/src1/bad.yaml"

# With --prune: gone is stopped and forgotten, its disk kept; other untouched.
run_rc rc mq apply -f "$M/src1" --prune
assert_eq "$rc" 0 "apply --prune: $OUT"
assert_contains "$OUT" "gone"
wait_until 10 proc_dead "$pgone" || fail "gone still running after prune"
assert_eq "$(mq status -o json | jq '[.[] | select(.name == "gone")] | length')" 0 "gone still recorded"
[ -f "$STATE/disks/gone-d.qcow2" ] || fail "prune deleted a disk without --delete-disks"
assert_eq "$(vm_pid other)" "$pother" "other source touched"
assert_eq "$(vm_pid keep)" "$pkeep" "kept vm touched"
assert_eq "$(count_events gone delete ok)" 1

# Emptying a source needs --allow-empty.
rm "$M/src1/keep.yaml"
run_rc rc mq apply -f "$M/src1" --prune
assert_eq "$rc" 1 "prune of every vm refused"
assert_contains "$OUT" "--allow-empty"
proc_alive "$pkeep" || fail "keep stopped by a refused prune"
run_rc rc mq apply -f "$M/src1" --prune --allow-empty --delete-disks
assert_eq "$rc" 0 "prune --allow-empty: $OUT"
wait_until 10 proc_dead "$pkeep" || fail "keep not stopped"
assert_eq "$(vm_pid other)" "$pother" "other source touched by allow-empty prune"
pass "prune and its guards"
