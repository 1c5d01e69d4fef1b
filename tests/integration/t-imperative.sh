#!/usr/bin/env bash
# status/start/stop/restart/rm/events: stop holds a VM so reconciles leave it
# stopped (plan and status say so); start clears the hold; rm needs --force
# for a running VM.
source "$(dirname "$0")/lib.sh"
vm_yaml h > "$M/h.yaml"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0 "$OUT"
p1=$(vm_pid h)

js=$(mq status -o json)
for k in name desired status pid hold last_error; do
	[ "$(echo "$js" | jq --arg k $k '.[0] | has($k)')" = true ] || fail "status json lacks '$k'"
done
run_rc rc mq ls h
assert_eq "$rc" 0
assert_contains "$OUT" "running"
run_rc rc mq status nosuch
assert_eq "$rc" 1

run_rc rc mq stop h --timeout 1
assert_eq "$rc" 0 "stop: $OUT"
wait_until 10 proc_dead "$p1" || fail "stop did not stop"
assert_eq "$(vm_field h hold)" true "hold set"
assert_eq "$(vm_status h)" stopped
run_rc rc mq plan -f "$M"
assert_eq "$rc" 0 "held vm: plan has no changes"
assert_contains "$OUT" "held by 'maqet stop'"
run_rc rc mq apply -f "$M"
assert_eq "$rc" 0
assert_eq "$(vm_status h)" stopped "apply started a held vm"
grep -q 'name: h' "$M/h.yaml" && ! grep -q 'state:' "$M/h.yaml" || fail "manifest rewritten"

run_rc rc mq start h
assert_eq "$rc" 0 "start: $OUT"
p2=$(vm_pid h)
proc_alive "$p2" || fail "start did not start"
assert_eq "$(vm_field h hold)" false "hold cleared"

run_rc rc mq restart h --force
assert_eq "$rc" 0 "restart: $OUT"
p3=$(vm_pid h)
assert_ne "$p3" "$p2" "restart gives a new pid"
wait_until 10 proc_dead "$p2" || fail "old pid alive after restart"

run_rc rc mq rm h
assert_eq "$rc" 1 "rm of a running vm without --force"
assert_contains "$OUT" "--force"
proc_alive "$p3" || fail "refused rm stopped the vm"
run_rc rc mq rm h --force
assert_eq "$rc" 0 "rm --force: $OUT"
wait_until 10 proc_dead "$p3" || fail "rm --force did not stop it"
assert_eq "$(mq status -o json | jq length)" 0

ev=$(mq events h -o json)
for a in create start stop hold release delete; do
	[ "$(echo "$ev" | jq --arg a $a '[.[] | select(.action == $a)] | length')" -ge 1 ] || fail "no '$a' event"
done
[ "$(echo "$ev" | jq -r '.[0].user')" != "" ] || fail "event without user"
run_rc rc mq events h
assert_eq "$rc" 0
assert_contains "$OUT" "create"
run_rc rc mq start nosuch
assert_eq "$rc" 1
assert_contains "$OUT" "no vm named 'nosuch'"
pass "imperative commands"
