#!/usr/bin/env bash
# Declared snapshots (`snapshots:`) kept by `maqet plan` / `maqet apply`
# alone (a cron job without watch), against real qemu-img images:
# named snapshots created once, a short `every` schedule, keep-N retention
# that never touches named or external snapshots, the catch-up rule (one
# snapshot after several missed slots, not one per slot), live: false
# skipping a running VM, and a change to `snapshots:` never restarting.
source "$(dirname "$0")/lib.sh"
command -v qemu-img >/dev/null || fail "qemu-img missing"

IMG=$STATE/disks/snap-root.qcow2
tags() { qemu-img snapshot -l "$IMG" | awk 'NR > 2 { print $2 }'; }
autos() { tags | grep -c '^auto-' || true; }

vm_yaml snap 'state: stopped' 'storage:' '  - {name: root, size: 16M}' \
	'snapshots:' '  named: [golden]' '  schedule: {every: 2s, keep: 2}' >"$M/snap.yaml"

# 1. plan: own symbol and reasons, counts as changes (exit 2), also in json
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2 "plan exit"
assert_contains "$OUT" "@ snap  snapshot  named snapshot 'golden' missing"
assert_contains "$OUT" "@ snap  snapshot  scheduled snapshot due (none yet)"
assert_contains "$OUT" "Snapshots: 2 to take."
J=$(mq plan -f "$M" -o json || true)
assert_eq "$(jq -r '.items[0].snapshots | map(.kind) | join(",")' <<<"$J")" "named,scheduled" "json kinds"
assert_eq "$(jq -r '.items[0].snapshots[0].name' <<<"$J")" "golden" "json name"
pass "plan shows snapshot actions"

# 2. apply takes them (the disk image is created for the never-started vm)
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply exit: $OUT"
assert_contains "$OUT" "snapshot 'golden' taken (offline, 1 drive"
assert_contains "$OUT" "Snapshots: 2 taken, 0 deleted by retention, 0 failed."
tags | grep -qx golden || fail "golden not on the disk"
assert_eq "$(autos)" 1 "one scheduled snapshot"
tags | grep -Eqx 'auto-[0-9]{8}T[0-9]{6}Z' || fail "scheduled name not auto-<UTC time>: $(tags)"
# nothing due right after
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "plan right after apply: $OUT"
assert_not_contains "$OUT" "snapshot"
pass "apply takes named + scheduled snapshots"

# an external snapshot (made outside maqet) and the named one must survive retention
qemu-img snapshot -c extern "$IMG"

# 3. repeated apply keeps the schedule; retention keeps 2 scheduled
due() { local o; o=$(mq plan -f "$M" || true); grep -q 'scheduled snapshot due (last' <<<"$o"; }
for i in 1 2 3; do
	wait_until 10 due || fail "schedule never due again (round $i)"
	run_rc rc mq apply -f "$M"
	assert_eq "$rc" 0 "apply round $i: $OUT"
	assert_contains "$OUT" "snapshot 'auto-"
	n=$(autos)
	[ "$n" -le 2 ] || fail "retention kept $n scheduled snapshots (keep 2)"
done
assert_contains "$OUT" "deleted scheduled snapshot 'auto-"
assert_eq "$(autos)" 2 "scheduled snapshots after retention"
tags | grep -qx golden || fail "retention deleted the named snapshot"
tags | grep -qx extern || fail "retention deleted the external snapshot"
pass "repeated apply: schedule + retention of scheduled snapshots only"

# 4. catch-up: let several 2s slots pass, then one apply takes ONE snapshot
last=$(tags | grep '^auto-' | sort | tail -1)
start=$SECONDS
elapsed_ge() { [ $((SECONDS - start)) -ge "$1" ]; }
wait_until 15 elapsed_ge 7 || fail "clock did not advance"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "catch-up apply: $OUT"
assert_eq "$(grep -c "snapshot 'auto-[^']*' taken" <<<"$OUT")" 1 "snapshots taken on catch-up"
assert_contains "$OUT" "scheduled snapshot due (last"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "nothing due right after the catch-up: $OUT"
newest=$(tags | grep '^auto-' | sort | tail -1)
assert_ne "$newest" "$last" "a new scheduled snapshot"
assert_eq "$(count_events snap create ok)" 1 "vm record created once"
pass "catch-up: one snapshot after missed slots"

# 5. a running vm with live: false: the change is record-only, nothing is taken
vm_yaml snap 'storage:' '  - {name: root, size: 16M}' >"$M/snap.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "start: $OUT"
pid=$(vm_pid snap)
vm_yaml snap 'storage:' '  - {name: root, size: 16M}' \
	'snapshots:' '  schedule: {every: 1s, keep: 1, live: false}' >"$M/snap.yaml"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 2 "plan of a snapshots change"
assert_contains "$OUT" "~ snap  update   changed: snapshots (no restart needed)"
assert_not_contains "$OUT" "@ snap"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "apply: $OUT"
assert_eq "$(vm_pid snap)" "$pid" "a snapshots change restarted the vm"
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "live: false + running: nothing due: $OUT"
mq stop snap >/dev/null
pass "snapshots change is record-only; live: false skips a running vm"

# 6. validation is located
printf 'name: r\nstorage:\n  - {name: d, type: raw, size: 1M}\nsnapshots:\n  schedule: {every: 1h, keep: 0}\n' >"$T/bad.yaml"
run_rc rc mq validate -f "$T/bad.yaml"
assert_eq "$rc" 1 "validate exit"
assert_contains "$OUT" "bad.yaml:5:3: a snapshot schedule needs a qcow2 disk"
assert_contains "$OUT" "bad.yaml:5:31: 'snapshots.schedule.keep' must be an integer from 1 to 1000, got '0'"
pass "validation errors are located"
