#!/usr/bin/env bash
# `maqet watch` keeps declared snapshots on its timers: a running VM (real
# QEMU) with `named: [golden]` and `schedule: {every: 2s, keep: 2}` gets the
# named snapshot once and a live scheduled snapshot every 2 s taken by a
# worker (the loop stays responsive: `maqet status` and passes go on),
# retention keeps 2 scheduled ones and never touches the named or a manual
# snapshot; after watch was down for several slots, ONE catch-up snapshot.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/watchlib.sh"

snaps_json() { mq snapshot list snap -o json; }
n_origin() { snaps_json | jq --arg o "$1" '[.. | objects | select(.origin? == $o)] | length'; }

vm_yaml snap 'storage:' '  - {name: root, size: 16M}' \
	'snapshots:' '  named: [golden]' '  schedule: {every: 2s, keep: 2}' >"$M/snap.yaml"

start_watch -f "$M"
wait_log_n 1 snapshot ok snap 30 || fail "no snapshot taken under watch"
# named + at least 4 scheduled, each a log line from the worker
wait_log_n 5 snapshot ok snap 40 || fail "the schedule was not kept: $(log_details snapshot "" snap)"
details=$(log_details snapshot ok snap)
assert_contains "$details" "snapshot 'golden' taken (live"
assert_contains "$details" "snapshot 'auto-"
assert_eq "$(log_count snapshot failed snap)" 0 "failed snapshots: $(log_details snapshot failed snap)"
wait_log_n 2 snapshot.retention ok snap 20 || fail "retention never ran"
assert_eq "$(vm_status snap)" running "vm still running"
pass "watch: named + live scheduled snapshots with retention"

# a manual snapshot is never deleted by retention
mq snapshot create snap mine >/dev/null
before=$(log_count snapshot ok snap)
wait_log_n $((before + 3)) snapshot ok snap 30 || fail "schedule stopped after a manual snapshot"
json=$(snaps_json)
jq -e '[.. | objects | select(.name? == "mine")] | length >= 1' <<<"$json" >/dev/null || fail "manual snapshot deleted: $json"
jq -e '[.. | objects | select(.name? == "golden")] | length >= 1' <<<"$json" >/dev/null || fail "named snapshot deleted: $json"
n=$(n_origin scheduled)
[ "$n" -le 2 ] || fail "retention kept $n scheduled snapshots: $json"
pass "retention spares manual and named snapshots"

# catch-up: watch down for several slots of a 5s schedule -> one snapshot on start
vm_yaml snap 'storage:' '  - {name: root, size: 16M}' \
	'snapshots:' '  named: [golden]' '  schedule: {every: 5s, keep: 2}' >"$M/snap.yaml"
stop_watch
start=$SECONDS
elapsed_ge() { [ $((SECONDS - start)) -ge "$1" ]; }
wait_until 30 elapsed_ge 16 || fail "clock did not advance"
start_watch -f "$M"
wait_log_n 1 snapshot ok snap 20 || fail "no catch-up snapshot"
run_rc rc mq plan -f "$M"
assert_eq "$(log_count snapshot ok snap)" 1 "catch-up snapshots taken"
assert_eq "$rc" 0 "nothing left due after the catch-up: $OUT"
stop_watch
pass "catch-up: one snapshot after missed slots"
