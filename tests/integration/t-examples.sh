#!/usr/bin/env bash
# examples/ validates, applies and converges against real QEMU; a second apply
# is a no-op and plan right after apply is empty (exit 0).
source "$(dirname "$0")/lib.sh"
: "${MQ_SRC:?}"
# Work on a copy so relative disk paths land in the temp dir.
cp -r "$MQ_SRC/examples" "$T/examples"
EX=$T/examples

run_rc rc mq validate -f "$EX"
assert_eq "$rc" 0 "examples validate"
assert_contains "$OUT" "6 vms valid"

run_rc rc mq plan -f "$EX"
assert_eq "$rc" 2 "plan before first apply reports changes"
assert_contains "$OUT" "5 to create"
# runner is pinned to host lab2 (examples/hosts.yaml): elsewhere on this machine
if [ "$(uname -n)" != lab2 ]; then
	assert_contains "$OUT" "^ runner  elsewhere (host lab2)"
fi

run_rc rc mq apply -f "$EX"
echo "$OUT"
assert_eq "$rc" 0 "first apply"
for vm in db web tools vault; do
	assert_eq "$(vm_status $vm)" running "$vm running"
	proc_alive "$(vm_pid $vm)" || fail "$vm process not alive"
done
assert_eq "$(vm_status spare)" created "spare is recorded but not started"
assert_eq "$(vm_field spare desired)" stopped
[ "$(uname -n)" = lab2 ] || assert_eq "$(vm_status runner)" "" "runner (placed on lab2) is not recorded here"

# disks were auto-created: default location and relative to the manifest
[ -f "$STATE/disks/db-system.qcow2" ] || fail "default disk not created"
[ -f "$EX/disks/db-scratch.img" ] || fail "relative raw disk not created"
[ -f "$EX/disks/web-data.qcow2" ] || fail "relative qcow2 disk not created"
[ -f "$STATE/disks/spare-disk.qcow2" ] && fail "disk of a stopped vm created early"

# vault's declared snapshots were taken by the apply (live: it runs)
assert_contains "$OUT" "snapshot 'golden' taken (live"
vs=$(mq snapshot list vault -o json)
assert_eq "$(jq '[.. | objects | select(.origin? == "declared")] | length' <<<"$vs")" 1 "vault golden"
assert_eq "$(jq '[.. | objects | select(.origin? == "scheduled")] | length' <<<"$vs")" 1 "vault scheduled"

# depends_on: web started after db was running
db_start=$(mq events db -o json | jq '[.[] | select(.action == "start" and .outcome == "ok")][0].id')
web_start=$(mq events web -o json | jq '[.[] | select(.action == "start" and .outcome == "ok")][0].id')
[ "$web_start" -gt "$db_start" ] || fail "web ($web_start) started before db ($db_start)"

pids_before=$(mq status -o json | jq -c '[.[] | .pid]')
run_rc rc mq apply -f "$EX"
assert_eq "$rc" 0 "second apply"
assert_contains "$OUT" "No changes"
assert_eq "$(mq status -o json | jq -c '[.[] | .pid]')" "$pids_before" "second apply changed pids"

run_rc rc mq plan -f "$EX"
assert_eq "$rc" 0 "plan after apply must be empty"
assert_contains "$OUT" "0 to create, 0 to start, 0 to stop, 0 to restart, 0 to update, 0 to delete"

# The status table has the documented columns.
out=$(mq status)
assert_contains "$out" "NAME"
assert_contains "$out" "LAST ERROR"
pass "examples converge and re-apply is a no-op"
