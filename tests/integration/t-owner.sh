#!/usr/bin/env bash
# Issue 7 item 5: one owner per VM name.  A source that declares a VM
# recorded from another source is refused, naming the owner; `plan` shows a
# conflict; `--adopt` moves the VM explicitly and records an "owner" event.
source "$(dirname "$0")/lib.sh"

mkdir -p "$M/lab-a" "$M/lab-b"
fake_yaml db normal > "$M/lab-a/db.yaml"
fake_yaml db normal "memory: 96M" > "$M/lab-b/db.yaml"
run_rc rc mq apply -f "$M/lab-a"
assert_eq "$rc" 0 "apply lab-a: $OUT"
pid=$(vm_pid db)
src_a=$(mq status -o json >/dev/null; sqlite3 "$STATE/maqet.db" "select source from vms where name = 'db'")
[ -n "$src_a" ] || fail "no source recorded"

run_rc rc mq apply -f "$M/lab-b"
assert_eq "$rc" 1 "apply lab-b while lab-a owns db: $OUT"
assert_contains "$OUT" "vm 'db' belongs to source '$src_a' (last applied "
assert_contains "$OUT" "use --adopt to move it"
assert_contains "$OUT" "nothing was changed"
assert_eq "$(vm_pid db)" "$pid" "db was touched by a refused apply"
assert_eq "$(sqlite3 "$STATE/maqet.db" "select source from vms where name = 'db'")" "$src_a" "owner changed"

run_rc rc mq plan -f "$M/lab-b"
assert_eq "$rc" 1 "plan with a conflict: $OUT"
assert_contains "$OUT" "conflict"
assert_contains "$OUT" "belongs to source '$src_a'"
[ "$(mq plan -f "$M/lab-b" -o json | jq -r '.items[0].conflict')" = true ] || fail "plan json: no conflict"
pass "a vm owned by another source is refused and shown as a conflict"

run_rc rc mq apply -f "$M/lab-b" --adopt
assert_eq "$rc" 0 "apply --adopt: $OUT"
assert_contains "$OUT" "moved from source '$src_a'"
src_b=$(sqlite3 "$STATE/maqet.db" "select source from vms where name = 'db'")
assert_ne "$src_b" "$src_a" "owner after --adopt"
assert_eq "$(count_events db owner ok)" 1 "one owner event"
assert_contains "$(mq events db -o json | jq -r '.[] | select(.action == "owner") | .detail')" "moved from source '$src_a' to '$src_b' (--adopt)"
# now lab-a is the stranger
run_rc rc mq apply -f "$M/lab-a"
assert_eq "$rc" 1 "apply lab-a after the move: $OUT"
assert_contains "$OUT" "vm 'db' belongs to source '$src_b'"
pass "--adopt moves ownership and records it"
