#!/usr/bin/env bash
# Issue 7 item 7: an empty database is not a fresh start.  A VM runs, then
# maqet.db is truncated to zero bytes: apply, status, stop and watch all stop
# with the "damaged, restore or move away" error, exit 1, and no second QEMU
# is started beside the running one.  A brand-new state dir never shows an
# empty maqet.db (it appears with its schema).
source "$(dirname "$0")/lib.sh"

fake_yaml web normal > "$M/web.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "first apply: $OUT"
pid=$(vm_pid web)
proc_alive "$pid" || fail "web not running"
[ -s "$STATE/maqet.db" ] || fail "a new maqet.db is empty"
ls "$STATE" | grep -q '\.new-' && fail "temporary database left: $(ls "$STATE")"

rm -f "$STATE/maqet.db-wal" "$STATE/maqet.db-shm"
: > "$STATE/maqet.db"
for cmd in "apply -f $M" "status" "stop web" "plan -f $M"; do
	# shellcheck disable=SC2086
	run_rc rc mq $cmd
	assert_eq "$rc" 1 "maqet $cmd on an empty database: $OUT"
	assert_contains "$OUT" "state database '$STATE/maqet.db' is damaged (the file is empty): restore it from a backup, or move the file away"
	assert_eq "$(printf '%s\n' "$OUT" | grep -c damaged)" 1 "one line: $OUT"
done
run_rc rc timeout 20 "$MAQET" watch -f "$M"
assert_eq "$rc" 1 "watch on an empty database: $OUT"
assert_contains "$OUT" "is damaged (the file is empty)"
[ "$(pgrep -fc -- "$RT/web.qmp")" = 1 ] || fail "not exactly one qemu of web: $(pgrep -af -- "$RT/" || true)"
proc_alive "$pid" || fail "web's qemu was touched"
[ ! -s "$STATE/maqet.db" ] || fail "the empty database was overwritten"
pass "an empty maqet.db stops every command with the damaged error; web keeps its one qemu"
